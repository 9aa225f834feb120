//! `hotlead leads set-aside|retry` and `hotlead alerts failed`: what an operator drains
//! when the scorer set a lead aside or an alert failed for good.

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use hotlead_app::ports::SetAside;

use crate::learn::LearnFormat;
use crate::review_cli::{StoreArgs, open_storage};

/// How many rows a listing shows at most.
const LIST_LIMIT: usize = 1_000;

#[derive(Debug, Subcommand)]
pub enum LeadsCommand {
    /// Import lead attributes from a CRM export (CSV with a header row: `email` and any
    /// attribute columns). This is the trusted channel: it may set the attributes the
    /// configuration trusts for routing (`[routing] trusted`), which public forms and
    /// tracking calls cannot. Bad rows are reported by line and field and skipped.
    #[command(
        after_help = "Example:\n  hotlead leads import crm-accounts.csv\n\nThe file:\n  email,company,crm_territory,crm_owner\n  taro@example.co.jp,日本トラスト保険株式会社,east,sato@example.co.jp"
    )]
    Import {
        file: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// The CSV delimiter, when detection guesses wrong: `,`, `;`, `tab` or `|`.
        #[arg(long, value_parser = crate::learn::parse_delimiter)]
        delimiter: Option<u8>,
    },
    /// Leads whose rescoring failed for a reason of their own, set aside so that they hold
    /// up no other lead; each is retried with backoff (1 min doubling to 1 h) and on its
    /// next event.
    #[command(after_help = "Example:\n  hotlead leads set-aside --db hotlead-data/hotlead.db")]
    SetAside {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// Erase a person on request (GDPR Art. 17, APPI): the lead and every lead merged
    /// into it, its identity links, events (its anonymous ones included), alerts and
    /// their bodies, outcome, scores and explanations; delivered alerts in the local
    /// outbox file are redacted. Erasing twice erases once. E-mail alerts already sent are
    /// the recipients' mail.
    #[command(
        after_help = "Examples:\n  hotlead leads erase --email taro@example.co.jp\n  hotlead leads erase --id L-0042 --backend aws"
    )]
    Erase {
        /// The person's e-mail address.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        email: Option<String>,
        /// The lead id (a merged lead's id stands for the lead it merged into).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// The embedded backend's alert outbox file to redact (default: beside the
        /// database).
        #[arg(long)]
        outbox: Option<std::path::PathBuf>,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// A lead's history: its band and stage changes (by the rules) and reps' actions from
    /// the lead page (accept, reject with a reason, contacted), oldest first, with the
    /// stage it is in now.
    #[command(
        after_help = "Examples:\n  hotlead leads history L-0042\n  hotlead leads history L-0042 --backend aws --format json"
    )]
    History {
        /// The lead id (a merged lead's id stands for the lead it merged into).
        lead: String,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// How fast reps act on hot alerts, per territory: alerts, answered, the median time
    /// from alert to first action (accept, reject, contacted on the lead page), answered
    /// within the rules' deadline (`[follow_up] respond_within_hours`, business hours),
    /// breaches and re-alerts, still waiting.
    #[command(
        after_help = "Examples:\n  hotlead leads follow-up\n  hotlead leads follow-up --days 7 --backend aws --format json"
    )]
    FollowUp {
        /// Alerts of the last this many days (default 30).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
    /// Make set-aside leads due now (after fixing what made them fail): the running
    /// scorer retries them in its next round.
    #[command(after_help = "Examples:\n  hotlead leads retry L-0042\n  hotlead leads retry --all")]
    Retry {
        /// The leads to retry.
        #[arg(required_unless_present = "all")]
        leads: Vec<String>,
        /// Every set-aside lead.
        #[arg(long, conflicts_with = "leads")]
        all: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts the notifier refused as invalid: they are not retried; each names its lead
    /// and the notifier's error.
    #[command(after_help = "Example:\n  hotlead alerts failed --backend aws")]
    Failed {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = LearnFormat::Text)]
        format: LearnFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Remove anonymous visitors' events older than `[retention] anonymous_days` (default
    /// 180) that no lead linked. `hotlead serve` does this every hour; DynamoDB expires
    /// them by itself (TTL on `expires_at`).
    #[command(after_help = "Example:\n  hotlead retention sweep --config hotlead.toml")]
    Sweep {
        #[command(flatten)]
        store: StoreArgs,
        /// The configuration file whose `[retention]` applies (default: the defaults).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

pub async fn retention(
    command: RetentionCommand,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let RetentionCommand::Sweep { store, config } = command;
    let config = crate::serve::load_config(config.as_deref())?;
    if matches!(store.backend, crate::cli::BackendArg::Aws) {
        writeln!(
            out,
            "nothing to do: DynamoDB deletes expired items by itself (TTL on expires_at)"
        )?;
        return Ok(());
    }
    let storage = open_storage(&store).await?;
    let swept = storage.sweep(now, config.retention).await?;
    writeln!(
        out,
        "{} anonymous event(s) older than {} days removed",
        swept.anonymous_events, config.retention.anonymous_days
    )?;
    Ok(())
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub async fn leads(
    command: LeadsCommand,
    out: &mut dyn Write,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    match command {
        LeadsCommand::Import {
            file,
            store,
            delimiter,
        } => import(&file, &store, delimiter, out).await?,
        LeadsCommand::FollowUp {
            days,
            store,
            format,
        } => {
            let storage = open_storage(&store).await?;
            let since = now - chrono::Duration::days(i64::from(days));
            let figures = hotlead_app::follow_up::load(storage.as_ref(), since, now, now).await?;
            match format {
                LearnFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&figures)?)?,
                LearnFormat::Text => {
                    let deadline = figures
                        .respond_within_hours
                        .map_or("no deadline set".to_string(), |h| {
                            format!("deadline {h} business hour(s)")
                        });
                    writeln!(out, "hot alerts of the last {days} day(s); {deadline}")?;
                    writeln!(
                        out,
                        "{:<16} {:>6} {:>8} {:>14} {:>8} {:>8} {:>10} {:>7}",
                        "territory",
                        "alerts",
                        "answered",
                        "median (min)",
                        "in time",
                        "breaches",
                        "realerted",
                        "waiting"
                    )?;
                    for f in figures
                        .territories
                        .iter()
                        .chain(std::iter::once(&figures.total))
                    {
                        writeln!(
                            out,
                            "{:<16} {:>6} {:>8} {:>14} {:>8} {:>8} {:>10} {:>7}",
                            f.territory,
                            f.alerts,
                            f.answered,
                            f.median_minutes_to_first_action
                                .map_or("-".to_string(), |m| format!("{m:.0}")),
                            f.within_deadline,
                            f.breaches,
                            f.realerted,
                            f.waiting
                        )?;
                    }
                    if figures.truncated {
                        writeln!(
                            out,
                            "(more alerts than {} in the period: the figures cover the first)",
                            hotlead_app::follow_up::MAX_RECORDS
                        )?;
                    }
                }
            }
        }
        LeadsCommand::History {
            lead,
            store,
            format,
        } => {
            let storage = open_storage(&store).await?;
            let Some(stored) = storage.lead(&lead).await? else {
                anyhow::bail!("no lead {lead:?} is stored");
            };
            let history = storage.history(&stored.id).await?;
            match format {
                LearnFormat::Json => writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "lead_id": stored.id,
                        "stage": stored.stage,
                        "band": stored.band(),
                        "history": history,
                    }))?
                )?,
                LearnFormat::Text => {
                    let stage = stored.stage.as_ref().map_or("none".to_string(), |s| {
                        format!("{} since {}", s.id, when(s.since))
                    });
                    writeln!(
                        out,
                        "{}: stage {stage}; {} change(s)",
                        stored.id,
                        history.len()
                    )?;
                    for entry in &history {
                        use hotlead_core::stage::Change;
                        let what = match &entry.change {
                            Change::Band {
                                from, to, score, ..
                            } => format!(
                                "band {} -> {to} ({score})",
                                from.map_or("-".to_string(), |b| b.to_string())
                            ),
                            Change::Stage { from, to } => {
                                format!("stage {} -> {to}", from.as_deref().unwrap_or("-"))
                            }
                            Change::Action { action, reason } => match reason {
                                Some(reason) => format!("{action}: {reason}"),
                                None => action.to_string(),
                            },
                        };
                        writeln!(out, "{}  {what}  by {}", when(entry.at), entry.by)?;
                    }
                }
            }
        }
        LeadsCommand::SetAside { store, format } => {
            let storage = open_storage(&store).await?;
            let leads = storage.set_aside_leads(LIST_LIMIT).await?;
            match format {
                LearnFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&leads)?)?,
                LearnFormat::Text if leads.is_empty() => writeln!(out, "no lead is set aside")?,
                LearnFormat::Text => {
                    writeln!(out, "{} lead(s) set aside:", leads.len())?;
                    for lead in &leads {
                        writeln!(
                            out,
                            "{}  failed {} time(s) since {}; next try {}\n    {}",
                            lead.lead_id,
                            lead.failures,
                            when(lead.since),
                            when(lead.retry_at),
                            lead.reason
                        )?;
                    }
                }
            }
        }
        LeadsCommand::Erase {
            email,
            id,
            store,
            outbox,
            format,
        } => erase(email, id, &store, outbox, format, out).await?,
        LeadsCommand::Retry { leads, all, store } => {
            let storage = open_storage(&store).await?;
            let waiting = storage.set_aside_leads(LIST_LIMIT).await?;
            let chosen: Vec<&SetAside> = waiting
                .iter()
                .filter(|l| all || leads.contains(&l.lead_id))
                .collect();
            if let Some(id) = leads
                .iter()
                .find(|id| !waiting.iter().any(|l| &l.lead_id == *id))
            {
                anyhow::bail!(
                    "lead {id} is not set aside (`hotlead leads set-aside` lists those that are)"
                );
            }
            for lead in &chosen {
                storage
                    .set_aside(&SetAside {
                        retry_at: now,
                        ..(*lead).clone()
                    })
                    .await?;
            }
            writeln!(out, "{} lead(s) due for a retry now", chosen.len())?;
        }
    }
    Ok(())
}

pub async fn alerts(command: AlertsCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let AlertsCommand::Failed { store, format } = command;
    let storage = open_storage(&store).await?;
    let failed = storage.failed_alerts(LIST_LIMIT).await?;
    match format {
        LearnFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&failed)?)?,
        LearnFormat::Text if failed.is_empty() => writeln!(out, "no alert failed for good")?,
        LearnFormat::Text => {
            writeln!(out, "{} alert(s) failed for good:", failed.len())?;
            for alert in &failed {
                writeln!(
                    out,
                    "{}  lead {}  after {} attempt(s), {}\n    {}",
                    alert.key,
                    alert.lead_id,
                    alert.attempts,
                    when(alert.failed_at),
                    alert.error
                )?;
            }
        }
    }
    Ok(())
}

async fn erase(
    email: Option<String>,
    id: Option<String>,
    store: &StoreArgs,
    outbox: Option<std::path::PathBuf>,
    format: LearnFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use hotlead_app::erase::EraseTarget;
    let target = match (email, id) {
        (Some(email), _) => EraseTarget::Email(email),
        (None, Some(id)) => EraseTarget::Id(id),
        (None, None) => anyhow::bail!("say whom to erase: --email or --id"),
    };
    let storage = open_storage(store).await?;
    let mut review =
        hotlead_app::review::Review::new(storage, std::sync::Arc::new(hotlead_app::SystemClock));
    if matches!(store.backend, crate::cli::BackendArg::Embedded) {
        let path = outbox.unwrap_or_else(|| crate::serve::default_outbox(&store.db));
        review = review.with_alert_archive(std::sync::Arc::new(hotlead_embedded::FileOutbox::new(
            &path,
        )));
    }
    let erasure = review
        .erase(&target)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match (format, erasure) {
        (LearnFormat::Json, erasure) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&erasure)?)?
        }
        (LearnFormat::Text, None) => writeln!(
            out,
            "no lead to erase: none has that {} (never stored, or erased already)",
            match target {
                EraseTarget::Email(_) => "address",
                EraseTarget::Id(_) => "id",
            }
        )?,
        (LearnFormat::Text, Some(erasure)) => {
            let e = &erasure.erased;
            writeln!(
                out,
                "erased lead {} ({} lead(s) with those merged into it): {} event(s), {} identity link(s), \
                 {} alert(s), {} outcome(s); {} delivered alert(s) redacted in the outbox file",
                e.lead_id,
                e.leads,
                e.events,
                e.identities,
                e.alerts,
                e.outcomes,
                erasure.alerts_redacted
            )?;
        }
    }
    Ok(())
}

async fn import(
    file: &std::path::Path,
    store: &StoreArgs,
    delimiter: Option<u8>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let text = crate::input::read_text(file)?;
    let table = hotlead_learn::table::read_table(&text, delimiter)
        .map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
    let email = table
        .headers
        .iter()
        .position(|h| hotlead_core::lead::attribute_name(h) == "email")
        .ok_or_else(|| {
            anyhow::anyhow!("{name}:1: field `email`: the header row needs an `email` column")
        })?;
    let storage = open_storage(store).await?;
    let ingest = hotlead_app::Ingest::new(
        storage,
        std::sync::Arc::new(hotlead_app::SystemClock),
        std::sync::Arc::new(hotlead_app::UuidIds),
        std::sync::Arc::new(hotlead_app::Config::default()),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let (mut stored, mut unchanged, mut skipped) = (0, 0, table.rejected.len());
    for row in &table.rejected {
        eprintln!("{name}:{row} (skipped)");
    }
    for row in &table.rows {
        let Some(address) = row.values[email].clone() else {
            eprintln!("{name}:{}: field `email`: is empty (skipped)", row.line);
            skipped += 1;
            continue;
        };
        let attributes: Vec<(String, String)> = table
            .headers
            .iter()
            .zip(&row.values)
            .enumerate()
            .filter(|(i, _)| *i != email)
            .filter_map(|(_, (header, value))| Some((header.clone(), value.clone()?)))
            .collect();
        match ingest.import(&address, &attributes).await {
            Ok(recorded) if recorded.duplicate => unchanged += 1,
            Ok(_) => stored += 1,
            Err(hotlead_app::IngestError::Invalid { field, message }) => {
                eprintln!("{name}:{}: field `{field}`: {message} (skipped)", row.line);
                skipped += 1;
            }
            Err(error) => anyhow::bail!(
                "{name}:{}: {error}; rows before it are stored, run the import again",
                row.line
            ),
        }
    }
    writeln!(
        out,
        "{name}: {stored} lead(s) updated, {unchanged} unchanged, {skipped} row(s) skipped"
    )?;
    Ok(())
}
