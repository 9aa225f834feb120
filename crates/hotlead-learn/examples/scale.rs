//! Scale check: a million synthetic labelled leads, fifty rules, the whole learning run
//! (rule terms, cross-validated fit, points, suggested rules, hold-out evaluation).
//! Prints seconds per stage and the peak resident memory (Linux).
//!
//! cargo run --release -p hotlead-learn --example scale -- [LEADS] [RULES]

use std::fmt::Write as _;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use hotlead_core::{Lead, RuleSet};
use hotlead_learn::fit::{SplitMix, sigmoid};
use hotlead_learn::{CurrentRules, Example, Hooks, LearnOptions, Outcome, Progress, Split};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let leads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rules_count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);

    // Rules: one per attribute `f<j>`, worth 10 points when it says "yes".
    let mut text = String::from(
        "name = \"scale\"\nversion = 1\n[bands]\nhot = 100\nwarm = 50\n[groups.fit]\naxis = \"fit\"\n",
    );
    for j in 0..rules_count {
        let _ = write!(
            text,
            "[[rules]]\nid = \"f{j}\"\ngroup = \"fit\"\npoints = 10\nwhen = {{ attribute = \"f{j}\", equals = \"yes\" }}\n"
        );
    }
    let rules = RuleSet::from_toml("scale.toml", &text).expect("rules");

    // Leads: each attribute "yes" with probability 0.2; the truth weighs them unevenly.
    let started = Instant::now();
    let mut rng = SplitMix::new(42);
    let truth: Vec<f64> = (0..rules_count)
        .map(|j| (j as f64 % 7.0 - 3.0) * 0.3)
        .collect();
    let decided = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let names: Vec<String> = (0..rules_count).map(|j| format!("f{j}")).collect();
    let examples: Vec<Example> = (0..leads)
        .map(|i| {
            let mut logit = -2.0;
            let mut lead = Lead::new(format!("L-{i}"));
            for (j, name) in names.iter().enumerate() {
                if rng.next_u64().is_multiple_of(5) {
                    lead.set(name, "yes");
                    logit += truth[j];
                }
            }
            let won = (rng.next_u64() as f64 / u64::MAX as f64) < sigmoid(logit);
            Example {
                id: lead.id.clone(),
                line: i as u64 + 2,
                lead,
                events: Vec::new(),
                won,
                decided_at: decided,
                created_at: None,
            }
        })
        .collect();
    let generated = started.elapsed().as_secs_f64();
    let after_generation = peak_rss_mib();

    let options = LearnOptions {
        split: Split::Random,
        ..LearnOptions::default()
    };
    let clock = Instant::now();
    let seconds = move || clock.elapsed().as_secs_f64();
    let mut stages: Vec<(&'static str, f64)> = Vec::new();
    let mut progress = |p: Progress| {
        if p.done == p.total {
            stages.push((p.stage, seconds()));
        }
    };
    let mut hooks = Hooks {
        progress: &mut progress,
        seconds: &seconds,
    };
    let learn_started = Instant::now();
    let outcome = hotlead_learn::learn(
        &examples,
        Some(CurrentRules {
            text: &text,
            rules: &rules,
        }),
        &options,
        &mut hooks,
    )
    .expect("learning");
    let total = learn_started.elapsed().as_secs_f64();
    let Outcome::Suggested(s) = outcome else {
        panic!("cold start at {leads} leads")
    };
    println!(
        "{}",
        serde_json::json!({
            "leads": leads,
            "rules": rules_count,
            "won": s.data.won,
            "generate_seconds": generated,
            "learn_seconds": total,
            "fit_seconds": s.suggested.fit_seconds,
            "stages_done_at_seconds": stages.iter().map(|(s, t)| serde_json::json!({"stage": s, "at": t})).collect::<Vec<_>>(),
            "regularisation_c": s.model.c,
            "current_auc": s.current.as_ref().map(|c| c.auc),
            "suggested_auc": s.suggested.auc,
            "peak_rss_mib_after_generating": after_generation,
            "peak_rss_mib": peak_rss_mib(),
        })
    );
}
