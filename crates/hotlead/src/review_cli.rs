//! `hotlead outcomes`, `hotlead suggestions` and `hotlead rules history|rollback|install`:
//! the review loop on the embedded database or on AWS.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use hotlead_app::SystemClock;
use hotlead_app::ports::SuggestionStatus;
use hotlead_app::review::{LearnRun, Review, ReviewError, Storage};

use crate::cli::BackendArg;
use crate::input;
use crate::learn::{LearnFlags, LearnFormat, ProgressLine, SplitArg};

/// Where the review loop's data is.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The embedded database, or AWS (HOTLEAD_TABLE and the standard AWS environment).
    #[arg(long, value_enum, default_value_t = BackendArg::Embedded)]
    pub backend: BackendArg,
    /// The SQLite database file.
    #[arg(long, default_value = "hotlead-data/hotlead.db")]
    pub db: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum OutcomesCommand {
    /// Import closed deals from a CSV export: `lead_id` or `email`, `outcome` (won/lost),
    /// `closed_at`, optional `amount`. Bad rows are reported by line and skipped.
    #[command(
        after_help = "Example:\n  hotlead outcomes import deals.csv\n\nThe file:\n  email,outcome,closed_at,amount\n  taro@example.co.jp,won,2026-10-31,1200000"
    )]
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// The CSV delimiter, when detection guesses wrong: `,`, `;`, `tab` or `|`.
        #[arg(long, value_parser = crate::learn::parse_delimiter)]
        delimiter: Option<u8>,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum SuggestionsCommand {
    /// Learn from the stored outcomes against the active rules and store a pending
    /// suggestion (what the scheduled `learn` function does).
    #[command(
        after_help = "Example:\n  hotlead suggestions learn --discover --capacity-per-week 40"
    )]
    Learn(Box<StoreLearnArgs>),
    /// List suggestions, newest first.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// Show one suggestion's figures and weights; `--report FILE` writes its HTML report,
    /// `--rules FILE` its rules file.
    Show {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// Approve a pending suggestion: its rules become the next version, active at once;
    /// every lead is rescored by the running service.
    Approve {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        /// Who approves (kept with the decision).
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Reject a pending suggestion, saying why.
    Reject {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Debug, Args)]
pub struct StoreLearnArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub flags: LearnFlags,
    #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
    pub format: LearnFormat,
}

#[derive(Debug, Subcommand)]
pub enum RulesStoreCommand {
    /// Every stored rules version, newest first, and which is active.
    History {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// Make an earlier version active again; the running service rescores every lead.
    Rollback {
        version: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Store a rules file as the next version and make it active.
    Install {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

async fn open(store: &StoreArgs) -> anyhow::Result<Review> {
    Ok(Review::new(
        open_storage(store).await?,
        Arc::new(SystemClock),
    ))
}

/// The store `--backend` / `--db` name.
pub async fn open_storage(store: &StoreArgs) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(match store.backend {
        BackendArg::Embedded => {
            Arc::new(hotlead_embedded::SqliteStore::open(&store.db).map_err(|e| {
                anyhow::anyhow!("cannot open the database {}: {e}", store.db.display())
            })?)
        }
        BackendArg::Aws => {
            let table = std::env::var("HOTLEAD_TABLE")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("HOTLEAD_TABLE is not set"))?;
            let config = hotlead_aws::sdk_config().await;
            Arc::new(hotlead_aws::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                table,
            ))
        }
    })
}

/// The error with its causes (`{:#}` shows them).
fn review_error(error: ReviewError) -> anyhow::Error {
    anyhow::Error::new(error)
}

pub async fn outcomes(command: OutcomesCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let OutcomesCommand::Import {
        file,
        store,
        delimiter,
        format,
    } = command;
    let text = input::read_text(&file)?;
    let name = file.display().to_string();
    let (rows, mut rejected) = hotlead_app::review::outcome_rows(&text, delimiter)
        .map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
    let review = open(&store).await?;
    let total = rows.len() + rejected.len();
    let progress = ProgressLine::new(format == LearnFormat::Json);
    let mut show = |p| progress.show(p);
    let mut report = review
        .import_outcomes_with_progress(rows, &mut show)
        .await
        .map_err(review_error)?;
    rejected.append(&mut report.rejected);
    rejected.sort_by_key(|r| r.line);
    report.rejected = rejected;
    if format == LearnFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    for row in report.rejected.iter().take(50) {
        eprintln!("{name}:{row} (skipped)");
    }
    if report.rejected.len() > 50 {
        eprintln!("{name}: {} more rows skipped", report.rejected.len() - 50);
    }
    writeln!(
        out,
        "{name}: stored {} outcomes ({} won, {} lost); skipped {} of {} rows",
        report.stored,
        report.won,
        report.lost,
        report.rejected.len(),
        total
    )?;
    Ok(())
}

pub async fn suggestions(
    command: SuggestionsCommand,
    out: &mut dyn Write,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    match command {
        SuggestionsCommand::Learn(args) => {
            let review = open(&args.store).await?;
            let progress = ProgressLine::new(args.format == LearnFormat::Json);
            let started = Instant::now();
            let seconds = move || started.elapsed().as_secs_f64();
            let mut show = |p| progress.show(p);
            let run = review
                .learn(
                    hotlead_app::review::new_suggestion_id(now),
                    &args.flags.options(SplitArg::Order, None),
                    &mut show,
                    &seconds,
                )
                .await
                .map_err(review_error)?;
            match (&run, args.format) {
                (_, LearnFormat::Json) => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&run_summary(&run))?)?
                }
                (LearnRun::ColdStart(cold), LearnFormat::Text) => {
                    writeln!(out, "{}", cold.message)?
                }
                (LearnRun::Suggested(stored), LearnFormat::Text) => {
                    crate::learn::write_text(out, &stored.suggestion, 0)?;
                    writeln!(
                        out,
                        "\nstored as suggestion {0} (pending): hotlead suggestions show {0} --report report.html; then approve or reject it",
                        stored.id
                    )?;
                }
            }
        }
        SuggestionsCommand::List { store, format } => {
            let review = open(&store).await?;
            let heads = review.store().suggestions(100).await?;
            if format == LearnFormat::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&heads)?)?;
            } else if heads.is_empty() {
                writeln!(
                    out,
                    "no suggestions yet: `hotlead suggestions learn` makes one from stored outcomes"
                )?;
            } else {
                writeln!(
                    out,
                    "{:<32} {:<20} {:<9} {:>8} {:>8} {:>9}",
                    "id", "created", "status", "current", "suggest", "outcomes"
                )?;
                for h in heads {
                    writeln!(
                        out,
                        "{:<32} {:<20} {:<9} {:>8} {:>8.3} {:>9}",
                        h.id,
                        h.created_at.format("%Y-%m-%d %H:%M"),
                        h.review.name(),
                        h.current_auc.map_or("-".into(), |a| format!("{a:.3}")),
                        h.suggested_auc,
                        h.outcomes
                    )?;
                }
            }
        }
        SuggestionsCommand::Show {
            id,
            store,
            report,
            rules,
            format,
        } => {
            let review = open(&store).await?;
            let stored = review.suggestion(&id).await.map_err(review_error)?;
            if let Some(path) = &report {
                std::fs::write(
                    path,
                    hotlead_learn::report::render(&stored.id, &stored.suggestion),
                )
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            if let Some(path) = &rules {
                std::fs::write(path, &stored.suggestion.rules_toml)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            }
            if format == LearnFormat::Json {
                writeln!(out, "{}", serde_json::to_string_pretty(&stored)?)?;
            } else {
                writeln!(
                    out,
                    "suggestion {} ({}), made {}",
                    stored.id,
                    status_words(&stored.review),
                    stored.created_at.format("%Y-%m-%d %H:%M UTC")
                )?;
                crate::learn::write_text(out, &stored.suggestion, 0)?;
            }
        }
        SuggestionsCommand::Approve { id, store, by } => {
            let review = open(&store).await?;
            let version = review.approve(&id, &by).await.map_err(review_error)?;
            writeln!(
                out,
                "approved {id}: rules version {} ({:?}) is active; a running service rescores every lead with it",
                version.version, version.name
            )?;
        }
        SuggestionsCommand::Reject {
            id,
            store,
            reason,
            by,
        } => {
            let review = open(&store).await?;
            review
                .reject(&id, &by, &reason)
                .await
                .map_err(review_error)?;
            writeln!(out, "rejected {id}")?;
        }
    }
    Ok(())
}

fn status_words(status: &SuggestionStatus) -> String {
    match status {
        SuggestionStatus::Pending => "pending review".into(),
        SuggestionStatus::Approved {
            at,
            by,
            rules_version,
        } => format!(
            "approved by {by} on {} as rules version {rules_version}",
            at.format("%Y-%m-%d")
        ),
        SuggestionStatus::Rejected { at, by, reason } => {
            format!("rejected by {by} on {}: {reason}", at.format("%Y-%m-%d"))
        }
    }
}

fn run_summary(run: &LearnRun) -> serde_json::Value {
    match run {
        LearnRun::ColdStart(cold) => {
            serde_json::json!({"result": "cold_start", "cold_start": cold})
        }
        LearnRun::Suggested(stored) => {
            let mut summary = crate::learn::summary(&stored.suggestion, 0);
            summary["id"] = serde_json::json!(stored.id);
            summary
        }
    }
}

pub async fn rules(command: RulesStoreCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        RulesStoreCommand::History { store, format } => {
            let review = open(&store).await?;
            let history = review.store().rules_history().await?;
            if format == LearnFormat::Json {
                let list: Vec<serde_json::Value> = history
                    .iter()
                    .map(|v| serde_json::json!({"version": v.version, "name": v.name, "created_at": v.created_at, "source": v.source, "activated_at": v.activated_at, "active": v.active}))
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else if history.is_empty() {
                writeln!(
                    out,
                    "no rules stored yet: `hotlead serve` stores its rules file as version 1"
                )?;
            } else {
                for v in history {
                    writeln!(
                        out,
                        "{} v{:<4} {:<20} {:<16} {}",
                        if v.active { "*" } else { " " },
                        v.version,
                        v.name,
                        v.created_at.format("%Y-%m-%d %H:%M"),
                        v.source
                    )?;
                }
            }
        }
        RulesStoreCommand::Rollback { version, store } => {
            let review = open(&store).await?;
            let active = review.rollback(version).await.map_err(review_error)?;
            writeln!(
                out,
                "rules version {} ({:?}) is active again; a running service rescores every lead with it",
                active.version, active.name
            )?;
        }
        RulesStoreCommand::Install { file, store } => {
            let text = input::read_text(&file)?;
            hotlead_core::RuleSet::from_toml(&file.display().to_string(), &text)?;
            let review = open(&store).await?;
            let version = review
                .install(&text, &format!("file {}", file.display()))
                .await
                .map_err(review_error)?;
            writeln!(
                out,
                "rules version {} ({:?}) is active",
                version.version, version.name
            )?;
        }
    }
    Ok(())
}
