//! Command definitions and dispatch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hotlead_core::{RuleSet, rules::json_schema, score};

use crate::input;
use crate::output::{self, Format};

/// hotlead: lead scoring that says why a lead is hot.
#[derive(Debug, Parser)]
#[command(name = "hotlead", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  hotlead rules check examples/rules/seed.toml\n  hotlead score --rules examples/rules/seed.toml --leads examples/data/leads.csv --events examples/data/events.jsonl --at 2026-11-20T09:00:00+09:00 --format text"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and inspect rules files.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  hotlead rules check examples/rules/seed.toml\n  hotlead rules schema > schemas/rules.schema.json"
    )]
    Rules(RulesCommand),
    /// Score leads with a rules file and print each lead's score, band, grade and reasons.
    #[command(
        after_help = "Leads: CSV with a header row of attribute names and a `lead_id` column, or JSON lines\n(.jsonl/.ndjson) with a `lead_id` field. Events: JSON lines in the Segment shape (type, event,\nmessageId, userId, timestamp, properties, context.page), joined to leads by userId = lead_id.\n\nExamples:\n  hotlead score --rules examples/rules/seed.toml --leads examples/data/leads.csv \\\n      --events examples/data/events.jsonl --at 2026-11-20T09:00:00+09:00\n  hotlead score --rules rules.toml --leads leads.jsonl --format csv > scores.csv"
    )]
    Score(ScoreArgs),
    /// Run the whole product on this machine: the HTTP API (forms, Segment-style events,
    /// lead lookup and ranking, the tracking script) on a SQLite file, rescoring in the
    /// background, alerts appended to an outbox file.
    #[command(
        after_help = "Examples:\n  hotlead serve\n  hotlead serve --port 8080 --db data/hotlead.db --rules rules.toml --config hotlead.toml --write-key $KEY --admin-token $TOKEN\n\nThen, e.g.:\n  curl -X POST localhost:8080/v1/forms/contact -d email=taro@example.co.jp -d employees=1200\n  curl localhost:8080/v1/leads?band=hot"
    )]
    Serve(ServeArgs),
    /// Replay a bundled sample (three dozen leads, Japanese and English, forms and web
    /// events over six weeks, some anonymous first) from nothing, and show the hot leads
    /// ranked with their reasons and the alerts that went out.
    #[command(after_help = "Example:\n  hotlead demo\n  hotlead demo --dir /tmp/hotlead-demo")]
    Demo {
        /// Where to keep the demo's database and alert outbox (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Set up the AWS side (the standard AWS environment applies: AWS_REGION, credentials,
    /// AWS_ENDPOINT_URL for an emulator).
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  hotlead aws init --table hotlead --alerts-topic hotlead-alerts --analysts-topic hotlead-analysts"
    )]
    Aws(AwsCommand),
    /// Learn rule weights from closed deals in a CRM export and suggest revised rules, with
    /// hold-out evidence (AUC, lift, conversion per band, calibration) for review.
    #[command(
        after_help = "Examples:\n  hotlead learn --leads deals.csv --outcome stage=won --rules rules.toml --out suggestion/\n  hotlead learn --leads bank-additional-full.csv --outcome y=yes --exclude duration --discover --format json"
    )]
    Learn(Box<crate::learn::LearnArgs>),
    /// Closed deals, the truth rules are learned from.
    #[command(subcommand)]
    Outcomes(crate::review_cli::OutcomesCommand),
    /// Suggested rule weights: learn from stored outcomes, list, show, approve, reject.
    #[command(subcommand)]
    Suggestions(crate::review_cli::SuggestionsCommand),
    /// Leads the scorer set aside after failures of their own: list them, retry them.
    #[command(subcommand)]
    Leads(crate::ops_cli::LeadsCommand),
    /// Alerts that failed for good.
    #[command(subcommand)]
    Alerts(crate::ops_cli::AlertsCommand),
    /// What is kept of visitors no lead linked, and for how long (`[retention]` in the
    /// configuration).
    #[command(subcommand)]
    Retention(crate::ops_cli::RetentionCommand),
}

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// Create the DynamoDB table (with its stream) and the reps' and analysts' SNS topics,
    /// and print them as JSON (table, stream_arn, alerts_topic_arn, analysts_topic_arn).
    #[command(
        after_help = "Example:\n  AWS_ENDPOINT_URL=http://127.0.0.1:5050 hotlead aws init --table hotlead --alerts-topic hotlead-alerts --analysts-topic hotlead-analysts\n  export HOTLEAD_TABLE=hotlead HOTLEAD_ALERTS_TOPIC_ARN=... HOTLEAD_ANALYSTS_TOPIC_ARN=...\n  hotlead serve --backend aws"
    )]
    Init {
        /// The DynamoDB table to create.
        #[arg(long)]
        table: String,
        /// The reps' alert topic to create.
        #[arg(long)]
        alerts_topic: String,
        /// The analysts' topic to create.
        #[arg(long)]
        analysts_topic: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the data lives: this machine (default) or AWS.
    #[arg(long, value_enum, default_value_t = BackendArg::Embedded)]
    pub backend: BackendArg,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The SQLite database file (created if missing).
    #[arg(long, default_value = "hotlead-data/hotlead.db")]
    pub db: PathBuf,
    /// The rules file (default: the bundled seed rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Where delivered alerts are appended as JSON lines (default: alerts.jsonl beside the database).
    #[arg(long)]
    pub outbox: Option<PathBuf>,
    /// Server configuration: forms, alert language and routing, CORS origins.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write key required on event calls (Basic auth user name).
    #[arg(long, env = "HOTLEAD_WRITE_KEY", hide_env_values = true)]
    pub write_key: Option<String>,
    /// Bearer token required on the lead and review routes.
    #[arg(long, env = "HOTLEAD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Shared secret with which a CRM signs outcome webhooks (X-Hotlead-Timestamp: <unix
    /// seconds>, X-Hotlead-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">).
    #[arg(long, env = "HOTLEAD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Listen on a non-loopback --host without an admin token, leaving the lead and review
    /// routes open to anyone who reaches them. Without it, that is refused.
    #[arg(long)]
    pub open_admin: bool,
    /// Memory the scorer may keep leads' events in between rescores, in MiB (as estimated
    /// from what they hold; 0 keeps none): a lead rescored again is read only for its new
    /// events while they stay there.
    #[arg(long, default_value_t = (hotlead_app::event_cache::DEFAULT_BYTES >> 20) as u32)]
    pub event_cache_mb: u32,
}

/// Where `serve` keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// A SQLite file and an outbox file on this machine.
    Embedded,
    /// DynamoDB and SNS, from the standard AWS environment plus HOTLEAD_TABLE and HOTLEAD_ALERTS_TOPIC_ARN.
    Aws,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a rules file: prints a one-line summary, or every problem as
    /// FILE:LINE:COLUMN: FIELD: MESSAGE and exits with status 1.
    #[command(after_help = "Example:\n  hotlead rules check examples/rules/seed.toml")]
    Check {
        /// The rules file (TOML).
        file: PathBuf,
    },
    /// Print the JSON Schema of the rules file, for editors that complete and validate TOML.
    #[command(after_help = "Example:\n  hotlead rules schema > schemas/rules.schema.json")]
    Schema,
    /// Stored rules versions: history, rollback, install.
    #[command(flatten)]
    Stored(crate::review_cli::RulesStoreCommand),
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The rules file (TOML).
    #[arg(long)]
    pub rules: PathBuf,
    /// Leads: CSV with a `lead_id` column, or JSON lines.
    #[arg(long)]
    pub leads: PathBuf,
    /// Events: Segment-shaped JSON lines, joined by userId = lead_id.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Score as of this time (RFC 3339); events after it are ignored. Default: now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Output: one JSON object per line, CSV, or readable text.
    #[arg(long, value_enum, default_value_t = FormatArg::Json)]
    pub format: FormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Json,
    Csv,
    Text,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("expected an RFC 3339 date-time like 2026-11-20T09:00:00+09:00, got {text:?}")
        })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Logs go to stderr (stdout is the command's output). An erasure is recorded at
    // `info` (the lead id and counts: nothing personal); `HOTLEAD_LOG` sets the level.
    let erasing = matches!(
        cli.command,
        Command::Leads(crate::ops_cli::LeadsCommand::Erase { .. })
    );
    init_logging(if erasing { "info" } else { "warn" });
    match run(cli, &mut out, Utc::now()) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped reading (`| head`) is not an error.
        Err(error)
            if error.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = out.flush();
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs one command, writing its output to `out`. `now` is the default scoring time.
pub fn run(cli: Cli, out: &mut dyn Write, now: DateTime<Utc>) -> anyhow::Result<()> {
    match cli.command {
        Command::Rules(RulesCommand::Check { file }) => {
            let rules = load_rules(&file)?;
            writeln!(out, "{}: ok: {}", file.display(), summary(&rules))?;
        }
        Command::Rules(RulesCommand::Schema) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&json_schema())?)?;
        }
        Command::Score(args) => score_command(args, out, now)?,
        Command::Serve(args) => runtime()?.block_on(serve_command(args, out))?,
        Command::Aws(AwsCommand::Init {
            table,
            alerts_topic,
            analysts_topic,
        }) => {
            let made = runtime()?.block_on(async {
                let config = hotlead_aws::sdk_config().await;
                hotlead_aws::provision(&config, &table, &alerts_topic, &analysts_topic).await
            });
            let made = made.map_err(anyhow::Error::msg)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&made)?)?;
        }
        Command::Learn(args) => crate::learn::run(*args, out, now)?,
        Command::Outcomes(command) => {
            runtime()?.block_on(crate::review_cli::outcomes(command, out))?
        }
        Command::Suggestions(command) => {
            runtime()?.block_on(crate::review_cli::suggestions(command, out, now))?
        }
        Command::Leads(command) => runtime()?.block_on(crate::ops_cli::leads(command, out, now))?,
        Command::Alerts(command) => runtime()?.block_on(crate::ops_cli::alerts(command, out))?,
        Command::Retention(command) => {
            runtime()?.block_on(crate::ops_cli::retention(command, out, now))?
        }
        Command::Rules(RulesCommand::Stored(command)) => {
            runtime()?.block_on(crate::review_cli::rules(command, out))?
        }
        Command::Demo { dir } => {
            let dir = dir.unwrap_or_else(crate::demo::fresh_dir);
            runtime()?.block_on(crate::demo::run(&dir, out))?;
        }
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOTLEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve_command(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    init_logging("info");
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let aws = args.backend == BackendArg::Aws;
    let backend = match args.backend {
        BackendArg::Embedded => crate::serve::Backend::Embedded {
            db: args.db.clone(),
            outbox: args.outbox,
        },
        BackendArg::Aws => {
            crate::serve::Backend::Aws(Box::new(crate::serve::AwsBackend::from_env().await?))
        }
    };
    let options = crate::serve::ServeOptions {
        host: args.host,
        port: args.port,
        backend,
        rules: args.rules,
        config: args.config,
        auth: hotlead_api::Auth {
            write_key: nonempty(args.write_key),
            admin_token: nonempty(args.admin_token),
            webhook_secret: nonempty(args.webhook_secret),
        },
        // The AWS backend polls its stream: a short tick keeps scoring prompt.
        tick: std::time::Duration::from_secs(if aws { 1 } else { 5 }),
        open_admin: args.open_admin,
        event_cache_bytes: (args.event_cache_mb as usize).saturating_mul(1 << 20),
    };
    let auth = options.auth.clone();
    let running = crate::serve::start(options).await?;
    writeln!(out, "hotlead listening on {}", running.url())?;
    writeln!(
        out,
        "  rules {:?} version {}; {}",
        running.rules.name, running.rules.version, running.storage
    )?;
    writeln!(
        out,
        "  write key {}, admin token {}; tracking script {}/hotlead.js",
        if auth.write_key.is_some() {
            "required"
        } else {
            "not set (events are open)"
        },
        if auth.admin_token.is_some() {
            "required"
        } else {
            "not set (lead routes are open)"
        },
        running.url()
    )?;
    out.flush()?;
    tokio::signal::ctrl_c().await?;
    running.stop();
    Ok(())
}

/// Reads and validates a rules file; the error lists every problem with its location.
pub fn load_rules(path: &Path) -> anyhow::Result<RuleSet> {
    let source = input::read_text(path)?;
    Ok(RuleSet::from_toml(&path.display().to_string(), &source)?)
}

fn summary(rules: &RuleSet) -> String {
    let behaviour = rules
        .rules
        .iter()
        .filter(|r| matches!(r.kind, hotlead_core::rules::RuleKind::Behaviour(_)))
        .count();
    let stages = &rules.stages.stages;
    let stages = if stages.is_empty() {
        String::new()
    } else {
        let path: Vec<String> = stages
            .iter()
            .map(|s| match &s.entry {
                hotlead_core::stage::Entry::Action(action) => format!("{} (on {action})", s.id),
                hotlead_core::stage::Entry::Automatic { .. } => s.id.clone(),
            })
            .collect();
        format!(
            "; stages {}; {} reject reasons",
            path.join(", "),
            rules.stages.reject_reasons.len()
        )
    };
    format!(
        "rules {:?} version {}: {} rules ({} attribute, {} behaviour) in {} groups, {} instant alerts; hot at {} (stays hot down to {}), warm at {}{stages}",
        rules.name,
        rules.version,
        rules.rules.len(),
        rules.rules.len() - behaviour,
        behaviour,
        rules.groups.len(),
        rules.alerts.len(),
        rules.bands.hot,
        rules.bands.hot_exit,
        rules.bands.warm,
    )
}

fn score_command(args: ScoreArgs, out: &mut dyn Write, now: DateTime<Utc>) -> anyhow::Result<()> {
    let rules = load_rules(&args.rules)?;
    let leads = input::read_leads(&args.leads)?;
    let mut events = match &args.events {
        Some(path) => input::read_events(path)?,
        None => input::Events::default(),
    };
    let at = args.at.unwrap_or(now);
    let format = match args.format {
        FormatArg::Json => Format::Json,
        FormatArg::Csv => Format::Csv,
        FormatArg::Text => Format::Text,
    };
    let mut writer = output::ScoreWriter::new(format, &rules, out)?;
    for lead in &leads {
        let lead_events = events.by_user.remove(&lead.id).unwrap_or_default();
        let result = score(&rules, lead, &lead_events, at, None);
        writer
            .write(lead, &result)
            .context("cannot write the output")?;
    }
    writer.finish()?;
    let unjoined: usize = events.by_user.values().map(Vec::len).sum();
    if unjoined + events.anonymous > 0 {
        eprintln!(
            "note: {} events were not scored: {} have a userId matching no lead, {} have no userId",
            unjoined + events.anonymous,
            unjoined,
            events.anonymous
        );
    }
    Ok(())
}
