//! From labelled examples to a suggestion: split, discover, terms, fit, points, thresholds,
//! suggested rules and hold-out evaluation of current and suggested rules.

use std::collections::HashMap;

use hotlead_core::{Band, RuleSet, score};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::Example;
use crate::discover::{DiscoverOptions, discover};
use crate::fit::{self, FitError, FitOptions, SplitMix};
use crate::metrics::{self, BandConversion, CalibrationBin, Point};
use crate::rules_out::{self, Suggested};
use crate::sparse::{
    Columns, Problem, Tolerance, lambdas, one_se, path_and_cross_validate, selection_frequency,
};

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
    /// At most this many rules get points (the default suggestion is the smallest model
    /// within one standard error of the best cross-validated one, capped by this).
    pub max_rules: usize,
    /// Bootstrap refits of the training part that measure how often each rule is chosen.
    pub bootstrap: usize,
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
            max_rules: 15,
            bootstrap: 50,
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
    /// Where `leads_per_week` comes from: `--leads-per-week`, close dates, creation
    /// dates, or `unknown`.
    #[serde(default)]
    pub leads_per_week_source: String,
    pub capacity_per_week: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The inverse regularisation strength of the refit of the chosen rules.
    pub c: f64,
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
    /// The share of bootstrap refits of the training part that chose the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability: Option<f64>,
}

/// One point of the selection path: a penalty, how many rules it keeps, and what they
/// predict (cross-validated on the training part, and on the hold-out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    pub lambda: f64,
    pub rules: usize,
    pub cv_log_loss: f64,
    pub cv_se: f64,
    pub cv_auc: f64,
    pub holdout_auc: f64,
}

/// How the rules were chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub path: Vec<PathPoint>,
    /// Index (in `path`) of the lowest cross-validated loss, and of the suggestion.
    pub best: usize,
    pub chosen: usize,
    pub max_rules: usize,
    pub folds: usize,
    pub bootstrap: usize,
    pub explanation: String,
    /// Candidates set aside before fitting, and why (a reference level, the same leads
    /// as another rule).
    pub set_aside: Vec<SetAside>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    pub rule: String,
    pub label: String,
    pub reason: String,
}

/// One rule's change from the current rules to the suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleChange {
    pub rule: String,
    pub label: String,
    pub current: Option<f64>,
    pub suggested: Option<i64>,
}

/// What the suggestion changes, for the review: rules added, removed and changed, the
/// thresholds, and what happens to the hot list on the hold-out leads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub added: Vec<RuleChange>,
    pub removed: Vec<RuleChange>,
    pub changed: Vec<RuleChange>,
    pub unchanged: usize,
    pub hot_before: Option<f64>,
    pub hot_after: i64,
    pub warm_before: Option<f64>,
    pub warm_after: i64,
    /// Hold-out leads hot with the current rules, and of them still hot; newly hot.
    pub hot_now: usize,
    pub stay_hot: usize,
    pub newly_hot: usize,
    pub holdout: usize,
    /// The same per week, when the leads per week are known.
    pub per_week: Option<f64>,
}

impl Diff {
    /// A count of hold-out leads as leads per week.
    pub fn weekly(&self, count: usize) -> Option<f64> {
        self.per_week
            .filter(|_| self.holdout > 0)
            .map(|w| count as f64 * w / self.holdout as f64)
    }
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
    /// What an analyst must know before reading on (capacity not usable, a hot share on
    /// the hold-out far from the target, ...).
    #[serde(default)]
    pub notices: Vec<String>,
    #[serde(default)]
    pub diff: Diff,
    #[serde(default)]
    pub selection: Selection,
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
    by_chunks(examples, |e| {
        let s = score(rules, &e.lead, &e.events, e.decided_at, None);
        (points_f64(s.score), s.band)
    })
    .into_iter()
    .unzip()
}

/// Maps `items` in order, in chunks spread over the cores (each item's result depends
/// on the item alone, so the result does not depend on how many cores).
fn by_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    in_chunks(items, |chunk| chunk.iter().map(&f).collect())
}

/// Maps `items` in order, a chunk at a time (`f` gives a result per item of its chunk),
/// the chunks spread over the cores: a few per core, so that none waits long for the
/// last.
fn in_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = items.len().div_ceil(workers * 4).clamp(256, 4_096);
    let chunks: Vec<&[T]> = items.chunks(size).collect();
    crate::sparse::parallel(&chunks, workers, |chunk| f(chunk))
        .into_iter()
        .flatten()
        .collect()
}

/// New leads per week, from the span of the dates `date` gives (at least a week of
/// them, on at least half of the leads).
fn leads_per_week(
    examples: &[Example],
    date: impl Fn(&Example) -> Option<chrono::DateTime<chrono::Utc>>,
) -> Option<f64> {
    let dates: Vec<_> = examples.iter().filter_map(&date).collect();
    if dates.len() * 2 < examples.len() {
        return None;
    }
    let first = dates.iter().min()?;
    let last = dates.iter().max()?;
    let weeks = (*last - *first).num_seconds() as f64 / (7.0 * 86_400.0);
    (weeks >= 1.0).then(|| examples.len() as f64 / weeks)
}

struct EvalInput<'a> {
    rules: &'a RuleSet,
    train: &'a [&'a Example],
    /// The rules' scores of the training leads, where already worked out.
    train_scores: Option<&'a [f64]>,
    holdout: &'a [&'a Example],
    leads_per_week: Option<f64>,
    capacity_per_week: Option<f64>,
}

/// A rule set's figures on the hold-out, and each hold-out lead's band under it.
fn evaluate(input: &EvalInput<'_>) -> (Evaluation, Vec<Band>) {
    let y_train: Vec<bool> = input.train.iter().map(|e| e.won).collect();
    let y: Vec<bool> = input.holdout.iter().map(|e| e.won).collect();
    let scored;
    let train_scores = match input.train_scores {
        Some(s) => s,
        None => {
            scored = scores(input.rules, input.train).0;
            &scored
        }
    };
    let (holdout_scores, bands) = scores(input.rules, input.holdout);
    let (a, b) = fit::calibrate(train_scores, &y_train);
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
            metrics::threshold_for_share(train_scores, capacity / per_week)
        }
        _ => None,
    };
    let evaluation = Evaluation {
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
    };
    (evaluation, bands)
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
    let names: Vec<String> = options
        .exclude
        .iter()
        .map(|n| hotlead_core::lead::attribute_name(n))
        .collect();
    // Examples read from an export come without the excluded columns already: copied
    // only where some lead still has one.
    let has_excluded = |e: &Example| names.iter().any(|n| e.lead.attributes.contains_key(n));
    let any_excluded = !names.is_empty()
        && in_chunks(examples, |chunk| vec![chunk.iter().any(has_excluded)])
            .into_iter()
            .any(|found| found);
    let examples: &[Example] = if !any_excluded {
        examples
    } else {
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
    let mut candidates = options
        .discover
        .as_ref()
        .map(|d| discover(&train, d))
        .unwrap_or_default();
    let discovered = candidates.len();
    let mut feature_text = rules_out::feature_rules(current.map(|c| c.text), &candidates)
        .map_err(|e| LearnError::Rules(e.to_string()))?;
    let mut features = RuleSet::from_toml("(features)", &feature_text)
        .map_err(|e| LearnError::Rules(e.to_string()))?;
    let mut p = features.rules.len();
    // Each lead's terms, as its non-zero ones: most rules hold for few leads.
    let total = examples.len();
    let mut rows: Vec<crate::terms::SparseRow> = Vec::with_capacity(total);
    let terms = crate::terms::Terms::new(&features);
    for (start, part) in (0..total).step_by(10_000).zip(examples.chunks(10_000)) {
        rows.extend(in_chunks(part, |chunk| terms.rows(chunk)));
        (hooks.progress)(Progress {
            stage: "rule terms",
            done: start + part.len(),
            total,
        });
    }
    let mut x_train = Columns::from_rows(&rows, &train_idx, p);
    let y_train: Vec<bool> = train.iter().map(|e| e.won).collect();
    let mut x_holdout = Columns::from_rows(&rows, &holdout_idx, p);
    drop(rows);
    let y_holdout: Vec<bool> = holdout.iter().map(|e| e.won).collect();

    (hooks.progress)(Progress {
        stage: "choosing rules",
        done: 0,
        total: 1,
    });
    let started = (hooks.seconds)();
    let n_current = current.map_or(0, |c| c.rules.rules.len());
    let family: Vec<Option<String>> = (0..p)
        .map(|j| {
            j.checked_sub(n_current)
                .and_then(|k| candidates.get(k))
                .and_then(|c| c.family.clone())
        })
        .collect();
    let family_ref: Vec<Option<&str>> = family.iter().map(|f| f.as_deref()).collect();
    let names: Vec<(String, String)> = features
        .rules
        .iter()
        .map(|r| (r.id.clone(), r.label.clone()))
        .collect();
    let names_ref: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut chosen = choose_rules(
        &Training {
            x: &x_train,
            y: &y_train,
            x_holdout: &x_holdout,
            y_holdout: &y_holdout,
            family: &family_ref,
            names: &names_ref,
        },
        options,
    )?;
    // "None of these levels" rules join the rules as candidates of their own.
    if !chosen.complements.is_empty() {
        let complements = std::mem::take(&mut chosen.complements);
        for complement in &complements {
            let conditions: Vec<toml_edit::Value> = complement
                .levels
                .iter()
                .filter_map(|&j| candidates.get(j - n_current))
                .filter_map(|c| {
                    c.body
                        .iter()
                        .find(|(k, _)| k == "when")
                        .map(|(_, v)| v.clone())
                })
                .collect();
            let inner = if conditions.len() == 1 {
                conditions[0].clone()
            } else {
                let mut any = toml_edit::InlineTable::new();
                any.insert(
                    "any",
                    toml_edit::Value::Array(conditions.into_iter().collect()),
                );
                toml_edit::Value::InlineTable(any)
            };
            let mut not = toml_edit::InlineTable::new();
            not.insert("not", inner);
            let labels: Vec<&str> = complement
                .levels
                .iter()
                .map(|&j| names[j].1.as_str())
                .collect();
            candidates.push(crate::discover::Candidate {
                id: format!(
                    "learned-{}-none-of-{}",
                    crate::discover::slug(&complement.attribute),
                    complement.levels.len()
                ),
                label: format!("not {}", labels.join(" or ")),
                axis: crate::discover::Axis::Fit,
                body: vec![("when".into(), toml_edit::Value::InlineTable(not))],
                count_cap: None,
                family: None,
            });
            for m in [&mut x_train, &mut x_holdout] {
                let none: Vec<f64> = m
                    .row_sums(&complement.levels)
                    .into_iter()
                    .map(|s| 1.0 - s)
                    .collect();
                m.push_dense(&none);
            }
            chosen.model.coef.push(complement.coef);
            chosen.model.se.push(complement.se);
            chosen.set_aside.push(None);
            chosen.stability.push(complement.stability);
        }
        feature_text = rules_out::feature_rules(current.map(|c| c.text), &candidates)
            .map_err(|e| LearnError::Rules(e.to_string()))?;
        features = RuleSet::from_toml("(features)", &feature_text)
            .map_err(|e| LearnError::Rules(e.to_string()))?;
        p = features.rules.len();
    }
    let family: Vec<Option<String>> = (0..p).map(|j| family.get(j).cloned().flatten()).collect();
    let fit_seconds = (hooks.seconds)() - started;
    (hooks.progress)(Progress {
        stage: "choosing rules",
        done: 1,
        total: 1,
    });
    let model = &chosen.model;

    // Points: scorecard scaling. Each attribute's reference level scores 0, so ordinary
    // leads score from 0 upwards; a fixed number of points doubles the odds of winning.
    let train_rows = x_train.to_rows();
    let logits_train: Vec<f64> = dense_dots(&train_rows, &model.coef);
    let per_week_known = match options.leads_per_week {
        Some(w) => Some((w, "--leads-per-week")),
        None => leads_per_week(examples, |e| Some(e.decided_at))
            .map(|w| (w, "close dates"))
            .or_else(|| leads_per_week(examples, |e| e.created_at).map(|w| (w, "creation dates"))),
    };
    let per_week = per_week_known.map(|(w, _)| w);
    let current_train = current.map(|c| scores(c.rules, &train));
    let share_of = |band: Band| -> Option<f64> {
        current_train.as_ref().map(|(_, bands)| {
            bands.iter().filter(|b| **b >= band).count() as f64 / bands.len().max(1) as f64
        })
    };
    let mut notices = Vec::new();
    let (hot_share, reason) = match (options.capacity_per_week, per_week_known) {
        (Some(capacity), Some((w, source))) if w > 0.0 => (
            (capacity / w).min(1.0),
            format!(
                "fits the reps' capacity of {} hot leads a week ({w:.0} new leads a week, from {source})",
                crate::discover::format_number(capacity)
            ),
        ),
        (capacity, _) => {
            let fallback = match share_of(Band::Hot).filter(|s| (0.01..=0.5).contains(s)) {
                Some(share) => (
                    share,
                    format!(
                        "keeps the current share of hot leads ({:.1} % of the training leads)",
                        share * 100.0
                    ),
                ),
                None => (
                    0.1,
                    "makes the top tenth of the training leads hot".to_string(),
                ),
            };
            if let Some(capacity) = capacity {
                notices.push(format!(
                    "The reps' capacity ({} hot leads a week) could not be used: how many new leads come in a week is unknown (the data has no close dates or creation dates spanning a week, and --leads-per-week was not given). The hot threshold instead {}.",
                    crate::discover::format_number(capacity),
                    fallback.1
                ));
            }
            fallback
        }
    };
    // With current rules, the points that keep their hot threshold where it is (if that
    // is a sensible scale); else 20 points double the odds.
    let pdo_default = 20.0;
    let keep_hot = current
        .map(|c| points_f64(c.rules.bands.hot))
        .filter(|hot| *hot > 0.0)
        .and_then(|current_hot| {
            let q = metrics::threshold_for_share(&logits_train, hot_share).filter(|q| *q > 0.0)?;
            let k = current_hot / q;
            (5.0..=40.0).contains(&(k * std::f64::consts::LN_2)).then(|| {
                (
                    k,
                    format!(
                        "{:.1} points double the odds of winning, so that hot stays at about {} points as in the current rules",
                        k * std::f64::consts::LN_2,
                        crate::discover::format_number(current_hot)
                    ),
                )
            })
        });
    let (k, scale) = keep_hot.unwrap_or_else(|| {
        (
            pdo_default / std::f64::consts::LN_2,
            format!("{pdo_default} points double the odds of winning"),
        )
    });
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
        let stability = chosen.stability[j];
        let flag = if constant {
            Some("no variation in the training data: kept as it is".to_string())
        } else if let Some(reason) = &chosen.set_aside[j] {
            Some(reason.clone())
        } else if coefficient == 0.0 {
            Some("not chosen: adds too little to what the chosen rules predict".to_string())
        } else if suggested == 0 {
            Some("rounds to 0 points".to_string())
        } else if stability.is_some_and(|f| f < STABLE) {
            Some(format!(
                "unstable: chosen in {:.0} % of bootstrap refits",
                stability.unwrap_or(0.0) * 100.0
            ))
        } else if suggested < 0 {
            Some(match family[j].as_deref() {
                Some(attribute) => format!(
                    "negative: a rare value that lowers the odds below the other values of {attribute} (as a competitor or a student would)"
                ),
                None => "negative: lowers the odds of winning".to_string(),
            })
        } else if se.is_some_and(|se| coefficient.abs() < Z95 * se) {
            Some("indistinguishable from zero".to_string())
        } else {
            None
        };
        if (constant && is_current) || (!constant && suggested != 0) {
            points.insert(rule.id.clone(), suggested);
        }
        let chosen_rule = !constant && coefficient != 0.0;
        weights.push(WeightRow {
            rule: rule.id.clone(),
            label: rule.label.clone(),
            source: if is_current { "current" } else { "discovered" }.to_string(),
            current_points,
            suggested_points: if constant || chosen_rule {
                suggested
            } else {
                0
            },
            low: se
                .filter(|_| chosen_rule)
                .map(|se| (k * (coefficient - Z95 * se)).round() as i64),
            high: se
                .filter(|_| chosen_rule)
                .map(|se| (k * (coefficient + Z95 * se)).round() as i64),
            coefficient,
            standard_error: se,
            leads: x_train.cols[j].index.len(),
            flag,
            stability,
        });
    }

    // Thresholds: the share aimed at, on the training leads' suggested scores.
    let column_points: Vec<f64> = features
        .rules
        .iter()
        .map(|r| points.get(&r.id).copied().unwrap_or(0) as f64)
        .collect();
    // Σ x_ij · points_j over each row's non-zero terms, in column order: the sum over
    // every column, as the zeros add nothing.
    let suggested_train: Vec<f64> = train_rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|&(j, x)| x * column_points[j as usize])
                .sum()
        })
        .collect();
    let warm_share = share_of(Band::Warm)
        .filter(|s| *s > hot_share && *s <= 0.8)
        .unwrap_or((hot_share * 3.0).min(0.6));
    let max_score = suggested_train.iter().copied().fold(f64::MIN, f64::max);
    let min_score = suggested_train.iter().copied().fold(f64::MAX, f64::min);
    let (hot, warm) = if max_score <= min_score {
        // Every lead scores alike: nobody hot, nobody warm.
        let top = max_score.ceil() as i64;
        (top + 2, top + 1)
    } else {
        let hot = metrics::threshold_nearest_share(&suggested_train, hot_share)
            .map_or(max_score.ceil() as i64 + 1, |t| t.ceil() as i64);
        let warm = metrics::threshold_nearest_share(&suggested_train, warm_share)
            .map_or(hot - 1, |t| t.ceil() as i64)
            .min(hot - 1);
        (hot, warm)
    };
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
    let eval = |rules: &RuleSet, train_scores: Option<&[f64]>| {
        evaluate(&EvalInput {
            rules,
            train: &train,
            train_scores,
            holdout: &holdout,
            leads_per_week: per_week,
            capacity_per_week: options.capacity_per_week,
        })
    };
    let (mut suggested, bands_after) = eval(&suggested_rules, None);
    suggested.model_auc = Some(metrics::auc(
        &dense_dots(&x_holdout.to_rows(), &model.coef)
            .into_iter()
            .map(|z| z + model.intercept)
            .collect::<Vec<_>>(),
        &y_holdout,
    ));
    suggested.fit_seconds = Some(fit_seconds);
    let (current_eval, bands_before) = match (current, &current_train) {
        (Some(c), Some((train_scores, _))) => {
            let (evaluation, bands) = eval(c.rules, Some(train_scores));
            (Some(evaluation), Some(bands))
        }
        _ => (None, None),
    };
    if suggested.hot_share > hot_share * 1.5 || suggested.hot_share < hot_share / 1.5 {
        notices.push(format!(
            "On the hold-out leads {:.1} % are hot, against the {:.1} % the threshold was set for on the training leads: the later or held-out leads differ from the ones learned from (a shift in who the leads are, or in the market). Check the hot list per week before approving.",
            suggested.hot_share * 100.0,
            hot_share * 100.0
        ));
    }
    let diff = diff(&DiffInput {
        weights: &weights,
        current: current.map(|c| c.rules),
        thresholds: &thresholds,
        before: bands_before.as_deref(),
        after: &bands_after,
        per_week,
    });

    let won = examples.iter().filter(|e| e.won).count();
    Ok(Outcome::Suggested(Box::new(Suggestion {
        base: current.map(|c| RulesRef {
            name: c.rules.name.clone(),
            version: c.rules.version,
        }),
        notices,
        diff,
        selection: chosen.selection,
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
            discovered,
            leads_per_week: per_week,
            leads_per_week_source: per_week_known.map_or("unknown", |(_, s)| s).to_string(),
            capacity_per_week: options.capacity_per_week,
        },
        model: ModelSummary {
            c: model.c,
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

/// Each row's `Σ_j x_ij · coef_j`, rows given as their non-zero entries: summed over a
/// dense copy of the row as a dense matrix product sums it (the same result to the bit).
fn dense_dots(rows: &[Vec<(u32, f64)>], coef: &[f64]) -> Vec<f64> {
    let coef = ndarray::ArrayView1::from(coef);
    let mut dense = vec![0.0; coef.len()];
    rows.iter()
        .map(|row| {
            for &(j, x) in row {
                dense[j as usize] = x;
            }
            let dot = ndarray::ArrayView1::from(&dense[..]).dot(&coef);
            for &(j, _) in row {
                dense[j as usize] = 0.0;
            }
            dot
        })
        .collect()
}

/// "1 rule", "3 rules".
pub(crate) fn count_of(rules: usize) -> String {
    if rules == 1 {
        "1 rule".to_string()
    } else {
        format!("{rules} rules")
    }
}

/// The training part, as the rule choice sees it.
struct Training<'a> {
    x: &'a Columns,
    y: &'a [bool],
    x_holdout: &'a Columns,
    y_holdout: &'a [bool],
    /// Per column: the attribute whose levels it is one of.
    family: &'a [Option<&'a str>],
    /// Per column: rule id and label.
    names: &'a [(&'a str, &'a str)],
}

/// Below this share of bootstrap refits, a chosen rule is flagged unstable.
const STABLE: f64 = 0.6;

/// The rules chosen and their weights.
struct Chosen {
    model: fit::Model,
    selection: Selection,
    /// Per column: why it was set aside before fitting.
    set_aside: Vec<Option<String>>,
    /// Per column: the share of bootstrap refits that chose it (for chosen columns).
    stability: Vec<Option<f64>>,
    /// "None of these levels" rules to add.
    complements: Vec<Complement>,
}

/// A rule the suggestion adds for an attribute whose chosen levels all lower the odds:
/// "none of those levels", worth what they take away, so that the attribute's lowest
/// level is worth 0 and points stay positive.
struct Complement {
    attribute: String,
    /// The chosen levels' columns.
    levels: Vec<usize>,
    coef: f64,
    se: Option<f64>,
    stability: Option<f64>,
}

/// Chooses few rules and weighs them:
/// 1. a candidate with (almost) the same leads as an earlier one of another attribute is
///    set aside;
/// 2. an L1 path over every level of every attribute on the training part,
///    cross-validated on stratified folds; the smallest model within one standard error
///    of the best loss, capped by `max_rules`;
/// 3. one fact, one rule: where every level of an attribute is chosen, the lowest is the
///    reference (0 points) and the others are weighed against it; where the chosen
///    levels all lower the odds, the rule becomes "none of them", with positive points;
/// 4. the chosen rules refitted by linfa's logistic regression (L2, C = 1 unless given),
///    for weights and standard errors that are not shrunk towards zero;
/// 5. how often bootstrap refits of the training part choose each rule.
fn choose_rules(data: &Training<'_>, options: &LearnOptions) -> Result<Chosen, LearnError> {
    let (x, y_train, family, names) = (data.x, data.y, data.family, data.names);
    if y_train.iter().all(|&w| w) || y_train.iter().all(|&w| !w) {
        return Err(FitError::OneClass.into());
    }
    let p = x.cols.len();
    let mut set_aside: Vec<Option<String>> = vec![None; p];
    let constant: Vec<usize> = (0..p).filter(|&j| x.is_constant(j)).collect();
    // The attributes whose levels cover every training lead (one level each).
    let mut attributes: Vec<&str> = family.iter().flatten().copied().collect();
    attributes.sort_unstable();
    attributes.dedup();
    let members = |name: &str| -> Vec<usize> {
        (0..p)
            .filter(|&j| family[j] == Some(name) && !constant.contains(&j))
            .collect()
    };
    let covering: Vec<(&str, Vec<usize>)> = attributes
        .iter()
        .map(|&name| (name, members(name)))
        .filter(|(_, levels)| !levels.is_empty() && x.row_sums(levels).iter().all(|s| *s == 1.0))
        .collect();

    // 1. The same leads as a candidate of another attribute.
    let skip: Vec<bool> = (0..p).map(|j| constant.contains(&j)).collect();
    for (later, earlier, r) in x.collinear(0.99, &skip) {
        let same_attribute = family[later].is_some() && family[later] == family[earlier];
        if !same_attribute && set_aside[later].is_none() && set_aside[earlier].is_none() {
            set_aside[later] = Some(format!(
                "set aside: {} the same leads as {} (correlation {r:.3})",
                if r < 0.0 { "the opposite of" } else { "almost" },
                names[earlier].1
            ));
        }
    }
    let excluded: Vec<bool> = (0..p)
        .map(|j| set_aside[j].is_some() || constant.contains(&j))
        .collect();
    // Rules a solution stands for: an attribute with every level chosen has one fewer.
    let count_rules = |coef: &[f64]| -> usize {
        let chosen = coef.iter().filter(|c| **c != 0.0).count();
        let full = covering
            .iter()
            .filter(|(_, levels)| levels.iter().all(|&j| coef[j] != 0.0))
            .count();
        chosen - full
    };

    // 2. The path, its cross-validation and the one-standard-error choice.
    let tolerance = Tolerance::default();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let problem = Problem {
        x,
        y: y_train,
        weights: None,
        excluded: &excluded,
    };
    let grid = lambdas(problem, 40, 1e-3);
    let folds = options.fit.folds.max(2);
    let splits = fit::stratified_splits(y_train, folds, options.seed);
    // The path on every training lead stops early where the loss no longer moves; the
    // folds' paths go as far.
    let (full, curve) = path_and_cross_validate(problem, &splits, &grid, &tolerance, workers);
    let grid = &grid[..full.len()];
    let (best, one_se_index) = one_se(&curve).ok_or(FitError::NoFeatures)?;
    let cap = options.max_rules.max(1);
    let rules_at: Vec<usize> = full.iter().map(|s| count_rules(&s.coef)).collect();
    let chosen_index = (0..=one_se_index)
        .rev()
        .find(|&i| rules_at[i] <= cap)
        .unwrap_or(0);
    let path_points: Vec<PathPoint> = (0..curve.loss.len())
        .map(|i| {
            let eta = data.x_holdout.predict(&full[i].coef, full[i].intercept);
            PathPoint {
                lambda: grid[i],
                rules: rules_at[i],
                cv_log_loss: curve.loss[i],
                cv_se: curve.se[i],
                cv_auc: curve.auc[i],
                holdout_auc: metrics::auc(&eta, data.y_holdout),
            }
        })
        .collect();
    // A model with no rule scores every lead alike: where the best model has rules, the
    // smallest path model that predicts better than none is used instead.
    let helps = |i: usize| rules_at[i] > 0 && curve.loss[i] < curve.loss[0];
    let fallback = (rules_at[chosen_index] == 0)
        .then(|| (0..=best).find(|&i| helps(i) && rules_at[i] <= cap))
        .flatten();
    let chosen_index = fallback.unwrap_or(chosen_index);
    let one_se_rules = rules_at[one_se_index];
    let explanation = if fallback.is_some() {
        format!(
            "{}: the one-standard-error choice keeps none, which would score every lead alike; the smallest model that predicts better than none is used (the best has {})",
            count_of(rules_at[chosen_index]),
            count_of(rules_at[best])
        )
    } else if rules_at[chosen_index] == 0 {
        "no rule predicts winning better than the share of won deals does on these outcomes"
            .to_string()
    } else if chosen_index == one_se_index {
        format!(
            "{}: the fewest whose cross-validated log loss ({folds} folds of the training leads) is within one standard error of the best ({})",
            count_of(one_se_rules),
            count_of(rules_at[best])
        )
    } else {
        format!(
            "{}: the one-standard-error choice keeps {one_se_rules}, more than the cap of {cap} (--max-rules); the path's model with at most {cap} rules is used",
            count_of(rules_at[chosen_index])
        )
    };
    let l1 = &full[chosen_index];

    // 3. References: an attribute with every level chosen gives its lowest level 0.
    let mut support: Vec<usize> = (0..p).filter(|&j| l1.coef[j] != 0.0).collect();
    for (name, levels) in &covering {
        if levels.iter().all(|&j| l1.coef[j] != 0.0)
            && let Some(&reference) = levels
                .iter()
                .min_by(|&&a, &&b| l1.coef[a].total_cmp(&l1.coef[b]))
        {
            support.retain(|&j| j != reference);
            set_aside[reference] = Some(format!(
                "the reference level of {name}: 0 points, its other levels are weighed against it"
            ));
        }
    }

    // 4. The chosen columns refitted without the L1 shrinkage, on a thread of its own
    // while 5. the bootstrap refits measure how often each is chosen.
    let support_x = (!support.is_empty()).then(|| x.dense(&support));
    let (refit, freq) = std::thread::scope(|scope| {
        let refit = support_x
            .as_ref()
            .map(|xs| scope.spawn(|| fit::fit(xs.view(), y_train, &options.fit)));
        let freq = (options.bootstrap > 0 && !support.is_empty()).then(|| {
            selection_frequency(
                problem,
                grid[chosen_index],
                l1,
                options.bootstrap,
                options.seed,
                &tolerance,
                workers,
            )
        });
        let refit = refit.map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (refit, freq)
    });
    let mut coef = vec![0.0; p];
    let mut se = vec![None; p];
    let mut covariance: Option<Array2<f64>> = None;
    let (mut intercept, c) = match refit {
        None => (l1.intercept, 0.0),
        Some(refit) => {
            let refit = refit?;
            for (k, &j) in support.iter().enumerate() {
                coef[j] = refit.coef[k];
                se[j] = refit.se[k];
            }
            covariance = refit.covariance;
            (refit.intercept, refit.c)
        }
    };
    let mut stability = vec![None; p];
    if let Some(freq) = freq {
        for &j in &support {
            stability[j] = Some(freq[j]);
        }
    }
    // Ordinary leads score from 0: where chosen levels that hold for many leads lower the
    // odds, "none of them" gets the points they take away, and they go to 0 or above. A
    // rare level that lowers the odds (a competitor, a student) keeps negative points.
    let position = |j: usize| support.iter().position(|&s| s == j);
    let mut complements = Vec::new();
    for name in &attributes {
        let chosen: Vec<usize> = members(name)
            .into_iter()
            .filter(|&j| coef[j] != 0.0)
            .collect();
        let lowering: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&j| coef[j] < 0.0 && x.cols[j].index.len() * 10 >= x.rows)
            .collect();
        let Some((low, low_coef)) = lowering
            .iter()
            .map(|&j| (j, coef[j]))
            .min_by(|a, b| a.1.total_cmp(&b.1))
        else {
            continue;
        };
        // Every lead moves by -low_coef, the lowering levels' leads less.
        intercept += low_coef;
        let var = |a: usize, b: Option<usize>| -> Option<f64> {
            let cov = covariance.as_ref()?;
            let (ka, kb) = (position(a)?, b.and_then(position));
            let mut v = cov[[ka, ka]];
            if let Some(kb) = kb {
                v += cov[[kb, kb]] - 2.0 * cov[[ka, kb]];
            }
            Some(v.max(0.0).sqrt())
        };
        for &j in &lowering {
            if j != low {
                se[j] = var(j, Some(low));
            }
        }
        // Where the levels cover every lead and one level is left, that level is "none
        // of them".
        let rest: Vec<usize> = members(name)
            .into_iter()
            .filter(|j| !lowering.contains(j))
            .collect();
        let covers = covering.iter().any(|(c, _)| c == name);
        if covers && rest.len() == 1 && !excluded[rest[0]] {
            let other = rest[0];
            se[other] = if coef[other] == 0.0 {
                var(low, None)
            } else {
                var(other, Some(low))
            };
            coef[other] -= low_coef;
            stability[other] = stability[other].or(stability[low]);
            // It may have been the reference: it has points now.
            set_aside[other] = None;
        } else {
            complements.push(Complement {
                attribute: name.to_string(),
                levels: lowering.clone(),
                coef: -low_coef,
                se: var(low, None),
                stability: stability[low],
            });
        }
        for &j in &lowering {
            coef[j] -= low_coef;
            if j == low {
                coef[j] = 0.0;
                se[j] = None;
                set_aside[j] = Some(format!(
                    "0 points: the lowest common level of {name}; the leads without it get the points instead"
                ));
            }
        }
    }
    let set_aside_list = (0..p)
        .filter_map(|j| {
            set_aside[j].as_ref().map(|reason| SetAside {
                rule: names[j].0.to_string(),
                label: names[j].1.to_string(),
                reason: reason.clone(),
            })
        })
        .collect();
    Ok(Chosen {
        model: fit::Model {
            coef,
            se,
            intercept,
            constant,
            c,
            covariance: None,
        },
        selection: Selection {
            path: path_points,
            best,
            chosen: chosen_index,
            max_rules: cap,
            folds,
            bootstrap: options.bootstrap,
            explanation,
            set_aside: set_aside_list,
        },
        set_aside,
        stability,
        complements,
    })
}

struct DiffInput<'a> {
    weights: &'a [WeightRow],
    current: Option<&'a RuleSet>,
    thresholds: &'a Thresholds,
    /// Each hold-out lead's band under the current rules and under the suggested ones.
    before: Option<&'a [Band]>,
    after: &'a [Band],
    per_week: Option<f64>,
}

fn diff(input: &DiffInput<'_>) -> Diff {
    let mut out = Diff {
        hot_after: input.thresholds.hot,
        warm_after: input.thresholds.warm,
        holdout: input.after.len(),
        per_week: input.per_week,
        ..Diff::default()
    };
    for w in input.weights {
        let current = w.current_points.filter(|p| *p != 0.0);
        let suggested = (w.suggested_points != 0).then_some(w.suggested_points);
        let change = RuleChange {
            rule: w.rule.clone(),
            label: w.label.clone(),
            current,
            suggested,
        };
        match (current, suggested) {
            (None, Some(_)) => out.added.push(change),
            (Some(_), None) => out.removed.push(change),
            // Whole points: a current 2.5 kept as 3 is not a change.
            (Some(c), Some(s)) if (c - s as f64).abs() > 0.5 => out.changed.push(change),
            (Some(_), Some(_)) => out.unchanged += 1,
            (None, None) => {}
        }
    }
    out.added
        .sort_by_key(|c| std::cmp::Reverse(c.suggested.unwrap_or(0).abs()));
    let after = input.after;
    if let (Some(rules), Some(before)) = (input.current, input.before) {
        out.hot_before = Some(points_f64(rules.bands.hot));
        out.warm_before = Some(points_f64(rules.bands.warm));
        for (b, a) in before.iter().zip(after) {
            let (was, is) = (*b == Band::Hot, *a == Band::Hot);
            out.hot_now += usize::from(was);
            out.stay_hot += usize::from(was && is);
            out.newly_hot += usize::from(!was && is);
        }
    } else {
        out.newly_hot = after.iter().filter(|b| **b == Band::Hot).count();
    }
    out
}
