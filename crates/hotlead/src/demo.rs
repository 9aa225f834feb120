//! `hotlead demo`: starts from nothing, replays a bundled sample of forms and web events
//! through the same services `hotlead serve` uses, and shows the hot leads with their
//! reasons and the alerts that went out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, FixedOffset};
use hotlead_app::ingest::FormSubmission;
use hotlead_app::ports::Store;
use hotlead_app::scorer::{ManualClock, SequentialIds};
use hotlead_app::{Config, Ingest, Scorer};
use hotlead_core::{Band, RuleSet};
use hotlead_embedded::{FileOutbox, SqliteStore};
use serde_json::Value;
use tokio::sync::Notify;

/// The sample: one JSON object per line, `{"at", "form", "fields", "anonymousId"}` or
/// `{"at", "call"}`; written by `examples/demo/generate.py`.
pub const SAMPLE: &str = include_str!("../../../examples/demo/sample.jsonl");
/// The configuration the sample's forms use.
pub const DEMO_CONFIG: &str = include_str!("../../../examples/config/hotlead.toml");

/// A fresh directory for the demo's database and outbox.
pub fn fresh_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("hotlead-demo-{}-{nanos}", std::process::id()))
}

#[derive(Debug, Default)]
struct Replayed {
    forms: usize,
    calls: usize,
    duplicates: usize,
    ignored_forms: usize,
    first: Option<DateTime<FixedOffset>>,
    last: Option<DateTime<FixedOffset>>,
}

/// Runs the demo in `dir` (created; must not hold a database already) and writes the
/// report to `out`.
pub async fn run(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let db = dir.join("hotlead.db");
    anyhow::ensure!(
        !db.exists(),
        "{} already holds a database; the demo starts from nothing",
        dir.display()
    );
    let config = Arc::new(Config::from_toml("(bundled demo config)", DEMO_CONFIG)?);
    let store = Arc::new(SqliteStore::open(&db)?);
    let outbox = dir.join("alerts.jsonl");
    let clock = Arc::new(ManualClock::default());
    // The seed rules, stored as version 1, so that the review loop can start from them.
    let review =
        hotlead_app::review::Review::new(store.clone(), Arc::new(hotlead_app::SystemClock));
    let rules = Arc::new(crate::serve::install_rules(&review, None).await?);
    let wake = Arc::new(Notify::new());
    let scorer = Scorer::new(
        store.clone(),
        Arc::new(FileOutbox::new(&outbox)),
        clock.clone(),
        rules.clone(),
        config.clone(),
    );
    let ingest = Ingest::new(
        store.clone(),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        config,
        wake,
    );

    let mut replayed = Replayed::default();
    for (index, line) in SAMPLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let entry: Value =
            serde_json::from_str(line).with_context(|| format!("sample line {}", index + 1))?;
        let at = entry["at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .with_context(|| format!("sample line {}: at", index + 1))?;
        clock.set(at.to_utc());
        replayed.first.get_or_insert(at);
        replayed.last = Some(at);
        if let Some(form_id) = entry["form"].as_str() {
            let mut fields: Vec<(String, String)> = entry["fields"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(anonymous) = entry["anonymousId"].as_str() {
                fields.push(("anonymousId".into(), anonymous.into()));
            }
            let submission = FormSubmission {
                form_id: form_id.into(),
                fields,
                ..FormSubmission::default()
            };
            match ingest.form(submission).await? {
                hotlead_app::FormOutcome::Stored { .. } => replayed.forms += 1,
                hotlead_app::FormOutcome::Ignored { .. } => replayed.ignored_forms += 1,
            }
        } else {
            let recorded = ingest.call(&entry["call"], None).await?;
            replayed.calls += 1;
            replayed.duplicates += usize::from(recorded.duplicate);
        }
        scorer.run_once().await?;
    }
    if let Some(last) = replayed.last {
        clock.set((last + Duration::hours(1)).to_utc());
        scorer.run_once().await?;
    }
    report(out, &replayed, store.as_ref(), &rules, dir, &outbox).await
}

async fn report(
    out: &mut dyn Write,
    replayed: &Replayed,
    store: &dyn Store,
    rules: &RuleSet,
    dir: &Path,
    outbox: &Path,
) -> anyhow::Result<()> {
    let days = |t: Option<DateTime<FixedOffset>>| {
        t.map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    writeln!(
        out,
        "hotlead demo: replayed {} form submissions and {} web events ({} repeated, {} bot form ignored), {} .. {}, with the seed rules (hot at {})",
        replayed.forms,
        replayed.calls,
        replayed.duplicates,
        replayed.ignored_forms,
        days(replayed.first),
        days(replayed.last),
        rules.bands.hot
    )?;
    writeln!(out, "data: {}\n", dir.display())?;

    let all = store.ranking(None, 500, None).await?;
    let counts = [Band::Hot, Band::Warm, Band::Cold]
        .map(|b| all.leads.iter().filter(|l| l.band() == Some(b)).count());
    writeln!(
        out,
        "{} leads: {} hot, {} warm, {} cold\n",
        all.leads.len(),
        counts[0],
        counts[1],
        counts[2]
    )?;
    writeln!(out, "Hot leads, highest score first:")?;
    let hot = store.ranking(Some(Band::Hot), 100, None).await?;
    for (rank, lead) in hot.leads.iter().enumerate() {
        let Some(score) = &lead.score else { continue };
        let who: Vec<&str> = ["company", "name", "title"]
            .iter()
            .filter_map(|a| lead.attributes.get(*a).map(String::as_str))
            .collect();
        writeln!(
            out,
            "{:>3}. {}  {}  {}  {}",
            rank + 1,
            score.score,
            score.grade,
            lead.id,
            who.join(" / ")
        )?;
        for contribution in score
            .contributions
            .iter()
            .filter(|c| !c.rule.starts_with("cap:"))
        {
            writeln!(out, "       {}", contribution.describe(rules.utc_offset))?;
        }
    }
    let alerts = std::fs::read_to_string(outbox).unwrap_or_default();
    let alerts: Vec<Value> = alerts
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    writeln!(
        out,
        "\nAlerts that went out ({}), in order, to {}:",
        alerts.len(),
        outbox.display()
    )?;
    for alert in &alerts {
        writeln!(
            out,
            "  {:<28} -> {:<9} {}",
            alert["subject"].as_str().unwrap_or_default(),
            alert["territory"].as_str().unwrap_or_default(),
            alert["owner"].as_str().unwrap_or("(no owner)")
        )?;
    }
    if let Some(first) = alerts.iter().find(|a| a["reason"] == "hot") {
        writeln!(
            out,
            "\nThe first hot-lead alert, as the rep reads it:\n\n{}\n{}",
            first["subject"].as_str().unwrap_or_default(),
            first["body"].as_str().unwrap_or_default()
        )?;
    }
    Ok(())
}
