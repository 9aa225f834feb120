//! Tiny hand-made datasets with known answers.

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotlead_core::{Event, Lead, RuleSet};
use ndarray::Array2;

use crate::discover::DiscoverOptions;
use crate::fit::{self, FitError, FitOptions, SplitMix};
use crate::{CurrentRules, Example, Hooks, LearnError, LearnOptions, Outcome, Split, learn};

fn at(day: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(day)
}

fn example(i: usize, won: bool, attributes: &[(&str, &str)]) -> Example {
    Example {
        id: format!("lead-{i}"),
        line: i as u64 + 2,
        lead: Lead::from_raw(format!("lead-{i}"), attributes.iter().copied()),
        events: Vec::new(),
        won,
        decided_at: at(i as i64 / 10),
        created_at: None,
    }
}

fn run(examples: &[Example], current: Option<CurrentRules<'_>>, options: &LearnOptions) -> Outcome {
    let mut progress = |_| {};
    let seconds = || 0.0;
    let mut hooks = Hooks {
        progress: &mut progress,
        seconds: &seconds,
    };
    learn(examples, current, options, &mut hooks).unwrap()
}

fn discovering() -> LearnOptions {
    LearnOptions {
        discover: Some(DiscoverOptions::default()),
        min_outcomes: 20,
        min_won: 5,
        fit: FitOptions {
            folds: 3,
            ..FitOptions::default()
        },
        ..LearnOptions::default()
    }
}

fn suggested(outcome: Outcome) -> Box<crate::Suggestion> {
    match outcome {
        Outcome::Suggested(s) => s,
        Outcome::ColdStart(c) => panic!("cold start: {}", c.message),
    }
}

/// Won leads are exactly the `pro` plan: a perfectly separable set.
fn separable(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let won = i % 3 == 0;
            example(
                i,
                won,
                &[
                    ("plan", if won { "pro" } else { "free" }),
                    ("region", "east"),
                ],
            )
        })
        .collect()
}

#[test]
fn separable_data_gives_the_deciding_level_the_points_and_a_perfect_hold_out() {
    let s = suggested(run(&separable(300), None, &discovering()));
    let weight = |id: &str| s.weights.iter().find(|w| w.rule == id).unwrap();
    assert!(weight("learned-plan-pro").suggested_points > 0);
    // One fact, one rule: `free` is the reference level of `plan`, worth nothing.
    assert_eq!(weight("learned-plan-free").suggested_points, 0);
    assert!(
        weight("learned-plan-free")
            .flag
            .as_deref()
            .is_some_and(|f| f.contains("reference level of plan")),
        "{:?}",
        weight("learned-plan-free")
    );
    assert_eq!(s.suggested.auc, 1.0);
    // Every won hold-out lead is hot and no lost one is.
    let hot = s.suggested.bands.iter().find(|b| b.band == "hot").unwrap();
    assert_eq!(hot.conversion, 1.0);
    // The rules file scores as the report says.
    let rules = RuleSet::from_toml("rules.toml", &s.rules_toml).unwrap();
    assert_eq!(rules.bands.hot.hundredths(), s.thresholds.hot * 100);
}

#[test]
fn a_constant_column_carries_no_weight_and_is_left_out_of_the_rules() {
    let s = suggested(run(&separable(300), None, &discovering()));
    // "region" is "east" for everyone: its level is constant.
    let region = s
        .weights
        .iter()
        .find(|w| w.rule == "learned-region-east")
        .unwrap();
    assert!(region.flag.as_deref().unwrap().contains("no variation"));
    assert!(!s.rules_toml.contains("learned-region-east"));

    let x = Array2::from_shape_fn((40, 2), |(i, j)| if j == 0 { 1.0 } else { (i % 2) as f64 });
    let y: Vec<bool> = (0..40).map(|i| i % 2 == 1).collect();
    let model = fit::fit(x.view(), &y, &FitOptions::default()).unwrap();
    assert_eq!(model.constant, [0]);
    assert_eq!(model.coef[0], 0.0);
    assert!(model.coef[1] > 0.0);
}

#[test]
fn one_class_is_a_cold_start_and_the_fit_refuses_it() {
    let examples: Vec<Example> = (0..300)
        .map(|i| example(i, false, &[("plan", "free")]))
        .collect();
    match run(&examples, None, &discovering()) {
        Outcome::ColdStart(c) => {
            assert_eq!(c.won, 0);
            assert_eq!(c.need_won, 5);
            assert!(c.message.contains("5 more won deals"), "{}", c.message);
        }
        Outcome::Suggested(_) => panic!("no won deals, yet weights were suggested"),
    }
    let x = Array2::from_shape_fn((10, 1), |(i, _)| i as f64);
    assert_eq!(
        fit::fit(x.view(), &[false; 10], &FitOptions::default()),
        Err(FitError::OneClass)
    );
}

#[test]
fn too_few_outcomes_say_how_many_more_are_needed() {
    let options = LearnOptions {
        min_outcomes: 200,
        min_won: 30,
        ..discovering()
    };
    match run(&separable(120), None, &options) {
        Outcome::ColdStart(c) => {
            assert_eq!((c.outcomes, c.won), (120, 40));
            assert_eq!(c.need_outcomes, 80);
            assert_eq!(c.need_won, 0);
            assert!(c.message.contains("80 more outcomes"), "{}", c.message);
        }
        Outcome::Suggested(_) => panic!("weights suggested from 120 outcomes"),
    }
}

#[test]
fn collinear_columns_share_the_weight_and_keep_finite_errors() {
    let mut rng = SplitMix::new(3);
    let n = 400;
    let signal: Vec<f64> = (0..n).map(|_| (rng.next_u64() % 2) as f64).collect();
    let y: Vec<bool> = signal
        .iter()
        .map(|&s| (rng.next_u64() % 100) < if s > 0.0 { 80 } else { 20 })
        .collect();
    let x = Array2::from_shape_fn((n, 2), |(i, _)| signal[i]);
    let model = fit::fit(x.view(), &y, &FitOptions::default()).unwrap();
    assert!(
        (model.coef[0] - model.coef[1]).abs() < 1e-6,
        "{:?}",
        model.coef
    );
    assert!(model.coef[0] > 0.0);
    assert!(model.se.iter().all(|s| s.is_some_and(f64::is_finite)));
}

#[test]
fn known_coefficients_are_recovered_with_errors_that_cover_them() {
    // log-odds = -1 + 2·a - 1·b, a and b independent coin flips.
    let mut rng = SplitMix::new(11);
    let n = 4000;
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for _ in 0..n {
        let a = (rng.next_u64() % 2) as f64;
        let b = (rng.next_u64() % 2) as f64;
        let p = fit::sigmoid(-1.0 + 2.0 * a - b);
        y.push((rng.next_u64() as f64 / u64::MAX as f64) < p);
        rows.extend([a, b]);
    }
    let x = Array2::from_shape_vec((n, 2), rows).unwrap();
    let options = FitOptions {
        c: 1e4,
        ..FitOptions::default()
    };
    let model = fit::fit(x.view(), &y, &options).unwrap();
    for (j, truth) in [2.0, -1.0].into_iter().enumerate() {
        let se = model.se[j].unwrap();
        assert!(
            (model.coef[j] - truth).abs() < 3.0 * se,
            "{j}: {} ± {se}",
            model.coef[j]
        );
        assert!(se > 0.02 && se < 0.2, "{se}");
    }
    assert!((model.intercept + 1.0).abs() < 0.2, "{}", model.intercept);
}

#[test]
fn same_data_and_seed_give_the_same_suggestion_and_another_seed_another_split() {
    let data = separable(300);
    let a = serde_json::to_string(&run(&data, None, &discovering())).unwrap();
    let b = serde_json::to_string(&run(&data, None, &discovering())).unwrap();
    assert_eq!(a, b);
    let other = LearnOptions {
        seed: 9,
        ..discovering()
    };
    let mask = |o: &LearnOptions| crate::suggest::holdout_mask(&data, o);
    assert_ne!(mask(&discovering()), mask(&other));
    assert_eq!(mask(&discovering()).iter().filter(|h| **h).count(), 60);
}

#[test]
fn only_events_before_the_close_count() {
    // Won leads see the demo page only after their deal closed: no signal before it.
    let examples: Vec<Example> = (0..300)
        .map(|i| {
            let won = i % 3 == 0;
            let mut e = example(i, won, &[("plan", if i % 2 == 0 { "a" } else { "b" })]);
            if won {
                e.events
                    .push(page(i, "/demo", e.decided_at + Duration::days(1)));
            }
            e.events
                .push(page(i + 10_000, "/home", e.decided_at - Duration::days(1)));
            e
        })
        .collect();
    let s = suggested(run(&examples, None, &discovering()));
    assert!(s.weights.iter().all(|w| !w.rule.contains("demo")));
    assert!(s.weights.iter().any(|w| w.rule == "learned-page-home"));
    assert!(s.suggested.auc < 0.75, "{}", s.suggested.auc);
}

fn page(i: usize, path: &str, when: DateTime<Utc>) -> Event {
    Event::from_segment(&serde_json::json!({
        "type": "page",
        "messageId": format!("m-{i}-{path}"),
        "userId": format!("lead-{i}"),
        "timestamp": when.to_rfc3339(),
        "properties": { "path": path },
    }))
    .unwrap()
}

const CURRENT: &str = r#"
name = "current"
version = 3

[bands]
hot = 50
warm = 20

[groups.fit]
axis = "fit"
max = 40

[[rules]]
id = "pro-plan"
group = "fit"
points = 10
when = { attribute = "plan", equals = "pro" }

[[rules]]
id = "east"
group = "fit"
points = 30
when = { attribute = "region", equals = "east" }
"#;

#[test]
fn current_rules_are_reweighed_and_compared_on_the_same_hold_out() {
    let examples: Vec<Example> = (0..400)
        .map(|i| {
            let won = i % 4 == 0;
            let region = if i % 5 == 0 { "east" } else { "west" };
            example(
                i,
                won,
                &[
                    ("plan", if won || i % 7 == 0 { "pro" } else { "free" }),
                    ("region", region),
                ],
            )
        })
        .collect();
    let rules = RuleSet::from_toml("current.toml", CURRENT).unwrap();
    let options = LearnOptions {
        discover: None,
        split: Split::Order,
        ..discovering()
    };
    let s = suggested(run(
        &examples,
        Some(CurrentRules {
            text: CURRENT,
            rules: &rules,
        }),
        &options,
    ));
    let current = s.current.as_ref().unwrap();
    assert!(
        s.suggested.auc > current.auc,
        "{} vs {}",
        s.suggested.auc,
        current.auc
    );
    let weight = |id: &str| s.weights.iter().find(|w| w.rule == id).unwrap();
    assert!(weight("pro-plan").suggested_points > weight("east").suggested_points);
    assert_eq!(weight("east").current_points, Some(30.0));
    // The suggested file is the next version, keeps the rules, drops the group cap.
    // `east` says nothing about winning here: the suggestion drops it, and says so first.
    let next = RuleSet::from_toml("rules.toml", &s.rules_toml).unwrap();
    assert_eq!(next.version, 4);
    assert_eq!(
        next.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["pro-plan"]
    );
    assert_eq!(
        s.diff
            .removed
            .iter()
            .map(|c| c.rule.as_str())
            .collect::<Vec<_>>(),
        ["east"]
    );
    assert_eq!(s.diff.changed[0].rule, "pro-plan");
    assert!(next.groups[0].max.is_none());
    assert_eq!(s.data.split, Split::Order);
}

#[test]
fn bad_options_are_refused() {
    let data = separable(300);
    let mut progress = |_| {};
    let seconds = || 0.0;
    let mut hooks = Hooks {
        progress: &mut progress,
        seconds: &seconds,
    };
    let bad = LearnOptions {
        holdout_fraction: 1.0,
        ..discovering()
    };
    assert!(matches!(
        learn(&data, None, &bad, &mut hooks),
        Err(LearnError::Fraction(_))
    ));
    let nothing = LearnOptions {
        discover: None,
        ..discovering()
    };
    assert!(matches!(
        learn(&data, None, &nothing, &mut hooks),
        Err(LearnError::NothingToLearn)
    ));
}

#[test]
fn the_report_is_one_self_contained_file() {
    let s = suggested(run(&separable(300), None, &discovering()));
    let html = crate::report::render("s-1", &s);
    assert!(html.starts_with("<!doctype html>"));
    // ROC, gains, bands, calibration, and the selection path.
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(!html.contains("<script"));
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(html.contains("learned-plan-pro"));
}

#[test]
fn excluded_attributes_are_never_used() {
    let mut data = separable(300);
    for (i, e) in data.iter_mut().enumerate() {
        e.lead
            .set("Region Code", if i % 2 == 0 { "a" } else { "b" });
        let tier = if i % 3 == 0 || i % 5 == 0 {
            "gold"
        } else {
            "basic"
        };
        e.lead.set("tier", tier);
    }
    let options = LearnOptions {
        exclude: vec!["plan".into(), "region code".into()],
        ..discovering()
    };
    let s = suggested(run(&data, None, &options));
    assert!(
        s.weights
            .iter()
            .all(|w| !w.rule.contains("plan") && !w.rule.contains("region-code")),
        "{:?}",
        s.weights.iter().map(|w| &w.rule).collect::<Vec<_>>()
    );
    assert!(!s.rules_toml.contains("\"plan\""));
    assert!(s.weights.iter().any(|w| w.rule == "learned-tier-gold"));
}

/// A uniform number in [0, 1) from the test's own generator.
fn uniform(rng: &mut SplitMix) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Discovery with the defaults, no bootstrap refits (they do not change the rules).
fn without_bootstrap(data: &[Example]) -> Box<crate::Suggestion> {
    suggested(run(
        data,
        None,
        &LearnOptions {
            bootstrap: 0,
            ..discovering()
        },
    ))
}

/// Ids of the rules that get points.
fn rules_with_points(s: &crate::Suggestion) -> Vec<&str> {
    let mut ids: Vec<&str> = s
        .weights
        .iter()
        .filter(|w| w.suggested_points != 0)
        .map(|w| w.rule.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_planted_three_rule_truth_among_fifty_noise_candidates_is_recovered_and_only_it() {
    let mut rng = SplitMix::new(42);
    let data: Vec<Example> = (0..4_000)
        .map(|i| {
            let values: Vec<(String, &str)> = (0..53)
                .map(|a| {
                    let yes = uniform(&mut rng) < 0.3;
                    (format!("a{a}"), if yes { "yes" } else { "no" })
                })
                .collect();
            let eta = -2.0
                + [1.6, 1.2, 0.9]
                    .iter()
                    .enumerate()
                    .map(|(a, w)| if values[a].1 == "yes" { *w } else { 0.0 })
                    .sum::<f64>();
            let won = uniform(&mut rng) < fit::sigmoid(eta);
            let attributes: Vec<(&str, &str)> =
                values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            example(i, won, &attributes)
        })
        .collect();
    let options = LearnOptions {
        bootstrap: 10,
        ..discovering()
    };
    let s = suggested(run(&data, None, &options));
    assert_eq!(
        rules_with_points(&s),
        ["learned-a0-yes", "learned-a1-yes", "learned-a2-yes"],
        "{}",
        s.selection.explanation
    );
    for id in ["learned-a0-yes", "learned-a1-yes", "learned-a2-yes"] {
        let w = s.weights.iter().find(|w| w.rule == id).unwrap();
        assert!(w.suggested_points > 0, "{w:?}");
        assert!(w.stability.unwrap() >= 0.9, "{w:?}");
    }
    assert!(s.thresholds.hot > 0, "{:?}", s.thresholds);
    // The path shows what each extra rule buys; the suggestion is on it.
    let chosen = &s.selection.path[s.selection.chosen];
    assert_eq!(chosen.rules, 3);
    assert!(s.selection.path.iter().any(|p| p.rules > 3));
    // The rules file holds exactly those rules.
    let rules = RuleSet::from_toml("rules.toml", &s.rules_toml).unwrap();
    assert_eq!(rules.rules.len(), 3);
}

#[test]
fn complementary_levels_and_bins_never_both_get_points() {
    let mut rng = SplitMix::new(7);
    let data: Vec<Example> = (0..5_000)
        .map(|i| {
            let cellular = uniform(&mut rng) < 0.6;
            let contacted_before = uniform(&mut rng) < 0.15;
            let pdays = if contacted_before {
                format!("{}", 1 + (rng.next_u64() % 20))
            } else {
                "999".to_string()
            };
            let eta =
                -2.5 + if cellular { 1.2 } else { 0.0 } + if contacted_before { 1.8 } else { 0.0 };
            let won = uniform(&mut rng) < fit::sigmoid(eta);
            example(
                i,
                won,
                &[
                    ("contact", if cellular { "cellular" } else { "telephone" }),
                    ("pdays", &pdays),
                ],
            )
        })
        .collect();
    let s = without_bootstrap(&data);
    let points = |prefix: &str| -> Vec<(String, i64)> {
        s.weights
            .iter()
            .filter(|w| w.rule.starts_with(prefix) && w.suggested_points != 0)
            .map(|w| (w.label.clone(), w.suggested_points))
            .collect()
    };
    let contact = points("learned-contact-");
    assert_eq!(contact.len(), 1, "{contact:?}");
    assert_eq!(contact[0].0, "contact = cellular");
    assert!(contact[0].1 > 0);
    // The two lower bins of pdays (< 14, 14 – 999) have the same effect: the one rule is
    // "not pdays ≥ 999", with positive points, never a pair that cancels.
    let pdays = points("learned-pdays-");
    assert_eq!(pdays.len(), 1, "{pdays:?}");
    assert_eq!(pdays[0].0, "not pdays ≥ 999");
    assert!(pdays[0].1 > 0);
    let rules = RuleSet::from_toml("rules.toml", &s.rules_toml).unwrap();
    assert_eq!(rules.rules.len(), 2, "{}", s.rules_toml);
    // Ordinary leads (telephone, never contacted) score 0: every point is positive and
    // so is the hot threshold.
    assert!(s.weights.iter().all(|w| w.suggested_points >= 0));
    assert!(s.thresholds.hot > 0);
}

#[test]
fn a_single_level_attribute_gets_points_for_its_level_only_and_a_constant_one_none() {
    let mut rng = SplitMix::new(11);
    let data: Vec<Example> = (0..2_000)
        .map(|i| {
            let subscribed = uniform(&mut rng) < 0.4;
            let won = uniform(&mut rng) < fit::sigmoid(-2.0 + if subscribed { 1.5 } else { 0.0 });
            let mut attributes = vec![("country", "jp")];
            if subscribed {
                attributes.push(("newsletter", "yes"));
            }
            example(i, won, &attributes)
        })
        .collect();
    let s = without_bootstrap(&data);
    assert_eq!(rules_with_points(&s), ["learned-newsletter-yes"]);
    let missing = s
        .weights
        .iter()
        .find(|w| w.rule == "learned-newsletter-missing")
        .unwrap();
    assert!(
        missing
            .flag
            .as_deref()
            .is_some_and(|f| f.contains("reference level of newsletter")),
        "{missing:?}"
    );
    assert!(
        !s.weights
            .iter()
            .any(|w| w.rule.contains("newsletter-other"))
    );
}

#[test]
fn the_hot_threshold_fits_a_given_capacity_within_one_lead_a_week() {
    // 2,000 leads over 200 days (70 a week), four graded signals: many distinct scores.
    let mut rng = SplitMix::new(5);
    let data: Vec<Example> = (0..2_000)
        .map(|i| {
            let values: Vec<f64> = (0..4).map(|_| uniform(&mut rng) * 1000.0).collect();
            let eta = -3.0 + values.iter().sum::<f64>() / 700.0;
            let won = uniform(&mut rng) < fit::sigmoid(eta);
            let texts: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
            example(
                i,
                won,
                &[
                    ("employees", &texts[0]),
                    ("revenue", &texts[1]),
                    ("visits", &texts[2]),
                    ("age", &texts[3]),
                ],
            )
        })
        .collect();
    let options = LearnOptions {
        capacity_per_week: Some(7.0),
        bootstrap: 0,
        ..discovering()
    };
    let s = suggested(run(&data, None, &options));
    let per_week = s.data.leads_per_week.unwrap();
    assert_eq!(s.data.leads_per_week_source, "close dates");
    assert!((per_week - 70.0).abs() < 2.0, "{per_week}");
    assert!(
        s.thresholds.reason.contains("capacity of 7"),
        "{}",
        s.thresholds.reason
    );
    // On the training leads, as the suggested rules file scores them.
    let rules = RuleSet::from_toml("rules.toml", &s.rules_toml).unwrap();
    let holdout = crate::suggest::holdout_mask(&data, &options);
    let training: Vec<&Example> = data
        .iter()
        .zip(&holdout)
        .filter(|(_, held)| !**held)
        .map(|(e, _)| e)
        .collect();
    let hot = training
        .iter()
        .filter(|e| {
            hotlead_core::score(&rules, &e.lead, &e.events, e.decided_at, None).band
                == hotlead_core::Band::Hot
        })
        .count();
    let hot_per_week = hot as f64 / training.len() as f64 * per_week;
    assert!((hot_per_week - 7.0).abs() <= 1.0, "{hot_per_week} a week");
    assert!(s.notices.is_empty(), "{:?}", s.notices);
}

#[test]
fn a_capacity_without_leads_per_week_says_so_instead_of_falling_back_silently() {
    let mut data = separable(300);
    for e in &mut data {
        e.decided_at = at(0);
    }
    let options = LearnOptions {
        capacity_per_week: Some(40.0),
        bootstrap: 0,
        ..discovering()
    };
    let s = suggested(run(&data, None, &options));
    assert_eq!(s.data.leads_per_week, None);
    assert_eq!(s.data.leads_per_week_source, "unknown");
    assert!(
        s.notices[0].contains("capacity (40 hot leads a week) could not be used"),
        "{:?}",
        s.notices
    );
    assert!(!s.thresholds.reason.contains("capacity"));
    // With creation dates, those give the leads per week.
    for (i, e) in data.iter_mut().enumerate() {
        e.created_at = Some(at(i as i64 / 5));
    }
    let s = suggested(run(&data, None, &options));
    assert_eq!(s.data.leads_per_week_source, "creation dates");
    assert!(s.thresholds.reason.contains("capacity of 40"));
}

#[test]
fn a_rare_value_that_lowers_the_odds_keeps_negative_points_and_says_so_a_common_one_does_not() {
    let mut rng = SplitMix::new(3);
    let data: Vec<Example> = (0..6_000)
        .map(|i| {
            let roll = uniform(&mut rng);
            let role = if roll < 0.05 {
                "student"
            } else if roll < 0.5 {
                "manager"
            } else {
                "engineer"
            };
            // Cold calls are half the leads and win less than the rest.
            let cold = uniform(&mut rng) < 0.5;
            let eta =
                -1.0 + if role == "student" { -2.5 } else { 0.0 } + if cold { -1.2 } else { 0.0 };
            let won = uniform(&mut rng) < fit::sigmoid(eta);
            example(
                i,
                won,
                &[
                    ("role", role),
                    ("source", if cold { "cold call" } else { "web" }),
                ],
            )
        })
        .collect();
    let s = without_bootstrap(&data);
    let student = s
        .weights
        .iter()
        .find(|w| w.rule == "learned-role-student")
        .unwrap();
    assert!(student.suggested_points < 0, "{student:?}");
    assert!(
        student
            .flag
            .as_deref()
            .is_some_and(|f| f.contains("rare value")),
        "{student:?}"
    );
    // The common lowering value (cold calls) is the one worth 0: web leads get points.
    let with_points: Vec<(&str, i64)> = s
        .weights
        .iter()
        .filter(|w| w.rule.starts_with("learned-source") && w.suggested_points != 0)
        .map(|w| (w.label.as_str(), w.suggested_points))
        .collect();
    assert_eq!(with_points.len(), 1, "{with_points:?}");
    assert_eq!(with_points[0].0, "source = web");
    assert!(with_points[0].1 > 0);
    assert!(s.thresholds.hot > 0);
}

#[test]
fn when_no_rule_tells_leads_apart_nobody_is_hot_or_warm_and_the_suggestion_says_why() {
    let data: Vec<Example> = (0..300)
        .map(|i| example(i, i % 3 == 0, &[("region", "east")]))
        .collect();
    let s = without_bootstrap(&data);
    assert!(rules_with_points(&s).is_empty());
    assert!(
        s.selection.explanation.contains("no rule predicts"),
        "{}",
        s.selection.explanation
    );
    let hot = s.suggested.bands.iter().find(|b| b.band == "hot").unwrap();
    let warm = s.suggested.bands.iter().find(|b| b.band == "warm").unwrap();
    assert_eq!((hot.leads, warm.leads), (0, 0), "{:?}", s.thresholds);
}
