//! The embedded store: one SQLite file (WAL), schema migrations, and the [`Store`] port
//! implemented on it. Every operation is one transaction on one connection, so calls are
//! serialised and concurrent first submissions of one e-mail make one lead.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use hotlead_app::ports::{
    ActionOutcome, ActionRecord, DealOutcome, Dirty, EraseSubject, Erased, FailedAlert,
    FollowUpRecord, HistoryEntry, HistoryRead, LearningStore, NewRules, OutboxEntry, Pending,
    RankCursor, RankingPage, Record, Recorded, Retention, RulesVersion, SaveOutcome, ScoreUpdate,
    SetAside, Store, StoreError, StoredLead, StoredSuggestion, SuggestionHead, SuggestionStatus,
    Swept, with_version,
};
use hotlead_core::identity::{self, IdentityKey, KnownLead, LeadIdentity, LinkChange, Resolution};
use hotlead_core::{Band, Event};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: leads, identity links, events, the alert outbox.
    "CREATE TABLE leads (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        merged_into TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        score_json TEXT,
        score_hundredths INTEGER,
        band TEXT,
        scored_at TEXT,
        hot_crossings INTEGER NOT NULL DEFAULT 0,
        dirty_seq INTEGER NOT NULL DEFAULT 0,
        scored_seq INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX leads_ranking ON leads (score_hundredths DESC, id) WHERE merged_into IS NULL;
     CREATE INDEX leads_band_ranking ON leads (band, score_hundredths DESC, id) WHERE merged_into IS NULL;
     CREATE INDEX leads_dirty ON leads (updated_at) WHERE dirty_seq > scored_seq;
     CREATE TABLE identities (
        key TEXT PRIMARY KEY,
        lead_id TEXT NOT NULL,
        linked_at TEXT NOT NULL
     );
     CREATE INDEX identities_lead ON identities (lead_id);
     CREATE TABLE events (
        message_id TEXT PRIMARY KEY,
        lead_id TEXT,
        anonymous_id TEXT,
        timestamp TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body TEXT NOT NULL
     );
     CREATE INDEX events_lead ON events (lead_id, timestamp);
     CREATE INDEX events_anonymous ON events (anonymous_id) WHERE lead_id IS NULL;
     CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        lead_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        message TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        delivered_at TEXT,
        last_error TEXT
     );
     CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL;",
    // 2: finding leads whose score has aged.
    "CREATE INDEX leads_scored_at ON leads (scored_at) WHERE merged_into IS NULL;",
    // 3: the learning loop: outcomes, suggestions, versioned rules.
    "CREATE TABLE outcomes (
        lead_id TEXT PRIMARY KEY,
        won INTEGER NOT NULL,
        closed_at TEXT NOT NULL,
        amount REAL,
        received_at TEXT NOT NULL
     );
     CREATE TABLE suggestions (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        review TEXT NOT NULL,
        body TEXT NOT NULL
     );
     CREATE INDEX suggestions_created ON suggestions (created_at DESC, id DESC);
     CREATE TABLE rules_versions (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        source TEXT NOT NULL,
        text TEXT NOT NULL,
        activated_at TEXT
     );
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 4: set-aside leads; alert claims and alerts failed for good.
    "ALTER TABLE leads ADD COLUMN aside_reason TEXT;
     ALTER TABLE leads ADD COLUMN aside_failures INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE leads ADD COLUMN aside_since TEXT;
     ALTER TABLE leads ADD COLUMN aside_until TEXT;
     CREATE INDEX leads_aside ON leads (aside_until) WHERE aside_until IS NOT NULL;
     ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
     ALTER TABLE outbox ADD COLUMN failed_at TEXT;
     DROP INDEX outbox_pending;
     CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
     CREATE INDEX outbox_failed ON outbox (failed_at) WHERE failed_at IS NOT NULL;",
    // 5: what each call said (a reused message id is told from a retry); the order of a
    // lead's keys (the oldest go first past the limit); finding merged leads.
    "ALTER TABLE events ADD COLUMN digest TEXT;
     ALTER TABLE identities ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX leads_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;",
    // 6: the retention sweep of anonymous visitors' events; erasing a lead's alerts and
    // outcome.
    "CREATE INDEX events_anonymous_received ON events (received_at) WHERE lead_id IS NULL;
     CREATE INDEX outbox_lead ON outbox (lead_id);",
    // 7: lead stages, their history and reps' actions.
    "ALTER TABLE leads ADD COLUMN stage_json TEXT;
     ALTER TABLE leads ADD COLUMN history_rev INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE history (
        lead_id TEXT NOT NULL,
        rev INTEGER NOT NULL,
        at TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (lead_id, rev)
     );
     CREATE TABLE action_tokens (
        lead_id TEXT NOT NULL,
        token TEXT NOT NULL,
        PRIMARY KEY (lead_id, token)
     );
     CREATE TABLE follow_ups (
        lead_id TEXT NOT NULL,
        crossing INTEGER NOT NULL,
        territory TEXT NOT NULL,
        owner TEXT,
        alerted_at TEXT NOT NULL,
        due_at TEXT,
        first_action_at TEXT,
        first_action TEXT,
        escalated_at TEXT,
        closed_at TEXT,
        PRIMARY KEY (lead_id, crossing)
     );
     CREATE INDEX follow_ups_open ON follow_ups (due_at)
        WHERE due_at IS NOT NULL AND first_action_at IS NULL AND escalated_at IS NULL AND closed_at IS NULL;
     CREATE INDEX follow_ups_alerted ON follow_ups (alerted_at);",
];

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::corrupt(format!("time {text:?}")).because(e))
}

fn sql(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::conflict("the database is busy").because(error)
        }
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::corrupt("a stored value has the wrong type").because(error)
        }
        other => StoreError::unavailable("the database failed").because(other),
    }
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt("stored JSON").because(e))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt("writing JSON").because(e))
}

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::unavailable(parent.display().to_string()).because(e))?;
        }
        let connection = Connection::open(path).map_err(sql)?;
        Self::prepare(connection)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::prepare(Connection::open_in_memory().map_err(sql)?)
    }

    fn prepare(mut connection: Connection) -> Result<SqliteStore, StoreError> {
        connection
            // secure_delete: what is deleted (an erased person, expired events) is
            // overwritten in the file, not left in free pages.
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;")
            .map_err(sql)?;
        let applied: i64 = connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if applied as usize > MIGRATIONS.len() {
            return Err(StoreError::corrupt(format!(
                "the database has schema version {applied}, newer than this program knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let tx = connection.transaction().map_err(sql)?;
            tx.execute_batch(migration).map_err(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let connection = self
            .connection
            .lock()
            .map_err(|_| StoreError::unavailable("connection poisoned"))?;
        connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)
    }

    /// Writes the write-ahead log back into the database file and truncates it, so that
    /// deleted rows survive in neither file.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let connection = connection
                .lock()
                .map_err(|_| StoreError::unavailable("connection poisoned"))?;
            let busy: i64 = connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .map_err(sql)?;
            if busy != 0 {
                return Err(StoreError::unavailable(
                    "the write-ahead log could not be checkpointed (another process has the database open)",
                ));
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::unavailable("store task failed").because(e))?
    }

    /// Runs `work` in one immediate transaction on the blocking pool.
    async fn transaction<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .map_err(|_| StoreError::unavailable("connection poisoned"))?;
            let tx = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let result = work(&tx)?;
            tx.commit().map_err(sql)?;
            Ok(result)
        })
        .await
        .map_err(|e| StoreError::unavailable("store task failed").because(e))?
    }
}

/// Erases the lead `id` stands for and every lead merged into it, in one transaction.
fn erase_in(tx: &Transaction<'_>, id: &str) -> Result<Option<Erased>, StoreError> {
    let Some(lead_id) = current_id(tx, id)? else {
        return Ok(None);
    };
    let mut lead_ids = vec![lead_id.clone()];
    lead_ids.extend(lead_identity(tx, &lead_id)?.merged_from);
    let mut erased = Erased {
        lead_id,
        leads: lead_ids.len(),
        ..Erased::default()
    };
    for id in &lead_ids {
        // Anonymous events of the lead's browsers that are not its own yet (none, unless
        // a link was let go and taken back): the same person's.
        erased.events += tx
            .execute(
                "DELETE FROM events WHERE lead_id IS NULL AND anonymous_id IN
                    (SELECT substr(key, 6) FROM identities WHERE lead_id = ?1 AND key LIKE 'anon:%')",
                [id],
            )
            .map_err(sql)?;
        erased.events += tx
            .execute("DELETE FROM events WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        erased.identities += tx
            .execute("DELETE FROM identities WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        erased.alerts += tx
            .execute("DELETE FROM outbox WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        erased.outcomes += tx
            .execute("DELETE FROM outcomes WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.execute("DELETE FROM history WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.execute("DELETE FROM action_tokens WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.execute("DELETE FROM follow_ups WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.execute("DELETE FROM leads WHERE id = ?1", [id])
            .map_err(sql)?;
    }
    erased.lead_ids = lead_ids;
    Ok(Some(erased))
}

/// The id a possibly merged lead id now stands for.
fn current_id(tx: &Transaction<'_>, id: &str) -> Result<Option<String>, StoreError> {
    let mut id = id.to_string();
    for _ in 0..32 {
        let merged: Option<Option<String>> = tx
            .query_row("SELECT merged_into FROM leads WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        match merged {
            None => return Ok(None),
            Some(None) => return Ok(Some(id)),
            Some(Some(next)) => id = next,
        }
    }
    Err(StoreError::corrupt(format!("merge chain of {id} too long")))
}

/// A lead's keys, oldest first.
fn identities_of(tx: &Transaction<'_>, id: &str) -> Result<Vec<String>, StoreError> {
    let mut statement = tx
        .prepare_cached(
            "SELECT key FROM identities WHERE lead_id = ?1 ORDER BY position, linked_at, key",
        )
        .map_err(sql)?;
    let keys = statement
        .query_map([id], |r| r.get(0))
        .map_err(sql)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(sql)?;
    Ok(keys)
}

/// What identity decides of a stored lead. Its history is its rows of `events` (an
/// adopted browser's rows are moved to it), so `history` stays empty here.
fn lead_identity(tx: &Transaction<'_>, id: &str) -> Result<LeadIdentity, StoreError> {
    let (created, attributes, hot_crossings): (String, String, u32) = tx
        .query_row(
            "SELECT created_at, attributes, hot_crossings FROM leads WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(sql)?;
    let mut statement = tx
        .prepare_cached(
            "WITH RECURSIVE merged(id) AS (
                SELECT id FROM leads WHERE merged_into = ?1
                UNION SELECT l.id FROM leads l JOIN merged m ON l.merged_into = m.id)
             SELECT id FROM merged ORDER BY id",
        )
        .map_err(sql)?;
    let merged_from = statement
        .query_map([id], |r| r.get(0))
        .map_err(sql)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(sql)?;
    Ok(LeadIdentity {
        id: id.to_string(),
        created_at: parse_time(&created)?,
        identities: identities_of(tx, id)?,
        history: Vec::new(),
        merged_from,
        attributes: json(&attributes)?,
        hot_crossings,
    })
}

fn email_of(tx: &Transaction<'_>, id: &str) -> Result<Option<String>, StoreError> {
    let key: Option<String> = tx
        .query_row("SELECT key FROM identities WHERE lead_id = ?1 AND key LIKE 'email:%' ORDER BY linked_at LIMIT 1", [id], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    Ok(key.map(|k| k.trim_start_matches("email:").to_string()))
}

fn record_in(tx: &Transaction<'_>, record: Record) -> Result<Recorded, StoreError> {
    let seen: Option<(Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT lead_id, digest FROM events WHERE message_id = ?1",
            [&record.event.message_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql)?;
    if let Some((lead_id, digest)) = seen {
        let lead_id = match lead_id {
            Some(id) => current_id(tx, &id)?,
            None => None,
        };
        return Ok(Recorded::duplicate_of(
            digest.as_deref(),
            &record.digest,
            lead_id,
        ));
    }

    let mut known = Vec::new();
    let mut links: Vec<(IdentityKey, Option<String>)> = Vec::new();
    for key in &record.keys {
        let linked: Option<String> = tx
            .query_row(
                "SELECT lead_id FROM identities WHERE key = ?1",
                [key.storage_key()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        links.push((key.clone(), linked.clone()));
        let Some(linked) = linked else { continue };
        let Some(lead_id) = current_id(tx, &linked)? else {
            continue;
        };
        let created: String = tx
            .query_row(
                "SELECT created_at FROM leads WHERE id = ?1",
                [&lead_id],
                |r| r.get(0),
            )
            .map_err(sql)?;
        known.push(KnownLead {
            email: email_of(tx, &lead_id)?,
            created_at: parse_time(&created)?,
            lead_id,
            via: key.clone(),
        });
    }
    let now = time(record.received_at);
    let (survivor, merging) = match identity::resolve(&record.keys, &known) {
        Resolution::Anonymous => {
            insert_event(tx, &record, None, &now)?;
            return Ok(Recorded::default());
        }
        Resolution::Create => {
            tx.execute(
                "INSERT INTO leads (id, created_at, updated_at) VALUES (?1, ?2, ?2)",
                params![record.new_lead_id, now],
            )
            .map_err(sql)?;
            (
                LeadIdentity::new(record.new_lead_id.clone(), record.received_at),
                Vec::new(),
            )
        }
        Resolution::Use { survivor, merged } => (
            lead_identity(tx, &survivor)?,
            merged
                .iter()
                .map(|id| lead_identity(tx, id))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let applied = identity::apply(&survivor, &merging, &links, &record.attributes);
    let lead_id = applied.lead.id.clone();
    for from in &applied.merged {
        merge(tx, from, &lead_id, &now)?;
    }
    for link in &applied.links {
        match link {
            LinkChange::Claim { key } | LinkChange::Move { key, .. } => tx.execute(
                "INSERT INTO identities (key, lead_id, linked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET lead_id = excluded.lead_id, linked_at = excluded.linked_at",
                params![key, lead_id, now],
            ),
            LinkChange::Unlink { key, .. } => {
                tx.execute("DELETE FROM identities WHERE key = ?1", [key])
            }
        }
        .map_err(sql)?;
    }
    if !applied.links.is_empty() {
        for (position, key) in applied.lead.identities.iter().enumerate() {
            tx.execute(
                "UPDATE identities SET position = ?2 WHERE key = ?1",
                params![key, position as i64],
            )
            .map_err(sql)?;
        }
    }
    insert_event(tx, &record, Some(&lead_id), &now)?;
    for key in &record.keys {
        if let IdentityKey::Anonymous(anonymous_id) = key {
            tx.execute(
                "UPDATE events SET lead_id = ?1 WHERE lead_id IS NULL AND anonymous_id = ?2",
                params![lead_id, anonymous_id],
            )
            .map_err(sql)?;
        }
    }
    tx.execute(
        "UPDATE leads SET attributes = ?2, hot_crossings = ?3, updated_at = ?4,
            dirty_seq = dirty_seq + 1, aside_until = NULL
         WHERE id = ?1",
        params![
            lead_id,
            to_json(&applied.lead.attributes)?,
            applied.lead.hot_crossings,
            now
        ],
    )
    .map_err(sql)?;
    Ok(Recorded {
        lead_id: Some(lead_id),
        merged: applied.merged,
        dropped_attributes: applied.dropped_attributes,
        ..Recorded::default()
    })
}

fn insert_event(
    tx: &Transaction<'_>,
    record: &Record,
    lead_id: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (message_id, lead_id, anonymous_id, timestamp, received_at, body, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            record.event.message_id,
            lead_id,
            record.event.anonymous_id,
            time(record.event.timestamp),
            now,
            to_json(&record.event)?,
            record.digest,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

/// Moves the events of lead `from` to `into`; `from` then redirects to `into`. (Its keys
/// and attributes move as [`identity::apply`] says.)
fn merge(tx: &Transaction<'_>, from: &str, into: &str, now: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE events SET lead_id = ?2 WHERE lead_id = ?1",
        params![from, into],
    )
    .map_err(sql)?;
    tx.execute(
        "UPDATE leads SET merged_into = ?2, updated_at = ?3 WHERE id = ?1",
        params![from, into, now],
    )
    .map_err(sql)?;
    Ok(())
}

fn load_lead(tx: &Transaction<'_>, id: &str) -> Result<Option<StoredLead>, StoreError> {
    let Some(id) = current_id(tx, id)? else {
        return Ok(None);
    };
    let row = tx
        .query_row(
            "SELECT created_at, updated_at, attributes, score_json, hot_crossings, stage_json, history_rev FROM leads WHERE id = ?1",
            [&id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, u32>(4)?, r.get::<_, Option<String>>(5)?, r.get::<_, u32>(6)?)),
        )
        .map_err(sql)?;
    let identities = identities_of(tx, &id)?;
    Ok(Some(StoredLead {
        id,
        created_at: parse_time(&row.0)?,
        updated_at: parse_time(&row.1)?,
        attributes: json(&row.2)?,
        identities,
        score: row.3.as_deref().map(json).transpose()?,
        hot_crossings: row.4,
        stage: row.5.as_deref().map(json).transpose()?,
        history_rev: row.6,
    }))
}

/// Follow-up records chosen by `rest` (a `WHERE ... ORDER BY ... LIMIT` clause).
fn select_follow_ups(
    tx: &Transaction<'_>,
    rest: &str,
    values: impl rusqlite::Params,
) -> Result<Vec<FollowUpRecord>, StoreError> {
    let mut statement = tx
        .prepare_cached(&format!(
            "SELECT lead_id, crossing, territory, owner, alerted_at, due_at, first_action_at, first_action,
                    escalated_at, closed_at FROM follow_ups {rest}"
        ))
        .map_err(sql)?;
    type Row = (
        String,
        u32,
        String,
        Option<String>,
        String,
        [Option<String>; 2],
        Option<String>,
        [Option<String>; 2],
    );
    let rows = statement
        .query_map(values, |r| -> rusqlite::Result<Row> {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                [r.get(5)?, r.get(6)?],
                r.get(7)?,
                [r.get(8)?, r.get(9)?],
            ))
        })
        .map_err(sql)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql)?;
    let when = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
    rows.iter()
        .map(
            |(
                lead_id,
                crossing,
                territory,
                owner,
                alerted,
                [due, acted],
                action,
                [escalated, closed],
            )| {
                Ok(FollowUpRecord {
                    lead_id: lead_id.clone(),
                    crossing: *crossing,
                    territory: territory.clone(),
                    owner: owner.clone(),
                    alerted_at: parse_time(alerted)?,
                    due_at: when(due)?,
                    first_action_at: when(acted)?,
                    first_action: match action {
                        Some(a) => {
                            Some(hotlead_core::stage::RepAction::parse(a).ok_or_else(|| {
                                StoreError::corrupt(format!("follow-up action {a:?}"))
                            })?)
                        }
                        None => None,
                    },
                    escalated_at: when(escalated)?,
                    closed_at: when(closed)?,
                })
            },
        )
        .collect()
}

/// Appends history entries of `lead_id` (numbered by the caller).
fn insert_history(tx: &Transaction<'_>, entries: &[HistoryEntry]) -> Result<(), StoreError> {
    for entry in entries {
        tx.execute(
            "INSERT INTO history (lead_id, rev, at, body) VALUES (?1, ?2, ?3, ?4)",
            params![entry.lead_id, entry.rev, time(entry.at), to_json(entry)?],
        )
        .map_err(sql)?;
    }
    Ok(())
}

/// The history of `lead_id` and of the leads merged into it, oldest first.
fn history_of(tx: &Transaction<'_>, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let Some(id) = current_id(tx, lead_id)? else {
        return Ok(Vec::new());
    };
    let mut ids = vec![id.clone()];
    ids.extend(lead_identity(tx, &id)?.merged_from);
    let mut entries: Vec<HistoryEntry> = Vec::new();
    let mut statement = tx
        .prepare_cached("SELECT body FROM history WHERE lead_id = ?1 ORDER BY rev")
        .map_err(sql)?;
    for id in &ids {
        for body in statement
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(sql)?
        {
            entries.push(json(&body.map_err(sql)?)?);
        }
    }
    entries.sort_by(|a, b| (a.at, &a.lead_id, a.rev).cmp(&(b.at, &b.lead_id, b.rev)));
    Ok(entries)
}

#[async_trait]
impl Store for SqliteStore {
    async fn record(&self, record: Record) -> Result<Recorded, StoreError> {
        self.transaction(move |tx| record_in(tx, record)).await
    }

    async fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError> {
        let id = id.to_string();
        self.transaction(move |tx| load_lead(tx, &id)).await
    }

    async fn events(&self, lead_id: &str) -> Result<Vec<Event>, StoreError> {
        let lead_id = lead_id.to_string();
        self.transaction(move |tx| {
            let Some(id) = current_id(tx, &lead_id)? else {
                return Ok(Vec::new());
            };
            let mut statement = tx
                .prepare_cached(
                    "SELECT body FROM events WHERE lead_id = ?1 ORDER BY timestamp, message_id",
                )
                .map_err(sql)?;
            let bodies = statement
                .query_map([&id], |r| r.get::<_, String>(0))
                .map_err(sql)?;
            bodies
                .map(|b| b.map_err(sql).and_then(|b| json(&b)))
                .collect()
        })
        .await
    }

    async fn ranking(
        &self,
        band: Option<Band>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<RankingPage, StoreError> {
        let after = cursor
            .map(RankCursor::given)
            .transpose()?
            .map(|c| (c.score_hundredths, c.lead_id));
        let band = band.map(|b| b.as_str().to_string());
        self.transaction(move |tx| {
            let (score, id) = after.unwrap_or((i64::MAX, String::new()));
            let mut statement = tx
                .prepare_cached(
                    "SELECT id, score_hundredths FROM leads
                     WHERE merged_into IS NULL AND score_hundredths IS NOT NULL AND (?1 IS NULL OR band = ?1)
                       AND (score_hundredths < ?2 OR (score_hundredths = ?2 AND id > ?3))
                     ORDER BY score_hundredths DESC, id LIMIT ?4",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map(params![band, score, id, limit as i64 + 1], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            let next = (rows.len() > limit).then(|| rows[limit - 1].clone()).map(|(lead_id, score_hundredths)| RankCursor { score_hundredths, lead_id }.to_string());
            let mut leads = Vec::new();
            for (id, _) in rows.into_iter().take(limit) {
                leads.extend(load_lead(tx, &id)?);
            }
            Ok(RankingPage { leads, next: if limit == 0 { None } else { next } })
        })
        .await
    }

    async fn dirty(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Dirty>, StoreError> {
        self.transaction(move |tx| {
            let dirty = |r: &rusqlite::Row<'_>| {
                Ok(Dirty {
                    lead_id: r.get(0)?,
                    seq: r.get(1)?,
                    failures: r.get(2)?,
                })
            };
            let mut marked = tx
                .prepare_cached(
                    "SELECT id, dirty_seq, aside_failures FROM leads
                     WHERE dirty_seq > scored_seq AND merged_into IS NULL AND aside_until IS NULL
                     ORDER BY updated_at, id LIMIT ?1",
                )
                .map_err(sql)?
                .query_map([limit as i64], dirty)
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            let left = limit.saturating_sub(marked.len());
            if left > 0 {
                let mut statement = tx
                    .prepare_cached(
                        "SELECT id, dirty_seq, aside_failures FROM leads
                         WHERE aside_until IS NOT NULL AND aside_until <= ?1 AND merged_into IS NULL
                         ORDER BY aside_until, id LIMIT ?2",
                    )
                    .map_err(sql)?;
                let due = statement
                    .query_map(params![time(now), left as i64], dirty)
                    .map_err(sql)?;
                for row in due {
                    marked.push(row.map_err(sql)?);
                }
            }
            Ok(marked)
        })
        .await
    }

    async fn set_aside(&self, aside: &SetAside) -> Result<(), StoreError> {
        let aside = aside.clone();
        self.transaction(move |tx| {
            tx.execute(
                "UPDATE leads SET aside_reason = ?2, aside_failures = ?3, aside_since = COALESCE(aside_since, ?4),
                    aside_until = ?5
                 WHERE id = ?1 AND merged_into IS NULL AND dirty_seq = ?6",
                params![aside.lead_id, aside.reason, aside.failures, time(aside.since), time(aside.retry_at), aside.seq],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn set_aside_leads(&self, limit: usize) -> Result<Vec<SetAside>, StoreError> {
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT id, dirty_seq, aside_failures, aside_reason, aside_since, aside_until FROM leads
                     WHERE aside_until IS NOT NULL AND merged_into IS NULL ORDER BY aside_since, id LIMIT ?1",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map([limit as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(lead_id, seq, failures, reason, since, until)| {
                    let retry_at = parse_time(&until)?;
                    Ok(SetAside {
                        lead_id,
                        seq,
                        failures,
                        reason: reason.unwrap_or_default(),
                        since: since.as_deref().map(parse_time).transpose()?.unwrap_or(retry_at),
                        retry_at,
                    })
                })
                .collect()
        })
        .await
    }

    async fn scored_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Dirty>, StoreError> {
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT id, dirty_seq FROM leads
                     WHERE merged_into IS NULL AND aside_until IS NULL AND scored_at IS NOT NULL AND scored_at < ?1
                     ORDER BY scored_at, id LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map(params![time(before), limit as i64], |r| Ok(Dirty::new(r.get::<_, String>(0)?, r.get(1)?)))
                .map_err(sql)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sql)
        })
        .await
    }

    async fn save_score(&self, update: ScoreUpdate) -> Result<SaveOutcome, StoreError> {
        self.transaction(move |tx| {
            let score_json = to_json(&update.score)?;
            let history = &update.history;
            if !history.entries.is_empty() && history.read.is_none() {
                return Err(StoreError::rejected("history entries without what they were worked out from"));
            }
            // Saved only while the lead holds what the score was worked out from.
            let read = history.read.unwrap_or(HistoryRead { band: None, history_rev: 0 });
            let last_rev = history.entries.last().map_or(read.history_rev, |e| e.rev);
            let stage_json = history.stage.as_ref().map(to_json).transpose()?;
            let changed = tx
                .execute(
                    "UPDATE leads SET score_json = ?2, score_hundredths = ?3, band = ?4, scored_at = ?5, hot_crossings = ?6,
                        scored_seq = ?7, aside_reason = NULL, aside_failures = 0, aside_since = NULL, aside_until = NULL,
                        history_rev = CASE WHEN ?13 THEN ?10 ELSE history_rev END,
                        stage_json = CASE WHEN ?14 THEN ?11 ELSE stage_json END
                     WHERE id = ?1 AND merged_into IS NULL AND scored_seq <= ?7
                       AND (NOT ?12 OR band IS ?8) AND (NOT ?13 OR history_rev = ?9)",
                    params![
                        update.lead_id,
                        score_json,
                        update.score.score.hundredths(),
                        update.score.band.as_str(),
                        time(update.score.at),
                        update.hot_crossings,
                        update.seen_seq,
                        read.band.map(|b| b.as_str()),
                        read.history_rev,
                        last_rev,
                        stage_json,
                        history.read.is_some(),
                        !history.entries.is_empty(),
                        history.stage.is_some(),
                    ],
                )
                .map_err(sql)?;
            if changed == 0 {
                return Err(StoreError::conflict(format!("lead {} was rescored, merged or moved meanwhile", update.lead_id)));
            }
            insert_history(tx, &history.entries)?;
            if let Some(record) = &update.follow_up {
                tx.execute(
                    "INSERT INTO follow_ups (lead_id, crossing, territory, owner, alerted_at, due_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (lead_id, crossing) DO NOTHING",
                    params![
                        record.lead_id,
                        record.crossing,
                        record.territory,
                        record.owner,
                        time(record.alerted_at),
                        record.due_at.map(time),
                    ],
                )
                .map_err(sql)?;
            }
            for alert in &update.alerts {
                tx.execute(
                    "INSERT INTO outbox (key, lead_id, created_at, message, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?3)
                     ON CONFLICT (key) DO NOTHING",
                    params![alert.key, update.lead_id, time(alert.created_at), to_json(&alert.message)?],
                )
                .map_err(sql)?;
            }
            let still_dirty: bool = tx
                .query_row("SELECT dirty_seq > scored_seq FROM leads WHERE id = ?1", [&update.lead_id], |r| r.get(0))
                .map_err(sql)?;
            Ok(if still_dirty { SaveOutcome::SavedStillDirty } else { SaveOutcome::Saved })
        })
        .await
    }

    async fn history(&self, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let lead_id = lead_id.to_string();
        self.transaction(move |tx| history_of(tx, &lead_id)).await
    }

    async fn record_action(&self, action: &ActionRecord) -> Result<ActionOutcome, StoreError> {
        let action = action.clone();
        self.transaction(move |tx| {
            let rev: Option<u32> = tx
                .query_row(
                    "SELECT history_rev FROM leads WHERE id = ?1 AND merged_into IS NULL",
                    [&action.lead_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            let Some(rev) = rev else {
                return Err(StoreError::not_found("lead", action.lead_id.clone()));
            };
            let repeated: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM action_tokens WHERE lead_id = ?1 AND token = ?2)",
                    params![action.lead_id, action.token],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if repeated {
                return Ok(ActionOutcome::Repeated);
            }
            if rev != action.read_rev {
                return Err(StoreError::conflict(format!("lead {} changed meanwhile", action.lead_id)));
            }
            insert_history(tx, &action.entries)?;
            tx.execute(
                "INSERT INTO action_tokens (lead_id, token) VALUES (?1, ?2)",
                params![action.lead_id, action.token],
            )
            .map_err(sql)?;
            let at = action.entries.first().map(|e| e.at);
            let first = action.entries.iter().find_map(|e| match &e.change {
                hotlead_core::stage::Change::Action { action, .. } => Some(*action),
                _ => None,
            });
            if action.crossing > 0 {
                tx.execute(
                    "UPDATE follow_ups SET first_action_at = ?3, first_action = ?4
                     WHERE lead_id = ?1 AND crossing = ?2 AND first_action_at IS NULL",
                    params![
                        action.lead_id,
                        action.crossing,
                        at.map(time),
                        first.map(|a| a.as_str()),
                    ],
                )
                .map_err(sql)?;
            }
            tx.execute(
                "UPDATE leads SET history_rev = ?2, stage_json = COALESCE(?3, stage_json),
                    dirty_seq = dirty_seq + 1, updated_at = COALESCE(?4, updated_at), aside_until = NULL
                 WHERE id = ?1",
                params![
                    action.lead_id,
                    action.entries.last().map_or(rev, |e| e.rev),
                    action.stage.as_ref().map(to_json).transpose()?,
                    at.map(time),
                ],
            )
            .map_err(sql)?;
            Ok(ActionOutcome::Recorded)
        })
        .await
    }

    async fn add_notice(&self, notice: &OutboxEntry) -> Result<bool, StoreError> {
        let notice = notice.clone();
        self.transaction(move |tx| {
            let added = tx
                .execute(
                    "INSERT INTO outbox (key, lead_id, created_at, message, next_attempt_at) VALUES (?1, '', ?2, ?3, ?2)
                     ON CONFLICT (key) DO NOTHING",
                    params![notice.key, time(notice.created_at), to_json(&notice.message)?],
                )
                .map_err(sql)?;
            Ok(added == 1)
        })
        .await
    }

    async fn overdue_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FollowUpRecord>, StoreError> {
        self.transaction(move |tx| {
            select_follow_ups(
                tx,
                "WHERE due_at IS NOT NULL AND first_action_at IS NULL AND escalated_at IS NULL AND closed_at IS NULL
                   AND due_at <= ?1 ORDER BY due_at, lead_id, crossing LIMIT ?2",
                params![time(now), limit as i64],
            )
        })
        .await
    }

    async fn end_follow_up(
        &self,
        lead_id: &str,
        crossing: u32,
        at: DateTime<Utc>,
        alert: Option<OutboxEntry>,
    ) -> Result<bool, StoreError> {
        let lead_id = lead_id.to_string();
        self.transaction(move |tx| {
            let column = if alert.is_some() { "escalated_at" } else { "closed_at" };
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE follow_ups SET {column} = ?3
                         WHERE lead_id = ?1 AND crossing = ?2
                           AND first_action_at IS NULL AND escalated_at IS NULL AND closed_at IS NULL"
                    ),
                    params![lead_id, crossing, time(at)],
                )
                .map_err(sql)?;
            if changed == 1
                && let Some(alert) = alert
            {
                tx.execute(
                    "INSERT INTO outbox (key, lead_id, created_at, message, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?3)
                     ON CONFLICT (key) DO NOTHING",
                    params![alert.key, lead_id, time(alert.created_at), to_json(&alert.message)?],
                )
                .map_err(sql)?;
            }
            Ok(changed == 1)
        })
        .await
    }

    async fn follow_ups(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FollowUpRecord>, StoreError> {
        self.transaction(move |tx| {
            select_follow_ups(
                tx,
                "WHERE alerted_at >= ?1 AND alerted_at < ?2 ORDER BY alerted_at, lead_id, crossing LIMIT ?3",
                params![time(since), time(until), limit as i64],
            )
        })
        .await
    }

    async fn pending_alerts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT key, created_at, message, attempts FROM outbox
                     WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1
                       AND (claimed_until IS NULL OR claimed_until <= ?1)
                     ORDER BY created_at, key LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map(params![time(now), limit as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, u32>(3)?,
                    ))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(key, created, message, attempts)| {
                    Ok(Pending {
                        entry: OutboxEntry {
                            key,
                            created_at: parse_time(&created)?,
                            message: json(&message)?,
                        },
                        attempts,
                    })
                })
                .collect()
        })
        .await
    }

    async fn alert_delivered(&self, key: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let key = key.to_string();
        self.transaction(move |tx| {
            tx.execute(
                "UPDATE outbox SET delivered_at = ?2, claimed_until = NULL WHERE key = ?1 AND delivered_at IS NULL",
                params![key, time(at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn alert_failed(
        &self,
        key: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (key, error) = (key.to_string(), error.to_string());
        self.transaction(move |tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, claimed_until = NULL
                 WHERE key = ?1 AND delivered_at IS NULL AND failed_at IS NULL",
                params![key, error, time(retry_at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn claim_alert(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.transaction(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE outbox SET claimed_until = ?3
                     WHERE key = ?1 AND delivered_at IS NULL AND failed_at IS NULL
                       AND (claimed_until IS NULL OR claimed_until <= ?2)",
                    params![key, time(now), time(until)],
                )
                .map_err(sql)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn alert_abandoned(
        &self,
        key: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (key, error) = (key.to_string(), error.to_string());
        self.transaction(move |tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, failed_at = ?3, claimed_until = NULL
                 WHERE key = ?1 AND delivered_at IS NULL AND failed_at IS NULL",
                params![key, error, time(at)],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn erase(
        &self,
        who: &EraseSubject,
        _at: DateTime<Utc>,
    ) -> Result<Option<Erased>, StoreError> {
        let who = who.clone();
        let erased = self
            .transaction(move |tx| match &who {
                EraseSubject::Lead(id) => erase_in(tx, id),
                EraseSubject::Key(key) => {
                    let key = key.storage_key();
                    let linked: Option<String> = tx
                        .query_row(
                            "SELECT lead_id FROM identities WHERE key = ?1",
                            [&key],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(sql)?;
                    let Some(linked) = linked else {
                        return Ok(None);
                    };
                    let erased = erase_in(tx, &linked)?;
                    // A link to no lead (none is left by this store) is removed all the same.
                    tx.execute("DELETE FROM identities WHERE key = ?1", [&key])
                        .map_err(sql)?;
                    Ok(erased)
                }
            })
            .await?;
        // The write-ahead log still holds earlier versions of the erased rows: write it
        // back into the database (whose deleted content secure_delete overwrote) and empty
        // it. Also when there was nothing left to erase: a checkpoint that failed after an
        // erasure is made good by erasing again.
        self.checkpoint().await?;
        Ok(erased)
    }

    async fn erasable_ids(&self, who: &EraseSubject) -> Result<Vec<String>, StoreError> {
        let who = who.clone();
        self.transaction(move |tx| {
            let id = match &who {
                EraseSubject::Lead(id) => Some(id.clone()),
                EraseSubject::Key(key) => tx
                    .query_row(
                        "SELECT lead_id FROM identities WHERE key = ?1",
                        [key.storage_key()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql)?,
            };
            let Some(lead_id) = id.map(|id| current_id(tx, &id)).transpose()?.flatten() else {
                return Ok(Vec::new());
            };
            let mut ids = vec![lead_id.clone()];
            ids.extend(lead_identity(tx, &lead_id)?.merged_from);
            Ok(ids)
        })
        .await
    }

    async fn sweep(&self, now: DateTime<Utc>, retention: Retention) -> Result<Swept, StoreError> {
        let cutoff = time(now - chrono::Duration::days(i64::from(retention.anonymous_days)));
        let anonymous_events = self
            .transaction(move |tx| {
                tx.execute(
                    "DELETE FROM events WHERE lead_id IS NULL AND received_at < ?1",
                    [&cutoff],
                )
                .map_err(sql)
            })
            .await?;
        if anonymous_events > 0 {
            self.checkpoint().await?;
        }
        Ok(Swept { anonymous_events })
    }

    async fn failed_alerts(&self, limit: usize) -> Result<Vec<FailedAlert>, StoreError> {
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT key, lead_id, attempts, last_error, failed_at FROM outbox
                     WHERE failed_at IS NOT NULL ORDER BY failed_at DESC, key LIMIT ?1",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map([limit as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(key, lead_id, attempts, error, failed_at)| {
                    Ok(FailedAlert {
                        key,
                        lead_id,
                        attempts,
                        error: error.unwrap_or_default(),
                        failed_at: parse_time(&failed_at)?,
                    })
                })
                .collect()
        })
        .await
    }
}

fn active_version(tx: &Transaction<'_>) -> Result<Option<u32>, StoreError> {
    let value: Option<String> = tx
        .query_row(
            "SELECT value FROM settings WHERE key = 'active_rules'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    value
        .map(|v| {
            v.parse()
                .map_err(|e| StoreError::corrupt(format!("active rules version {v:?}")).because(e))
        })
        .transpose()
}

/// version, name, created_at, source, text, activated_at, active.
type VersionRow = (u32, String, String, String, String, Option<String>, bool);

fn rules_version_row(row: &rusqlite::Row<'_>, active: Option<u32>) -> rusqlite::Result<VersionRow> {
    let version: u32 = row.get(0)?;
    Ok((
        version,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        Some(version) == active,
    ))
}

fn load_rules_versions(
    tx: &Transaction<'_>,
    only: Option<u32>,
) -> Result<Vec<RulesVersion>, StoreError> {
    let active = active_version(tx)?;
    let mut statement = tx
        .prepare(
            "SELECT version, name, created_at, source, text, activated_at FROM rules_versions
             WHERE ?1 IS NULL OR version = ?1 ORDER BY version DESC",
        )
        .map_err(sql)?;
    let rows = statement
        .query_map([only], |row| rules_version_row(row, active))
        .map_err(sql)?;
    let mut out = Vec::new();
    for row in rows {
        let (version, name, created_at, source, text, activated_at, active) = row.map_err(sql)?;
        out.push(RulesVersion {
            version,
            name,
            created_at: parse_time(&created_at)?,
            source,
            text,
            activated_at: activated_at.as_deref().map(parse_time).transpose()?,
            active,
        });
    }
    Ok(out)
}

fn add_rules_in(tx: &Transaction<'_>, rules: &NewRules) -> Result<RulesVersion, StoreError> {
    let next: u32 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM rules_versions",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    let at = time(rules.at);
    tx.execute(
        "INSERT INTO rules_versions (version, name, created_at, source, text, activated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
        params![
            next,
            rules.name,
            at,
            rules.source,
            with_version(&rules.text, next)
        ],
    )
    .map_err(sql)?;
    set_active(tx, next)?;
    load_rules_versions(tx, Some(next))?
        .pop()
        .ok_or_else(|| StoreError::corrupt("rules version vanished"))
}

fn set_active(tx: &Transaction<'_>, version: u32) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('active_rules', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [version.to_string()],
    )
    .map_err(sql)?;
    Ok(())
}

fn pending_review(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    let review: Option<String> = tx
        .query_row("SELECT review FROM suggestions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql)?;
    match review.map(|r| json::<SuggestionStatus>(&r)).transpose()? {
        None => Err(StoreError::not_found("suggestion", id)),
        Some(SuggestionStatus::Pending) => Ok(()),
        Some(other) => Err(StoreError::conflict(format!(
            "suggestion {id} is already {}",
            other.name()
        ))),
    }
}

fn set_review(tx: &Transaction<'_>, id: &str, review: &SuggestionStatus) -> Result<(), StoreError> {
    let review_json = to_json(review)?;
    let body: String = tx
        .query_row("SELECT body FROM suggestions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    let mut stored: StoredSuggestion = json(&body)?;
    stored.review = review.clone();
    tx.execute(
        "UPDATE suggestions SET review = ?2, body = ?3 WHERE id = ?1",
        params![id, review_json, to_json(&stored)?],
    )
    .map_err(sql)?;
    Ok(())
}

#[async_trait]
impl LearningStore for SqliteStore {
    async fn lead_for(&self, key: &IdentityKey) -> Result<Option<String>, StoreError> {
        let key = key.storage_key();
        self.transaction(move |tx| {
            let lead: Option<String> = tx
                .query_row(
                    "SELECT lead_id FROM identities WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            match lead {
                Some(id) => current_id(tx, &id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_outcomes(&self, outcomes: &[DealOutcome]) -> Result<(), StoreError> {
        let outcomes = outcomes.to_vec();
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare(
                    // Not for a lead erased since it was looked up.
                    "INSERT INTO outcomes (lead_id, won, closed_at, amount, received_at)
                     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM leads WHERE id = ?1)
                     ON CONFLICT (lead_id) DO UPDATE SET won = excluded.won,
                        closed_at = excluded.closed_at, amount = excluded.amount,
                        received_at = excluded.received_at
                     WHERE excluded.closed_at >= outcomes.closed_at",
                )
                .map_err(sql)?;
            for o in &outcomes {
                statement
                    .execute(params![
                        o.lead_id,
                        o.won,
                        time(o.closed_at),
                        o.amount,
                        time(o.received_at)
                    ])
                    .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    async fn outcomes(&self) -> Result<Vec<DealOutcome>, StoreError> {
        self.transaction(|tx| {
            let mut statement = tx
                .prepare("SELECT lead_id, won, closed_at, amount, received_at FROM outcomes ORDER BY lead_id")
                .map_err(sql)?;
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<f64>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(sql)?;
            let mut out = Vec::new();
            for row in rows {
                let (lead_id, won, closed_at, amount, received_at) = row.map_err(sql)?;
                out.push(DealOutcome {
                    lead_id,
                    won,
                    closed_at: parse_time(&closed_at)?,
                    amount,
                    received_at: parse_time(&received_at)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn save_suggestion(&self, suggestion: &StoredSuggestion) -> Result<(), StoreError> {
        let row = (
            suggestion.id.clone(),
            time(suggestion.created_at),
            to_json(&suggestion.review)?,
            to_json(suggestion)?,
        );
        self.transaction(move |tx| {
            tx.execute(
                "INSERT INTO suggestions (id, created_at, review, body) VALUES (?1, ?2, ?3, ?4)",
                params![row.0, row.1, row.2, row.3],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(ref f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::conflict(format!("suggestion {} exists", row.0)).because(e)
                }
                other => sql(other),
            })?;
            Ok(())
        })
        .await
    }

    async fn suggestions(&self, limit: usize) -> Result<Vec<SuggestionHead>, StoreError> {
        self.transaction(move |tx| {
            let mut statement = tx
                .prepare("SELECT body FROM suggestions ORDER BY created_at DESC, id DESC LIMIT ?1")
                .map_err(sql)?;
            let bodies = statement
                .query_map([limit as i64], |r| r.get::<_, String>(0))
                .map_err(sql)?;
            let mut out = Vec::new();
            for body in bodies {
                let stored: StoredSuggestion = json(&body.map_err(sql)?)?;
                out.push(SuggestionHead::from(&stored));
            }
            Ok(out)
        })
        .await
    }

    async fn suggestion(&self, id: &str) -> Result<Option<StoredSuggestion>, StoreError> {
        let id = id.to_string();
        self.transaction(move |tx| {
            let body: Option<String> = tx
                .query_row("SELECT body FROM suggestions WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql)?;
            body.map(|b| json(&b)).transpose()
        })
        .await
    }

    async fn approve(
        &self,
        id: &str,
        by: &str,
        rules: NewRules,
    ) -> Result<RulesVersion, StoreError> {
        let (id, by) = (id.to_string(), by.to_string());
        self.transaction(move |tx| {
            pending_review(tx, &id)?;
            let version = add_rules_in(tx, &rules)?;
            set_review(
                tx,
                &id,
                &SuggestionStatus::Approved {
                    at: rules.at,
                    by,
                    rules_version: version.version,
                },
            )?;
            Ok(version)
        })
        .await
    }

    async fn reject(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let review = SuggestionStatus::Rejected {
            at,
            by: by.to_string(),
            reason: reason.to_string(),
        };
        let id = id.to_string();
        self.transaction(move |tx| {
            pending_review(tx, &id)?;
            set_review(tx, &id, &review)
        })
        .await
    }

    async fn add_rules(&self, rules: NewRules) -> Result<RulesVersion, StoreError> {
        self.transaction(move |tx| add_rules_in(tx, &rules)).await
    }

    async fn activate_rules(
        &self,
        version: u32,
        at: DateTime<Utc>,
    ) -> Result<RulesVersion, StoreError> {
        self.transaction(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE rules_versions SET activated_at = ?2 WHERE version = ?1",
                    params![version, time(at)],
                )
                .map_err(sql)?;
            if changed == 0 {
                return Err(StoreError::not_found("rules version", version.to_string()));
            }
            set_active(tx, version)?;
            load_rules_versions(tx, Some(version))?
                .pop()
                .ok_or_else(|| StoreError::corrupt("rules version vanished"))
        })
        .await
    }

    async fn rules_history(&self) -> Result<Vec<RulesVersion>, StoreError> {
        self.transaction(|tx| load_rules_versions(tx, None)).await
    }

    async fn active_rules(&self) -> Result<Option<RulesVersion>, StoreError> {
        self.transaction(|tx| match active_version(tx)? {
            Some(version) => Ok(load_rules_versions(tx, Some(version))?.pop()),
            None => Ok(None),
        })
        .await
    }
}
