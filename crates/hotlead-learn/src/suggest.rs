//! From labelled examples to a suggestion: split, discover, terms, fit, points, thresholds,
//! suggested rules and hold-out evaluation of current and suggested rules.

use std::collections::HashMap;

use hotlead_core::{Band, RuleSet, score};
use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::Example;
use crate::discover::{DiscoverOptions, discover};
use crate::fit::{self, CvPoint, FitError, FitOptions, SplitMix};
use crate::metrics::{self, BandConversion, CalibrationBin, Point};
use crate::rules_out::{self, Suggested};

/// How to hold out the evaluation part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// A random share, the same for the same seed (each class in proportion).
    Random,
    /// The latest decided leads (ties by line): the honest test of a rule set used on
    /// future leads.
    Order,
}

/// Everything a run can be told.
#[derive(Debug, Clone)]
pub struct LearnOptions {
    /// Generate candidate rules from the data.
    pub discover: Option<DiscoverOptions>,
    pub holdout_fraction: f64,
    pub split: Split,
    pub seed: u64,
    /// Keep at most this many rules with points.
    pub max_rules: Option<usize>,
    /// How many hot leads the reps can take per week.
    pub capacity_per_week: Option<f64>,
    /// New leads per week; estimated from the close dates when not given.
    pub leads_per_week: Option<f64>,
    /// Attributes never used (known only after the outcome, or not to be scored on).
    pub exclude: Vec<String>,
    /// Below either, no weights are suggested (cold start).
    pub min_outcomes: usize,
    pub min_won: usize,
    pub fit: FitOptions,
}

impl Default for LearnOptions {
    fn default() -> Self {
        LearnOptions {
            discover: None,
            holdout_fraction: 0.2,
            split: Split::Random,
            seed: 0,
            max_rules: None,
            capacity_per_week: None,
            leads_per_week: None,
            exclude: Vec::new(),
            min_outcomes: 200,
            min_won: 30,
            fit: FitOptions::default(),
        }
    }
}

/// A step of a long run, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: &'static str,
    pub done: usize,
    pub total: usize,
}

/// What the caller lends a run: a progress sink and a stopwatch (seconds since some fixed
/// instant). The library keeps no clock of its own.
pub struct Hooks<'a> {
    pub progress: &'a mut dyn FnMut(Progress),
    pub seconds: &'a dyn Fn() -> f64,
}

impl std::fmt::Debug for Hooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// The rules in use, as text (to keep its layout) and compiled.
#[derive(Debug, Clone, Copy)]
pub struct CurrentRules<'a> {
    pub text: &'a str,
    pub rules: &'a RuleSet,
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{0}")]
    Fit(#[from] FitError),
    #[error(
        "the hold-out part has {won} won and {lost} lost leads; both are needed (raise --holdout-fraction)"
    )]
    Holdout { won: usize, lost: usize },
    #[error("--holdout-fraction must be above 0 and below 1, got {0}")]
    Fraction(f64),
    #[error(
        "nothing to learn: give the current rules (--rules) or let rules be discovered from the data (--discover)"
    )]
    NothingToLearn,
    #[error("the rules could not be written: {0}")]
    Rules(String),
}

/// Too few outcomes to learn from: what there is and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdStart {
    pub outcomes: usize,
    pub won: usize,
    pub lost: usize,
    pub min_outcomes: usize,
    pub min_won: usize,
    pub need_outcomes: usize,
    pub need_won: usize,
    pub need_lost: usize,
    pub message: String,
}

/// What a run gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    ColdStart(ColdStart),
    Suggested(Box<Suggestion>),
}

/// The rules a suggestion starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesRef {
    pub name: String,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    pub outcomes: usize,
    pub won: usize,
    pub lost: usize,
    pub training: usize,
    pub holdout: usize,
    pub split: Split,
    pub holdout_fraction: f64,
    pub seed: u64,
    /// Rules the model weighed (current and discovered).
    pub features: usize,
    pub discovered: usize,
    pub leads_per_week: Option<f64>,
    pub capacity_per_week: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The chosen inverse regularisation strength, and the cross-validation behind it.
    pub c: f64,
    pub cv: Vec<CvPoint>,
    /// Points per unit of log-odds, and how that scale was chosen.
    pub points_per_logit: f64,
    pub scale: String,
    /// Log-odds of winning at a score of 0 (suggested points).
    pub intercept: f64,
}

/// One rule's weight: what it is now, what is suggested, and how sure that is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightRow {
    pub rule: String,
    pub label: String,
    /// `current` or `discovered`.
    pub source: String,
    pub current_points: Option<f64>,
    pub suggested_points: i64,
    /// The suggested points ± 1.96 standard errors.
    pub low: Option<i64>,
    pub high: Option<i64>,
    pub coefficient: f64,
    pub standard_error: Option<f64>,
    /// Training leads for which the rule held.
    pub leads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub hot: i64,
    pub hot_exit: i64,
    pub warm: i64,
    pub warm_exit: i64,
    pub reason: String,
}

/// A rule set's figures on the hold-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub rules: RulesRef,
    pub threshold: f64,
    pub auc: f64,
    /// With the score mapped to a probability on the training part (Platt scaling).
    pub log_loss: f64,
    pub top_decile_lift: f64,
    pub top_decile_capture: f64,
    pub bands: Vec<BandConversion>,
    pub calibration: Vec<CalibrationBin>,
    pub roc: Vec<Point>,
    pub gains: Vec<Point>,
    /// Share of hold-out leads at or above the hot threshold, and per week.
    pub hot_share: f64,
    pub hot_per_week: Option<f64>,
    /// The hot threshold that fits the reps' capacity.
    pub capacity_threshold: Option<f64>,
    /// The unrounded model's AUC (suggested only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_auc: Option<f64>,
    /// Seconds spent fitting (suggested only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit_seconds: Option<f64>,
}

/// A suggestion: evidence and a rules file, for an analyst to approve or reject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub base: Option<RulesRef>,
    pub data: DataSummary,
    pub model: ModelSummary,
    pub weights: Vec<WeightRow>,
    pub thresholds: Thresholds,
    pub current: Option<Evaluation>,
    pub suggested: Evaluation,
    pub rules_toml: String,
}

fn cold_start(examples: &[Example], options: &LearnOptions) -> Option<ColdStart> {
    let won = examples.iter().filter(|e| e.won).count();
    let lost = examples.len() - won;
    let need_outcomes = options.min_outcomes.saturating_sub(examples.len());
    let need_won = options.min_won.saturating_sub(won);
    let need_lost = options.min_won.saturating_sub(lost);
    if need_outcomes == 0 && need_won == 0 && need_lost == 0 {
        return None;
    }
    let mut wants = Vec::new();
    if need_outcomes > 0 {
        wants.push(format!("{need_outcomes} more outcomes"));
    }
    if need_won > 0 {
        wants.push(format!("{need_won} more won deals"));
    }
    if need_lost > 0 {
        wants.push(format!("{need_lost} more lost deals"));
    }
    Some(ColdStart {
        outcomes: examples.len(),
        won,
        lost,
        min_outcomes: options.min_outcomes,
        min_won: options.min_won,
        need_outcomes,
        need_won,
        need_lost,
        message: format!(
            "not enough outcomes to learn from: {} ({won} won, {lost} lost); need {} (at least {} outcomes and {} of each); keep the current rules",
            examples.len(),
            wants.join(" and "),
            options.min_outcomes,
            options.min_won
        ),
    })
}

/// Splits into (training, hold-out) indices.
fn split(examples: &[Example], options: &LearnOptions) -> (Vec<usize>, Vec<usize>) {
    let n = examples.len();
    let f = options.holdout_fraction;
    match options.split {
        Split::Order => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| (examples[i].decided_at, examples[i].line, i));
            let holdout = ((n as f64) * f).round() as usize;
            let (train, test) = order.split_at(n - holdout.min(n));
            (train.to_vec(), test.to_vec())
        }
        Split::Random => {
            let mut rng = SplitMix::new(options.seed);
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for class in [true, false] {
                let mut members: Vec<usize> =
                    (0..n).filter(|&i| examples[i].won == class).collect();
                rng.shuffle(&mut members);
                let holdout = ((members.len() as f64) * f).round() as usize;
                test.extend_from_slice(&members[..holdout]);
                train.extend_from_slice(&members[holdout..]);
            }
            train.sort_unstable();
            test.sort_unstable();
            (train, test)
        }
    }
}

/// Which examples a run with these options holds out.
pub fn holdout_mask(examples: &[Example], options: &LearnOptions) -> Vec<bool> {
    let mut mask = vec![false; examples.len()];
    for i in split(examples, options).1 {
        mask[i] = true;
    }
    mask
}

fn points_f64(p: hotlead_core::Points) -> f64 {
    p.hundredths() as f64 / 100.0
}

/// Scores with a rule set at each example's decision time.
fn scores(rules: &RuleSet, examples: &[&Example]) -> (Vec<f64>, Vec<Band>) {
    examples
        .iter()
        .map(|e| {
            let s = score(rules, &e.lead, &e.events, e.decided_at, None);
            (points_f64(s.score), s.band)
        })
        .unzip()
}

fn sd(values: &[f64]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// New leads per week, from the span of decision dates (at least a week of them).
fn leads_per_week(examples: &[Example]) -> Option<f64> {
    let first = examples.iter().map(|e| e.decided_at).min()?;
    let last = examples.iter().map(|e| e.decided_at).max()?;
    let weeks = (last - first).num_seconds() as f64 / (7.0 * 86_400.0);
    (weeks >= 1.0).then(|| examples.len() as f64 / weeks)
}

struct EvalInput<'a> {
    rules: &'a RuleSet,
    train: &'a [&'a Example],
    holdout: &'a [&'a Example],
    leads_per_week: Option<f64>,
    capacity_per_week: Option<f64>,
}

fn evaluate(input: &EvalInput<'_>) -> Evaluation {
    let y_train: Vec<bool> = input.train.iter().map(|e| e.won).collect();
    let y: Vec<bool> = input.holdout.iter().map(|e| e.won).collect();
    let (train_scores, _) = scores(input.rules, input.train);
    let (holdout_scores, bands) = scores(input.rules, input.holdout);
    let (a, b) = fit::calibrate(&train_scores, &y_train);
    let p: Vec<f64> = holdout_scores
        .iter()
        .map(|s| fit::sigmoid(a + b * s))
        .collect();
    let (capture, lift) = metrics::top_fraction(&holdout_scores, &y, 0.1);
    let (roc, gains) = metrics::curves(&holdout_scores, &y, 200);
    let hot = points_f64(input.rules.bands.hot);
    let warm = points_f64(input.rules.bands.warm);
    let hot_share =
        bands.iter().filter(|b| **b == Band::Hot).count() as f64 / y.len().max(1) as f64;
    let capacity_threshold = match (input.capacity_per_week, input.leads_per_week) {
        (Some(capacity), Some(per_week)) if per_week > 0.0 => {
            metrics::threshold_for_share(&train_scores, capacity / per_week)
        }
        _ => None,
    };
    Evaluation {
        rules: RulesRef {
            name: input.rules.name.clone(),
            version: input.rules.version,
        },
        threshold: hot,
        auc: metrics::auc(&holdout_scores, &y),
        log_loss: metrics::log_loss(&p, &y),
        top_decile_lift: lift,
        top_decile_capture: capture,
        bands: metrics::by_band(&holdout_scores, &y, hot, warm),
        calibration: metrics::calibration(&p, &y, 10),
        roc,
        gains,
        hot_share,
        hot_per_week: input.leads_per_week.map(|w| w * hot_share),
        capacity_threshold,
        model_auc: None,
        fit_seconds: None,
    }
}

const Z95: f64 = 1.96;

/// Learns from `examples`; see the crate documentation for the steps.
pub fn learn(
    examples: &[Example],
    current: Option<CurrentRules<'_>>,
    options: &LearnOptions,
    hooks: &mut Hooks<'_>,
) -> Result<Outcome, LearnError> {
    if !(options.holdout_fraction > 0.0 && options.holdout_fraction < 1.0) {
        return Err(LearnError::Fraction(options.holdout_fraction));
    }
    if current.is_none() && options.discover.is_none() {
        return Err(LearnError::NothingToLearn);
    }
    if let Some(cold) = cold_start(examples, options) {
        return Ok(Outcome::ColdStart(cold));
    }
    let stripped: Vec<Example>;
    let examples: &[Example] = if options.exclude.is_empty() {
        examples
    } else {
        let names: Vec<String> = options
            .exclude
            .iter()
            .map(|n| hotlead_core::lead::attribute_name(n))
            .collect();
        stripped = examples
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.lead.attributes.retain(|name, _| !names.contains(name));
                e
            })
            .collect();
        &stripped
    };
    let (train_idx, holdout_idx) = split(examples, options);
    let train: Vec<&Example> = train_idx.iter().map(|&i| &examples[i]).collect();
    let holdout: Vec<&Example> = holdout_idx.iter().map(|&i| &examples[i]).collect();
    let holdout_won = holdout.iter().filter(|e| e.won).count();
    if holdout_won == 0 || holdout_won == holdout.len() {
        return Err(LearnError::Holdout {
            won: holdout_won,
            lost: holdout.len() - holdout_won,
        });
    }

    // Features: the current rules' terms and the candidates'.
    let candidates = options
        .discover
        .as_ref()
        .map(|d| discover(&train, d))
        .unwrap_or_default();
    let feature_text = rules_out::feature_rules(current.map(|c| c.text), &candidates)
        .map_err(|e| LearnError::Rules(e.to_string()))?;
    let features = RuleSet::from_toml("(features)", &feature_text)
        .map_err(|e| LearnError::Rules(e.to_string()))?;
    let p = features.rules.len();
    let mut x = Array2::<f64>::zeros((examples.len(), p));
    let total = examples.len();
    for (i, example) in examples.iter().enumerate() {
        let terms = hotlead_core::score::rule_terms(
            &features,
            &example.lead,
            &example.events,
            example.decided_at,
        );
        x.row_mut(i).assign(&ndarray::Array1::from(terms));
        if (i + 1) % 10_000 == 0 || i + 1 == total {
            (hooks.progress)(Progress {
                stage: "rule terms",
                done: i + 1,
                total,
            });
        }
    }
    let x_train = x.select(Axis(0), &train_idx);
    let y_train: Vec<bool> = train.iter().map(|e| e.won).collect();

    // Fit, then (with --max-rules) refit on the strongest rules only.
    (hooks.progress)(Progress {
        stage: "fitting",
        done: 0,
        total: 1,
    });
    let started = (hooks.seconds)();
    // A time-ordered hold-out gets a time-ordered cross-validation (train rows are in
    // decision order).
    let fit_options = FitOptions {
        time_ordered: options.fit.time_ordered || options.split == Split::Order,
        ..options.fit.clone()
    };
    let mut model = fit::fit(x_train.view(), &y_train, &fit_options)?;
    let mut left_out = vec![false; p];
    if let Some(limit) = options.max_rules
        && (0..p).filter(|&j| !model.constant.contains(&j)).count() > limit
    {
        let mut ranked: Vec<usize> = (0..p).filter(|&j| !model.constant.contains(&j)).collect();
        ranked.sort_by(|&a, &b| model.coef_std[b].abs().total_cmp(&model.coef_std[a].abs()));
        let kept: Vec<usize> = ranked[..limit].to_vec();
        let constant = model.constant.clone();
        let sub = fit::fit(
            x_train.select(Axis(1), &kept).view(),
            &y_train,
            &options.fit,
        )?;
        let mut coef = vec![0.0; p];
        let mut coef_std = vec![0.0; p];
        let mut se = vec![None; p];
        for (k, &j) in kept.iter().enumerate() {
            coef[j] = sub.coef[k];
            coef_std[j] = sub.coef_std[k];
            se[j] = sub.se[k];
        }
        for j in ranked[limit..].iter() {
            left_out[*j] = true;
        }
        model = fit::Model {
            coef,
            se,
            coef_std,
            intercept: sub.intercept,
            constant,
            c: sub.c,
            cv: sub.cv,
        };
    }
    let fit_seconds = (hooks.seconds)() - started;
    (hooks.progress)(Progress {
        stage: "fitting",
        done: 1,
        total: 1,
    });

    // Points: log-odds scaled to the current rules' spread (or 20 points per doubling of
    // the odds), rounded to whole points.
    let logits_train: Vec<f64> = x_train
        .dot(&ndarray::Array1::from(model.coef.clone()))
        .to_vec();
    let current_train = current.map(|c| scores(c.rules, &train));
    let pdo = 20.0 / std::f64::consts::LN_2;
    let (k, scale) = match &current_train {
        Some((s, _)) if sd(s) > 0.0 && sd(&logits_train) > 0.0 => {
            let k = sd(s) / sd(&logits_train);
            if k >= pdo / 2.0 {
                (
                    k,
                    format!(
                        "the spread of the current scores ({k:.1} points per unit of log-odds)"
                    ),
                )
            } else {
                (pdo / 2.0, "10 points double the odds of winning (the current scores spread too little to copy)".to_string())
            }
        }
        _ => (pdo, "20 points double the odds of winning".to_string()),
    };
    let n_current = current.map_or(0, |c| c.rules.rules.len());
    let mut points: HashMap<String, i64> = HashMap::new();
    let mut weights = Vec::new();
    for (j, rule) in features.rules.iter().enumerate() {
        let is_current = j < n_current;
        let current_points = is_current.then(|| points_f64(rule.points));
        let constant = model.constant.contains(&j);
        let coefficient = model.coef[j];
        let se = model.se[j];
        let suggested = if constant {
            current_points.unwrap_or(0.0).round() as i64
        } else {
            (k * coefficient).round() as i64
        };
        let flag = if constant {
            Some("no variation in the training data: kept as it is".to_string())
        } else if left_out[j] {
            Some("left out to keep the rules simple (--max-rules)".to_string())
        } else if se.is_some_and(|se| coefficient.abs() < Z95 * se) {
            Some("indistinguishable from zero".to_string())
        } else if suggested == 0 {
            Some("rounds to 0 points".to_string())
        } else {
            None
        };
        if is_current || (!constant && !left_out[j] && suggested != 0) {
            points.insert(rule.id.clone(), suggested);
        }
        weights.push(WeightRow {
            rule: rule.id.clone(),
            label: rule.label.clone(),
            source: if is_current { "current" } else { "discovered" }.to_string(),
            current_points,
            suggested_points: suggested,
            low: se
                .filter(|_| !constant)
                .map(|se| (k * (coefficient - Z95 * se)).round() as i64),
            high: se
                .filter(|_| !constant)
                .map(|se| (k * (coefficient + Z95 * se)).round() as i64),
            coefficient,
            standard_error: se,
            leads: x_train.column(j).iter().filter(|v| **v != 0.0).count(),
            flag,
        });
    }

    // Thresholds: the reps' capacity, else the current share of hot leads, else the top
    // tenth.
    let suggested_train: Vec<f64> = (0..x_train.nrows())
        .map(|i| {
            features
                .rules
                .iter()
                .enumerate()
                .map(|(j, r)| x_train[[i, j]] * points.get(&r.id).copied().unwrap_or(0) as f64)
                .sum()
        })
        .collect();
    let per_week = options.leads_per_week.or_else(|| leads_per_week(examples));
    let share_of = |band: Band| -> Option<f64> {
        current_train.as_ref().map(|(_, bands)| {
            bands.iter().filter(|b| **b >= band).count() as f64 / bands.len().max(1) as f64
        })
    };
    let (hot_share, reason) = match (options.capacity_per_week, per_week) {
        (Some(capacity), Some(w)) if w > 0.0 => (
            capacity / w,
            format!(
                "fits the reps' capacity of {capacity} hot leads a week ({w:.0} new leads a week)"
            ),
        ),
        _ => match share_of(Band::Hot).filter(|s| (0.01..=0.5).contains(s)) {
            Some(share) => (
                share,
                format!(
                    "keeps the current share of hot leads ({:.1} %)",
                    share * 100.0
                ),
            ),
            None => (0.1, "makes the top tenth of leads hot".to_string()),
        },
    };
    let warm_share = share_of(Band::Warm)
        .filter(|s| *s > hot_share && *s <= 0.8)
        .unwrap_or((hot_share * 3.0).min(0.6));
    let max_score = suggested_train.iter().copied().fold(f64::MIN, f64::max);
    let hot = metrics::threshold_for_share(&suggested_train, hot_share)
        .map_or(max_score.ceil() as i64 + 1, |t| t.ceil() as i64);
    let warm = metrics::threshold_for_share(&suggested_train, warm_share)
        .map_or(hot - 1, |t| t.ceil() as i64)
        .min(hot - 1);
    let gap = (hot - warm).max(1);
    let thresholds = Thresholds {
        hot,
        hot_exit: (hot - (gap / 4).max(1)).max(warm),
        warm,
        warm_exit: warm - (gap / 8).max(1),
        reason,
    };

    let version = current.map_or(2, |c| i64::from(c.rules.version) + 1);
    let rules_toml = rules_out::suggested_rules(
        &feature_text,
        &Suggested {
            points: &points,
            hot: thresholds.hot,
            hot_exit: thresholds.hot_exit,
            warm: thresholds.warm,
            warm_exit: thresholds.warm_exit,
            version,
            note: "(points learned from closed deals)",
        },
    )
    .map_err(|e| LearnError::Rules(e.to_string()))?;
    let suggested_rules = RuleSet::from_toml("(suggested)", &rules_toml)
        .map_err(|e| LearnError::Rules(e.to_string()))?;

    (hooks.progress)(Progress {
        stage: "evaluating",
        done: 0,
        total: 1,
    });
    let eval = |rules: &RuleSet| {
        evaluate(&EvalInput {
            rules,
            train: &train,
            holdout: &holdout,
            leads_per_week: per_week,
            capacity_per_week: options.capacity_per_week,
        })
    };
    let mut suggested = eval(&suggested_rules);
    let x_holdout = x.select(Axis(0), &holdout_idx);
    let y_holdout: Vec<bool> = holdout.iter().map(|e| e.won).collect();
    suggested.model_auc = Some(metrics::auc(
        &model.logits(x_holdout.view()).to_vec(),
        &y_holdout,
    ));
    suggested.fit_seconds = Some(fit_seconds);
    let current_eval = current.map(|c| eval(c.rules));

    let won = examples.iter().filter(|e| e.won).count();
    Ok(Outcome::Suggested(Box::new(Suggestion {
        base: current.map(|c| RulesRef {
            name: c.rules.name.clone(),
            version: c.rules.version,
        }),
        data: DataSummary {
            outcomes: examples.len(),
            won,
            lost: examples.len() - won,
            training: train.len(),
            holdout: holdout.len(),
            split: options.split,
            holdout_fraction: options.holdout_fraction,
            seed: options.seed,
            features: p,
            discovered: candidates.len(),
            leads_per_week: per_week,
            capacity_per_week: options.capacity_per_week,
        },
        model: ModelSummary {
            c: model.c,
            cv: model.cv,
            points_per_logit: k,
            scale,
            intercept: model.intercept,
        },
        weights,
        thresholds,
        current: current_eval,
        suggested,
        rules_toml,
    })))
}
