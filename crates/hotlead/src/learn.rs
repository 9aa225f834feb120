//! `hotlead learn`: suggested rule weights from a CRM export, offline.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use hotlead_core::RuleSet;
use hotlead_learn::dataset::{self, OutcomeSpec};
use hotlead_learn::discover::DiscoverOptions;
use hotlead_learn::{CurrentRules, Hooks, LearnOptions, Outcome, Progress, Split, Suggestion};

use crate::input;

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Labelled leads: a CSV export (`,`, `;` or tab; detected), one row per lead, with the
    /// outcome column; optional `lead_id` and `closed_at` columns.
    #[arg(long)]
    pub leads: PathBuf,
    /// Which rows are won: COLUMN=VALUE, e.g. `y=yes` or `stage=closed-won`.
    #[arg(long)]
    pub outcome: OutcomeSpec,
    /// The current rules: their terms become features and their scores the baseline.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Web events (Segment-shaped JSON lines, joined by userId = lead_id); only events
    /// before each deal closed count.
    #[arg(long)]
    pub events: Option<PathBuf>,
    #[command(flatten)]
    pub flags: LearnFlags,
    /// New leads per week (default: estimated from the close dates).
    #[arg(long)]
    pub leads_per_week: Option<f64>,
    /// The CSV delimiter, when detection guesses wrong: `,`, `;`, `tab` or `|`.
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Write suggestion.json, rules.toml, report.html and split.csv here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Readable text, or one JSON summary object.
    #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
    pub format: LearnFormat,
}

/// How a learning run goes; shared by `hotlead learn` and `hotlead suggestions learn`.
#[derive(Debug, Clone, Args)]
pub struct LearnFlags {
    /// Also weigh candidate rules generated from the data: categorical levels, numeric
    /// quantile bins, event names and URL paths with counts.
    #[arg(long)]
    pub discover: bool,
    /// Columns (attributes) never used, e.g. ones known only after the outcome.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Share of leads held out for evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub holdout_fraction: f64,
    /// Hold out at random (stratified) or the latest decided leads (default: random for
    /// an export, order for stored outcomes).
    #[arg(long, value_enum)]
    pub split: Option<SplitArg>,
    /// Seed for the split and the cross-validation folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// At most this many rules get points. The suggestion is the smallest model whose
    /// cross-validated loss is within one standard error of the best, capped by this.
    #[arg(long, default_value_t = 15)]
    pub max_rules: usize,
    /// Bootstrap refits of the training part that measure how often each chosen rule is
    /// chosen again (0: none).
    #[arg(long, default_value_t = 50)]
    pub bootstrap: usize,
    /// Hot leads the reps can call per week: the threshold that fits it is shown.
    #[arg(long)]
    pub capacity_per_week: Option<f64>,
    /// The inverse regularisation strength C (alpha = 1/C) of the final fit of the chosen
    /// rules (default 1).
    #[arg(long)]
    pub regularisation: Option<f64>,
    /// Fewer outcomes than this: no weights are suggested.
    #[arg(long, default_value_t = 200)]
    pub min_outcomes: usize,
    /// Fewer won (or lost) deals than this: no weights are suggested.
    #[arg(long, default_value_t = 30)]
    pub min_won: usize,
}

impl LearnFlags {
    pub fn options(&self, default_split: SplitArg, leads_per_week: Option<f64>) -> LearnOptions {
        LearnOptions {
            discover: self.discover.then(DiscoverOptions::default),
            holdout_fraction: self.holdout_fraction,
            split: self.split.unwrap_or(default_split).into(),
            seed: self.seed,
            max_rules: self.max_rules,
            bootstrap: self.bootstrap,
            capacity_per_week: self.capacity_per_week,
            leads_per_week,
            exclude: self.exclude.clone(),
            min_outcomes: self.min_outcomes,
            min_won: self.min_won,
            fit: {
                let defaults = hotlead_learn::fit::FitOptions::default();
                hotlead_learn::fit::FitOptions {
                    seed: self.seed,
                    c: self.regularisation.unwrap_or(defaults.c),
                    ..defaults
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Random,
    Order,
}

impl From<SplitArg> for Split {
    fn from(split: SplitArg) -> Split {
        match split {
            SplitArg::Random => Split::Random,
            SplitArg::Order => Split::Order,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LearnFormat {
    Text,
    Json,
}

pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "," => Ok(b','),
        ";" => Ok(b';'),
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        "|" => Ok(b'|'),
        _ => Err(format!("expected `,`, `;`, `tab` or `|`, got {text:?}")),
    }
}

/// Shows progress on a terminal; silent otherwise.
#[derive(Debug)]
pub struct ProgressLine {
    enabled: bool,
}

impl ProgressLine {
    pub fn new(quiet: bool) -> Self {
        ProgressLine {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    pub fn show(&self, p: Progress) {
        if self.enabled {
            eprint!("\r\x1b[2K{}: {}/{}", p.stage, p.done, p.total);
            if p.done == p.total {
                eprintln!();
            }
        }
    }
}

pub fn run(args: LearnArgs, out: &mut dyn Write, now: DateTime<Utc>) -> anyhow::Result<()> {
    let quiet = args.format == LearnFormat::Json;
    let text = input::read_text(&args.leads)?;
    let file = args.leads.display().to_string();
    let table = hotlead_learn::table::read_table(&text, args.delimiter)
        .map_err(|e| anyhow::anyhow!("{file}:{e}"))?;
    drop(text);
    let (mut examples, rejected) =
        dataset::examples(&table, &args.outcome, &args.flags.exclude, now)
            .map_err(|e| anyhow::anyhow!("{file}:{e}"))?;
    // The leads hold their values now: the table's memory can serve what follows.
    drop(table);
    for row in rejected.iter().take(20) {
        eprintln!("{file}:{row} (skipped)");
    }
    if rejected.len() > 20 {
        eprintln!("{file}: {} more rows skipped", rejected.len() - 20);
    }
    if let Some(path) = &args.events {
        let mut events = input::read_events(path)?;
        for example in &mut examples {
            example.events = events.by_user.remove(&example.id).unwrap_or_default();
        }
    }
    let current_text = args
        .rules
        .as_ref()
        .map(|p| input::read_text(p))
        .transpose()?;
    let current_rules: Option<RuleSet> = match (&args.rules, &current_text) {
        (Some(path), Some(text)) => Some(RuleSet::from_toml(&path.display().to_string(), text)?),
        _ => None,
    };
    let current = match (&current_text, &current_rules) {
        (Some(text), Some(rules)) => Some(CurrentRules { text, rules }),
        _ => None,
    };
    let options = args.flags.options(SplitArg::Random, args.leads_per_week);
    let progress = ProgressLine::new(quiet);
    let started = Instant::now();
    let seconds = move || started.elapsed().as_secs_f64();
    let mut show = |p: Progress| progress.show(p);
    let mut hooks = Hooks {
        progress: &mut show,
        seconds: &seconds,
    };
    let outcome = hotlead_learn::learn(&examples, current, &options, &mut hooks)?;
    let suggestion = match &outcome {
        Outcome::ColdStart(cold) => {
            if quiet {
                writeln!(out, "{}", serde_json::to_string_pretty(&outcome)?)?;
            } else {
                writeln!(out, "{}", cold.message)?;
            }
            return Ok(());
        }
        Outcome::Suggested(s) => s,
    };
    if let Some(dir) = &args.out {
        write_out(
            dir,
            suggestion,
            &examples,
            &hotlead_learn::suggest::holdout_mask(&examples, &options),
        )?;
    }
    if quiet {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&summary(suggestion, rejected.len()))?
        )?;
    } else {
        write_text(out, suggestion, rejected.len())?;
        if let Some(dir) = &args.out {
            writeln!(
                out,
                "\nwrote {0}/suggestion.json, {0}/rules.toml, {0}/report.html, {0}/split.csv",
                dir.display()
            )?;
        }
    }
    Ok(())
}

fn write_out(
    dir: &std::path::Path,
    suggestion: &Suggestion,
    examples: &[hotlead_learn::Example],
    holdout: &[bool],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "suggestion.json",
        &serde_json::to_string_pretty(suggestion)?,
    )?;
    write("rules.toml", &suggestion.rules_toml)?;
    write(
        "report.html",
        &hotlead_learn::report::render("offline run", suggestion),
    )?;
    let mut split = String::from("line,lead_id,part\n");
    for (example, &held) in examples.iter().zip(holdout) {
        split.push_str(&format!(
            "{},{},{}\n",
            example.line,
            csv_field(&example.id),
            if held { "holdout" } else { "training" }
        ));
    }
    write("split.csv", &split)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The `--format json` summary: headline hold-out figures for current and suggested.
pub fn summary(s: &Suggestion, rejected: usize) -> serde_json::Value {
    let figures = |e: &hotlead_learn::Evaluation| {
        serde_json::json!({
            "rules": format!("{} v{}", e.rules.name, e.rules.version),
            "auc": e.auc,
            "log_loss": e.log_loss,
            "top_decile_lift": e.top_decile_lift,
            "top_decile_capture": e.top_decile_capture,
            "threshold": e.threshold,
            "hot_share": e.hot_share,
            "hot_per_week": e.hot_per_week,
            "capacity_threshold": e.capacity_threshold,
            "bands": e.bands,
        })
    };
    let mut suggested = figures(&s.suggested);
    suggested["fit_seconds"] = serde_json::json!(s.suggested.fit_seconds);
    suggested["model_auc"] = serde_json::json!(s.suggested.model_auc);
    suggested["rules_with_points"] =
        serde_json::json!(s.weights.iter().filter(|w| w.suggested_points != 0).count());
    serde_json::json!({
        "result": "suggested",
        "notices": s.notices,
        "diff": s.diff,
        "selection": {
            "explanation": s.selection.explanation,
            "path": s.selection.path,
            "chosen": s.selection.chosen,
            "best": s.selection.best,
            "set_aside": s.selection.set_aside,
        },
        "scale": s.model.scale,
        "data": s.data,
        "rejected_rows": rejected,
        "regularisation_c": s.model.c,
        "points_per_logit": s.model.points_per_logit,
        "thresholds": s.thresholds,
        "current": s.current.as_ref().map(figures),
        "suggested": suggested,
    })
}

pub fn write_text(out: &mut dyn Write, s: &Suggestion, rejected: usize) -> std::io::Result<()> {
    for line in hotlead_learn::report::diff_lines(s) {
        writeln!(out, "{line}")?;
    }
    writeln!(out)?;
    let d = &s.data;
    writeln!(
        out,
        "{} outcomes ({} won, {} lost; {} rows skipped): {} training, {} hold-out; {} rules weighed ({} discovered); {}; new leads a week: {}",
        d.outcomes,
        d.won,
        d.lost,
        rejected,
        d.training,
        d.holdout,
        d.features,
        d.discovered,
        s.model.scale,
        d.leads_per_week.map_or("unknown".to_string(), |w| format!(
            "{w:.0} (from {})",
            d.leads_per_week_source
        ))
    )?;
    writeln!(
        out,
        "\nhold-out        AUC  log loss  top-10% lift  hot at  hot share  hot/week"
    )?;
    for (name, e) in s
        .current
        .iter()
        .map(|c| ("current", c))
        .chain([("suggested", &s.suggested)])
    {
        writeln!(
            out,
            "{name:<10} {:>8.3} {:>9.4} {:>13.2} {:>7} {:>9.1}% {:>9}",
            e.auc,
            e.log_loss,
            e.top_decile_lift,
            e.threshold,
            e.hot_share * 100.0,
            e.hot_per_week.map_or("-".into(), |w| format!("{w:.1}"))
        )?;
    }
    writeln!(
        out,
        "\nsuggested hot threshold {} (warm {}): it {}",
        s.thresholds.hot, s.thresholds.warm, s.thresholds.reason
    )?;
    writeln!(
        out,
        "\nrule                                      current  suggested  range     chosen in"
    )?;
    let mut rows: Vec<_> = s
        .weights
        .iter()
        .filter(|w| w.suggested_points != 0 || w.current_points.is_some())
        .collect();
    rows.sort_by_key(|w| std::cmp::Reverse(w.suggested_points.abs()));
    for w in rows.iter().take(40) {
        writeln!(
            out,
            "{:<42} {:>7} {:>10}  {:<9} {:>9}{}",
            w.rule.chars().take(42).collect::<String>(),
            w.current_points.map_or("-".into(), |p| format!("{p}")),
            w.suggested_points,
            match (w.low, w.high) {
                (Some(l), Some(h)) => format!("{l}..{h}"),
                _ => "-".into(),
            },
            w.stability
                .map_or("-".into(), |f| format!("{:.0} %", f * 100.0)),
            w.flag
                .as_deref()
                .map_or(String::new(), |f| format!("  ({f})"))
        )?;
    }
    if rows.len() > 40 {
        writeln!(
            out,
            "... and {} more (see suggestion.json)",
            rows.len() - 40
        )?;
    }
    Ok(())
}
