//! The embedded store: one SQLite file (WAL), schema migrations, and the [`Store`] port
//! implemented on it. Every operation is one transaction on one connection, so calls are
//! serialised and concurrent first submissions of one e-mail make one lead.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use hotlead_app::ports::{
    ActionOutcome, ActionRecord, DealOutcome, Dirty, EraseSubject, Erased, EventsCursor,
    EventsRead, FailedAlert, FollowUpRecord, HistoryEntry, HistoryRead, LearningStore, NewRules,
    OutboxEntry, Pending, RankCursor, RankingPage, Record, Recorded, Retention, RulesVersion,
    SaveOutcome, ScoreUpdate, SetAside, Store, StoreError, StoredLead, StoredSuggestion,
    SuggestionHead, SuggestionStatus, Swept, with_causes, with_version,
};
use hotlead_core::identity::{self, IdentityKey, KnownLead, LeadIdentity, LinkChange, Resolution};
use hotlead_core::{Band, Event};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::log_sync::{LogSync, when_durable};

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
    // 8: reading only a lead's new events. `events_gen` counts every change to a lead's
    // events other than a new one (moved to or from the lead, changed, deleted); the
    // triggers keep it, whatever statement makes the change. A reader that saw the same
    // count reads only rows added since (a new row has a larger rowid than every row
    // there: rowids are reused only past deleted rows, and deleting counts).
    "ALTER TABLE leads ADD COLUMN events_gen INTEGER NOT NULL DEFAULT 0;
     CREATE TRIGGER events_changed AFTER UPDATE ON events BEGIN
        UPDATE leads SET events_gen = events_gen + 1 WHERE id = OLD.lead_id;
        UPDATE leads SET events_gen = events_gen + 1 WHERE id = NEW.lead_id AND NEW.lead_id IS NOT OLD.lead_id;
     END;
     CREATE TRIGGER events_deleted AFTER DELETE ON events WHEN OLD.lead_id IS NOT NULL BEGIN
        UPDATE leads SET events_gen = events_gen + 1 WHERE id = OLD.lead_id;
     END;",
    // 9: a lead's events by lead, then in the order stored (an index's entries end with
    // the rowid): reading the events added since a rowid is a range of the index, not a
    // scan of every event of the lead. Reading them all sorts them by time.
    "DROP INDEX events_lead;
     CREATE INDEX events_lead ON events (lead_id);",
    // 10: the marks of leads to rescore in a small table of their own, a row per marked
    // lead, deleted when it is scored: an event of a known visitor writes a row of a few
    // pages that stay in memory, instead of the lead's row (which holds its score, a page
    // of its own) and an index entry that moved at every event. A lead's change counter
    // is its mark's `seq`, or `scored_seq` when it has none.
    "CREATE TABLE marks (
        lead_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        first_at TEXT NOT NULL,
        last_at TEXT NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO marks (lead_id, seq, first_at, last_at)
        SELECT id, dirty_seq, updated_at, updated_at FROM leads
        WHERE dirty_seq > scored_seq AND merged_into IS NULL;
     DROP INDEX leads_dirty;
     ALTER TABLE leads DROP COLUMN dirty_seq;",
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

/// Calls taken into one transaction at most (the rest wait for the next).
const MAX_BATCH: usize = 256;
/// Calls waiting for the writer at most; past it, callers wait to be queued.
const QUEUE: usize = 1_024;
/// Read connections of a database file (WAL: readers do not wait for the writer).
const READERS: usize = 4;
/// Prepared statements kept per connection.
const STATEMENTS: usize = 128;
/// How the writer's connection writes and caches the file (also how the ingest
/// benchmark's durable peer opens its own, so that it is the floor of this writer):
/// - `synchronous = FULL`: a commit is on disk before its callers are answered (group
///   commit pays one sync for many calls); a store on a file then hands the sync to a
///   [`LogSync`] beside the writer, which answers each group once its commit is on disk
///   while the writer goes on with the next;
/// - a 32 MB page cache: the writer's cache stays valid across its own commits (a
///   reader's is dropped at each change), so pages read once stay in memory;
/// - 256 MB of the file read through memory mapping (no copy per page read);
/// - the log written back into the file every 8,192 pages (SQLite's default is 1,000): a
///   page rewritten by many groups (a lead's row, an index page) is copied back once per
///   checkpoint, and the writer syncs the file less often.
pub const WRITER_TUNING: &str = "PRAGMA synchronous = FULL; PRAGMA cache_size = -32768; \
     PRAGMA mmap_size = 268435456; PRAGMA wal_autocheckpoint = 8192;";

/// The SQLite store. Writes go to one writer thread that owns the read-write connection
/// and commits calls in groups: it takes every call waiting (up to [`MAX_BATCH`]), runs
/// them one after another in one `IMMEDIATE` transaction, each in its own savepoint (a
/// call that fails, or panics, is rolled back alone and answered with its error), commits
/// once, and answers each caller only once the commit is on disk (for a file, after the
/// sync of its log that follows the commit, on a thread of its own: see [`LogSync`]); if
/// the commit fails, every caller of the group gets the error, and if a sync fails, an
/// error that says the call may be lost, and the writer stops. Calls run in the order
/// they were queued on one connection, so each sees the effects of the calls before it:
/// one e-mail still makes one lead, one message id one event. Reads of a database file
/// run on read connections of their own (each in one read transaction, so they see every
/// write answered before they began); an in-memory database has one connection, so its
/// reads go through the writer too.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once dropped (the writer then finishes and closes the connection).
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    readers: Option<Readers>,
    /// Transactions committed by the writer (tests tell groups apart by it).
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field(
                "readers",
                &self.readers.as_ref().map_or(0, |r| r.connections.len()),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Readers close first, then the writer's connection: the last one closed writes
        // the log back into the database file and removes it.
        self.readers = None;
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The read connections of a database file.
struct Readers {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// A free connection if there is one, else the next in turn once it is free.
    fn run<T>(&self, work: impl FnOnce(&mut Connection) -> T) -> Result<T, StoreError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.connections.len();
        for i in 0..count {
            if let Ok(mut connection) = self.connections[(start + i) % count].try_lock() {
                return Ok(work(&mut connection));
            }
        }
        let mut connection = self.connections[start % count]
            .lock()
            .map_err(|_| StoreError::unavailable("a read connection was poisoned"))?;
        Ok(work(&mut connection))
    }
}

/// What the writer is asked to do.
enum Job {
    /// A call, run in the group's transaction inside a savepoint of its own.
    Call(Box<dyn Call>),
    /// A call that need not be stored at once (a saved score): when the writer finds it
    /// first, it waits up to [`LINGER`] for another call to share its commit, rather
    /// than making the calls queued meanwhile wait for a commit of its own.
    Later(Box<dyn Call>),
    /// Work outside any transaction (a checkpoint), after the group before it committed:
    /// it returns how to answer its caller, once what it wrote is on disk.
    Alone(Box<dyn FnOnce(&Connection) -> Answer + Send>),
    /// Stops the writer (tests: a writer that died).
    #[cfg(test)]
    Exit,
}

/// How a job run alone answers its caller: its result, or the error of the sync after it.
type Answer = Box<dyn FnOnce(Option<StoreError>) + Send>;

/// A queued call: run once, then answered once.
trait Call: Send {
    /// Runs the call; whether it succeeded (its savepoint is then kept).
    fn run(&mut self, connection: &Connection) -> bool;
    /// Answers the caller: its own result, or `failure` when its group did not commit.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

struct Queued<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Call for Queued<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let result = match self.work.take() {
            Some(work) => guarded(connection, work),
            None => Err(StoreError::unavailable("the store call ran twice")),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let answer = match failure {
            Some(error) => Err(error),
            None => self
                .result
                .unwrap_or_else(|| Err(StoreError::unavailable("the store call did not run"))),
        };
        // A caller that went away needs no answer.
        let _ = self.reply.send(answer);
    }
}

/// Runs `work`, turning a panic into an error of this call alone.
fn guarded<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection))).unwrap_or_else(
        |_| {
            Err(StoreError::unavailable(
                "the store call failed unexpectedly (it panicked)",
            ))
        },
    )
}

/// A copy of `error` for each caller of a group that did not commit (the cause kept as
/// text).
fn for_each_caller(error: &StoreError) -> StoreError {
    #[derive(Debug)]
    struct Cause(String);
    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Cause {}
    let cause = Cause(with_causes(error).to_string());
    match error {
        StoreError::Conflict { .. } => StoreError::conflict("the transaction did not commit"),
        StoreError::Corrupt { .. } => StoreError::corrupt("the transaction did not commit"),
        StoreError::Rejected { .. } => StoreError::rejected("the transaction did not commit"),
        _ => StoreError::unavailable("the transaction did not commit"),
    }
    .because(cause)
}

/// The error of a call whose group committed but whose sync failed.
fn not_synced(error: &std::io::Error) -> StoreError {
    StoreError::unavailable(
        "the call was stored, but the disk did not confirm it: it may be lost if the machine stops",
    )
    .because(std::io::Error::new(error.kind(), error.to_string()))
}

/// Answers every call with (a copy of) `error`.
fn fail_all(calls: Vec<Box<dyn Call>>, error: &StoreError) {
    for call in calls {
        call.answer(Some(for_each_caller(error)));
    }
}

/// Rolls back what is left of an open transaction.
fn roll_back(connection: &Connection) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
}

/// The writer thread: groups of calls until every handle of the store is dropped.
/// With `sync`, the connection commits without syncing and each group is answered once
/// `sync` synced the log after its commit (see [`LogSync`]); without, at once (the
/// connection syncs at each commit, or has no file).
fn write_loop(
    connection: Connection,
    mut jobs: mpsc::Receiver<Job>,
    commits: Arc<AtomicU64>,
    linger: std::time::Duration,
    sync: Option<LogSync>,
) {
    let writer = Writer {
        connection: &connection,
        commits: &commits,
        sync: sync.as_ref(),
    };
    let mut next = None;
    loop {
        let Some(job) = next.take().or_else(|| jobs.blocking_recv()) else {
            return;
        };
        // After a failed sync the writer stops: the calls waiting, and those after, are
        // told it stopped (see [`LogSync`]).
        if writer.sync.is_some_and(LogSync::failed) {
            return;
        }
        match job {
            Job::Call(first) => next = writer.run_group(vec![first], &mut jobs),
            Job::Later(first) => {
                let (calls, after) = with_company(first, &mut jobs, linger);
                next = match after {
                    // The calls queued after that job wait for it.
                    Some(job) => {
                        writer.run_group(calls, &mut Closed);
                        Some(job)
                    }
                    None => writer.run_group(calls, &mut jobs),
                };
            }
            Job::Alone(work) => {
                let answer =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&connection)));
                roll_back(&connection);
                // A job that panicked dropped its caller's channel: the caller is told.
                if let Ok(answer) = answer {
                    when_durable(
                        writer.sync,
                        Box::new(move |failed| answer(failed.map(not_synced))),
                    );
                }
            }
            #[cfg(test)]
            Job::Exit => return,
        }
    }
}

/// How long a call that may wait ([`Job::Later`]) waits for company at most: under
/// load, about the time an answered HTTP client takes to send its next call, so that a
/// saved score joins the next group of ingest calls instead of a commit (and a sync) of
/// its own; with no load, a delay well below the sync it saves.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);
/// How often the queue is looked at while a call waits for company.
const LINGER_POLL: std::time::Duration = std::time::Duration::from_micros(100);

/// `first` (a call that may wait) and the calls that come within `linger`: the wait
/// ends at the first call that may not wait, or with a job that is no call (returned,
/// to run after the group).
fn with_company(
    first: Box<dyn Call>,
    jobs: &mut mpsc::Receiver<Job>,
    linger: std::time::Duration,
) -> (Vec<Box<dyn Call>>, Option<Job>) {
    let mut calls = vec![first];
    let until = std::time::Instant::now() + linger;
    while calls.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(Job::Later(call)) => calls.push(call),
            Ok(Job::Call(call)) => {
                calls.push(call);
                break;
            }
            Ok(other) => return (calls, Some(other)),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(LINGER_POLL.min(left));
            }
        }
    }
    (calls, None)
}

/// Where a group takes the calls queued behind its first ones from.
trait Queue {
    fn next(&mut self) -> Option<Job>;
}

impl Queue for mpsc::Receiver<Job> {
    fn next(&mut self) -> Option<Job> {
        self.try_recv().ok()
    }
}

/// No more calls: the next job in the queue must wait for the group.
struct Closed;

impl Queue for Closed {
    fn next(&mut self) -> Option<Job> {
        None
    }
}

/// The writer thread's connection, its count of commits and the sync of its log.
#[derive(Clone, Copy)]
struct Writer<'w> {
    connection: &'w Connection,
    commits: &'w AtomicU64,
    sync: Option<&'w LogSync>,
}

impl Writer<'_> {
    /// One group: `calls` and every call waiting behind them, in one transaction, answered
    /// once the commit is on disk. Returns a job taken from the queue that does not belong
    /// in the group.
    fn run_group(self, mut calls: Vec<Box<dyn Call>>, jobs: &mut impl Queue) -> Option<Job> {
        let connection = self.connection;
        if let Err(error) = connection.exec("BEGIN IMMEDIATE", []).map(drop) {
            fail_all(calls, &sql(error));
            return None;
        }
        let mut leftover = None;
        let mut index = 0;
        loop {
            if let Err(error) = connection.exec("SAVEPOINT call", []).map(drop) {
                roll_back(connection);
                fail_all(calls, &sql(error));
                return leftover;
            }
            let ok = calls[index].run(connection);
            if connection.is_autocommit() {
                // The database rolled the whole transaction back (a full disk, an I/O
                // error): what the calls before this one wrote is gone.
                let error = StoreError::unavailable(
                    "the database rolled the transaction back; nothing of this call was stored",
                );
                // Those after this one did not run.
                let later = calls.split_off(index + 1);
                let this = calls.pop();
                fail_all(calls, &error);
                fail_all(later, &error);
                if let Some(this) = this {
                    this.answer(if ok { Some(error) } else { None });
                }
                return None;
            }
            let ended = if ok {
                connection.exec("RELEASE call", []).map(drop)
            } else {
                connection
                    .exec("ROLLBACK TO call", [])
                    .and_then(|_| connection.exec("RELEASE call", []))
                    .map(drop)
            };
            if let Err(error) = ended {
                roll_back(connection);
                fail_all(calls, &sql(error));
                return None;
            }
            index += 1;
            if index < calls.len() {
                continue;
            }
            if calls.len() >= MAX_BATCH {
                break;
            }
            match jobs.next() {
                Some(Job::Call(call) | Job::Later(call)) => calls.push(call),
                Some(other) => {
                    leftover = Some(other);
                    break;
                }
                None => break,
            }
        }
        match connection.exec("COMMIT", []).map(drop) {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                when_durable(
                    self.sync,
                    Box::new(move |failed| {
                        for call in calls {
                            call.answer(failed.map(not_synced));
                        }
                    }),
                );
            }
            Err(error) => {
                roll_back(connection);
                fail_all(calls, &sql(error));
            }
        }
        leftover
    }
}

/// `prepare_cached` for one-off statements: each SQL text is parsed once per connection.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, LogSync::start)
    }

    /// As [`SqliteStore::open`], the log synced by what `sync` starts on the writer's
    /// connection.
    fn open_with(
        path: &Path,
        sync: impl FnOnce(&Connection) -> std::io::Result<Option<LogSync>>,
    ) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::unavailable(parent.display().to_string()).because(e))?;
        }
        let connection = Connection::open(path).map_err(sql)?;
        let connection = Self::prepare(connection)?;
        // After the migrations, which commit with a sync each.
        let sync = sync(&connection).map_err(|e| {
            StoreError::unavailable("cannot start syncing the write-ahead log").because(e)
        })?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let reader = Connection::open(path).map_err(sql)?;
            // No memory mapping for readers: a reader's view is dropped at every commit
            // of the writer, and with a mapping that meant unmapping and faulting the
            // file back in, read transaction after read transaction.
            reader
                .execute_batch(
                    "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA mmap_size = 0;",
                )
                .map_err(sql)?;
            reader.set_prepared_statement_cache_capacity(STATEMENTS);
            readers.push(Mutex::new(reader));
        }
        Self::start(
            connection,
            Some(Readers {
                connections: readers,
                next: AtomicUsize::new(0),
            }),
            LINGER,
            sync,
        )
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let connection = Self::prepare(Connection::open_in_memory().map_err(sql)?)?;
        Self::start(connection, None, LINGER, None)
    }

    fn prepare(mut connection: Connection) -> Result<Connection, StoreError> {
        // Switching a new file to WAL takes it whole: a program opening it at the same
        // moment is told "busy", so it tries again, for 5 s at most (each try without
        // waiting: the busy timeout is set after).
        let mut tries = 0;
        loop {
            match connection.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 500 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    other.map_err(sql)?;
                    break;
                }
            }
        }
        connection
            // secure_delete: what is deleted (an erased person, expired events) is
            // overwritten in the file, not left in free pages.
            .execute_batch(
                "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
            )
            .map_err(sql)?;
        connection.execute_batch(WRITER_TUNING).map_err(sql)?;
        connection.set_prepared_statement_cache_capacity(STATEMENTS);
        // Each migration in a transaction that holds the write lock from its start, the
        // version read inside it: a program opening the file at the same time waits, then
        // finds the migration done instead of running it again. A file whose schema is
        // up to date is opened without the write lock (a busy writer beside it, a file
        // that is read-only).
        let current: i64 = connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if current as usize == MIGRATIONS.len() {
            return Ok(connection);
        }
        loop {
            let tx = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
            let applied: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql)?;
            let Some(migration) = MIGRATIONS.get(applied as usize) else {
                if applied as usize > MIGRATIONS.len() {
                    return Err(StoreError::corrupt(format!(
                        "the database has schema version {applied}, newer than this program knows ({})",
                        MIGRATIONS.len()
                    )));
                }
                break;
            };
            tx.execute_batch(migration).map_err(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", applied + 1))
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        Ok(connection)
    }

    /// Starts the writer thread on `connection`; a call that may wait waits `linger` for
    /// company at most; with `sync`, groups are answered once it synced the log.
    fn start(
        connection: Connection,
        readers: Option<Readers>,
        linger: std::time::Duration,
        sync: Option<LogSync>,
    ) -> Result<SqliteStore, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let writer = std::thread::Builder::new()
            .name("hotlead-sqlite-writer".into())
            .spawn(move || write_loop(connection, queue, counted, linger, sync))
            .map_err(|e| StoreError::unavailable("cannot start the database writer").because(e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                writer: Some(writer),
                readers,
                commits,
            }),
        })
    }

    fn queue(&self) -> Result<&mpsc::Sender<Job>, StoreError> {
        self.inner
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::unavailable("the store is closed"))
    }

    fn writer_gone() -> StoreError {
        StoreError::unavailable("the database writer stopped")
    }

    /// Runs `work` on the writer's connection outside any transaction.
    async fn alone<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job::Alone(Box::new(move |connection: &Connection| -> Answer {
            let result = guarded(connection, work);
            Box::new(move |failed| {
                let _ = reply.send(failed.map_or(result, Err));
            })
        }));
        self.queue()?
            .send(job)
            .await
            .map_err(|_| Self::writer_gone())?;
        answer.await.map_err(|_| Self::writer_gone())?
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let version = |connection: &Connection| {
            connection
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql)
        };
        if let Some(readers) = &self.inner.readers {
            return readers.run(|connection| version(connection))?;
        }
        // Not async: queued without waiting on the runtime (a full queue is tried again).
        let (reply, answer) = std::sync::mpsc::channel();
        let mut job = Job::Alone(Box::new(move |connection: &Connection| -> Answer {
            let result = version(connection);
            Box::new(move |failed| {
                let _ = reply.send(failed.map_or(result, Err));
            })
        }));
        loop {
            match self.queue()?.try_send(job) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    job = back;
                    std::thread::yield_now();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Self::writer_gone()),
            }
        }
        answer.recv().map_err(|_| Self::writer_gone())?
    }

    /// Transactions the writer committed so far (each one group of calls).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Writes the write-ahead log back into the database file and truncates it, so that
    /// deleted rows survive in neither file.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        self.alone(|connection| {
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
    }

    /// Runs `work` in the writer's next group (see [`SqliteStore`]); answers once that
    /// group committed.
    async fn transaction<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queued(work, Job::Call).await
    }

    /// As [`SqliteStore::transaction`], for a write that may wait a moment to share a
    /// commit ([`Job::Later`]).
    async fn transaction_later<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queued(work, Job::Later).await
    }

    async fn queued<T, F>(&self, work: F, job: fn(Box<dyn Call>) -> Job) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Queued {
            work: Some(work),
            result: None,
            reply,
        };
        self.queue()?
            .send(job(Box::new(call)))
            .await
            .map_err(|_| Self::writer_gone())?;
        answer.await.map_err(|_| Self::writer_gone())?
    }

    /// Runs read-only `work` on the writer's connection, in its next group (see
    /// [`SqliteStore::transaction`]): the scorer's reads, which come between the writes of
    /// a busy ingest. A read connection's page cache is dropped whenever the writer has
    /// committed since its last read, so under a stream of writes each of its reads fetched
    /// every page again from the file (and the log); the writer's cache stays valid
    /// across its own commits. Answered once the group committed, so what it saw is
    /// stored (a group that fails answers it with the error too).
    async fn read_warm<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.transaction(work).await
    }

    /// Runs `work` in one read transaction on a read connection (through the writer for
    /// an in-memory database). It sees every write answered before it began.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.readers.is_none() {
            return self.transaction(work).await;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Some(readers) = &inner.readers else {
                return Err(StoreError::unavailable("the store is closed"));
            };
            readers.run(|connection| {
                let tx = connection.transaction().map_err(sql)?;
                // Dropped unfinished: rolled back (nothing was written).
                guarded(&tx, work)
            })?
        })
        .await
        .map_err(|e| StoreError::unavailable("store task failed").because(e))?
    }
}

/// Erases the lead `id` stands for and every lead merged into it, in one transaction.
fn erase_in(tx: &Connection, id: &str) -> Result<Option<Erased>, StoreError> {
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
            .exec(
                "DELETE FROM events WHERE lead_id IS NULL AND anonymous_id IN
                    (SELECT substr(key, 6) FROM identities WHERE lead_id = ?1 AND key LIKE 'anon:%')",
                [id],
            )
            .map_err(sql)?;
        erased.events += tx
            .exec("DELETE FROM events WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        erased.identities += tx
            .exec("DELETE FROM identities WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        erased.alerts += tx
            .exec("DELETE FROM outbox WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        erased.outcomes += tx
            .exec("DELETE FROM outcomes WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.exec("DELETE FROM history WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.exec("DELETE FROM action_tokens WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.exec("DELETE FROM follow_ups WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.exec("DELETE FROM marks WHERE lead_id = ?1", [id])
            .map_err(sql)?;
        tx.exec("DELETE FROM leads WHERE id = ?1", [id])
            .map_err(sql)?;
    }
    erased.lead_ids = lead_ids;
    Ok(Some(erased))
}

/// The id a possibly merged lead id now stands for.
fn current_id(tx: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    let mut id = id.to_string();
    for _ in 0..32 {
        let merged: Option<Option<String>> = tx
            .row("SELECT merged_into FROM leads WHERE id = ?1", [&id], |r| {
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
fn identities_of(tx: &Connection, id: &str) -> Result<Vec<String>, StoreError> {
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
fn lead_identity(tx: &Connection, id: &str) -> Result<LeadIdentity, StoreError> {
    let (created, attributes, hot_crossings): (String, String, u32) = tx
        .row(
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

fn email_of(tx: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    let key: Option<String> = tx
        .row("SELECT key FROM identities WHERE lead_id = ?1 AND key LIKE 'email:%' ORDER BY linked_at LIMIT 1", [id], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    Ok(key.map(|k| k.trim_start_matches("email:").to_string()))
}

/// Stores `record`, whose event is written out as `body` (by the caller, before the call
/// reaches the one thread that writes the file).
fn record_in(tx: &Connection, record: Record, body: &str) -> Result<Recorded, StoreError> {
    let seen: Option<(Option<String>, Option<String>)> = tx
        .row(
            "SELECT lead_id, digest FROM events WHERE message_id = ?1",
            [&*record.event.message_id],
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

    let now = time(record.received_at);
    if let Some(lead_id) = plain_event_lead(tx, &record)? {
        insert_event(tx, &record, body, Some(&lead_id), &now)?;
        adopt_anonymous_events(tx, &record, &lead_id)?;
        mark(tx, &lead_id, Some(&now))?;
        return Ok(Recorded {
            lead_id: Some(lead_id),
            ..Recorded::default()
        });
    }
    let mut known = Vec::new();
    let mut links: Vec<(IdentityKey, Option<String>)> = Vec::new();
    for key in &record.keys {
        let linked: Option<String> = tx
            .row(
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
            .row(
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
    let (survivor, merging) = match identity::resolve(&record.keys, &known) {
        Resolution::Anonymous => {
            insert_event(tx, &record, body, None, &now)?;
            return Ok(Recorded::default());
        }
        Resolution::Create => {
            tx.exec(
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
            LinkChange::Claim { key } | LinkChange::Move { key, .. } => tx.exec(
                "INSERT INTO identities (key, lead_id, linked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET lead_id = excluded.lead_id, linked_at = excluded.linked_at",
                params![key, lead_id, now],
            ),
            LinkChange::Unlink { key, .. } => {
                tx.exec("DELETE FROM identities WHERE key = ?1", [key])
            }
        }
        .map_err(sql)?;
    }
    if !applied.links.is_empty() {
        for (position, key) in applied.lead.identities.iter().enumerate() {
            tx.exec(
                "UPDATE identities SET position = ?2 WHERE key = ?1",
                params![key, position as i64],
            )
            .map_err(sql)?;
        }
    }
    insert_event(tx, &record, body, Some(&lead_id), &now)?;
    adopt_anonymous_events(tx, &record, &lead_id)?;
    tx.exec(
        "UPDATE leads SET attributes = ?2, hot_crossings = ?3, updated_at = ?4 WHERE id = ?1",
        params![
            lead_id,
            to_json(&applied.lead.attributes)?,
            applied.lead.hot_crossings,
            now
        ],
    )
    .map_err(sql)?;
    mark(tx, &lead_id, Some(&now))?;
    Ok(Recorded {
        lead_id: Some(lead_id),
        merged: applied.merged,
        dropped_attributes: applied.dropped_attributes,
        ..Recorded::default()
    })
}

/// The lead of a call that changes nothing but the lead's events (the common call of a
/// known visitor): no attributes, no e-mail address, and every key of the call linked
/// to one unmerged lead that holds no more keys than a lead may. For such a call
/// [`identity::resolve`] names that lead with nothing to merge and [`identity::apply`]
/// changes no link, attribute or crossing count, so the event is stored on the lead
/// without reading the lead's identity (the same result in fewer statements). `None`
/// for every other call: it takes the full path.
fn plain_event_lead(tx: &Connection, record: &Record) -> Result<Option<String>, StoreError> {
    if !record.attributes.is_empty()
        || record.keys.is_empty()
        || record
            .keys
            .iter()
            .any(|k| matches!(k, IdentityKey::Email(_)))
    {
        return Ok(None);
    }
    let mut lead: Option<String> = None;
    for key in &record.keys {
        let linked: Option<String> = tx
            .row(
                "SELECT i.lead_id FROM identities i JOIN leads l ON l.id = i.lead_id
                 WHERE i.key = ?1 AND l.merged_into IS NULL",
                [key.storage_key()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        match (linked, &lead) {
            (None, _) => return Ok(None),
            (Some(linked), Some(lead)) if linked != *lead => return Ok(None),
            (Some(linked), _) => lead = Some(linked),
        }
    }
    let Some(lead) = lead else { return Ok(None) };
    let keys: i64 = tx
        .row(
            "SELECT count(*) FROM identities WHERE lead_id = ?1",
            [&lead],
            |r| r.get(0),
        )
        .map_err(sql)?;
    Ok((keys as usize <= identity::MAX_IDENTITIES).then_some(lead))
}

/// The events of lead `id` (current, not merged) added since `since`, or `None` when
/// the cursor does not hold (events moved in or out, or another lead's cursor).
/// Its events are still JSON text (see [`EventBodies`]).
fn added_events_in(
    tx: &Connection,
    id: String,
    since: EventsCursor,
) -> Result<Option<AddedEvents>, StoreError> {
    let generation = events_generation(tx, &id)?;
    if since.lead_id != id || since.generation != generation {
        return Ok(None);
    }
    let (bodies, newest) = event_bodies(tx, &id, Some(since.position))?;
    let cursor = EventsCursor {
        lead_id: id,
        generation,
        position: newest.max(since.position),
    };
    Ok(Some(AddedEvents { bodies, cursor }))
}

/// Events added since a cursor, read on the writer: the caller parses them, so that the
/// one thread that writes the file spends no time on JSON it does not need.
struct AddedEvents {
    bodies: EventBodies,
    cursor: EventsCursor,
}

impl AddedEvents {
    fn parse(self) -> Result<EventsRead, StoreError> {
        Ok(EventsRead::Added {
            events: self.bodies.parse()?,
            cursor: self.cursor,
        })
    }
}

/// Events as stored (JSON text), in the order read.
struct EventBodies(Vec<String>);

impl EventBodies {
    fn parse(&self) -> Result<Vec<Event>, StoreError> {
        self.0.iter().map(|body| json(body)).collect()
    }
}

/// Every event of lead `id` (current, not merged), with the cursor to read on from.
fn all_events_in(tx: &Connection, id: String) -> Result<EventsRead, StoreError> {
    let generation = events_generation(tx, &id)?;
    let (events, newest) = events_of(tx, &id, None)?;
    Ok(EventsRead::All {
        events,
        cursor: Some(EventsCursor {
            lead_id: id,
            generation,
            position: newest,
        }),
    })
}

fn events_generation(tx: &Connection, id: &str) -> Result<i64, StoreError> {
    tx.row("SELECT events_gen FROM leads WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .map_err(sql)
}

/// What reading a lead with its new events on the writer found (still to be parsed).
enum Warm {
    /// No such lead.
    Gone,
    Read(Box<LeadRow>, AddedEvents),
    /// The cursor does not hold: the lead's events are read whole, elsewhere.
    Stale,
}

/// The events of lead `id` (current, not merged), oldest first, or with `after` only
/// those stored after that rowid (in the order stored); and the largest rowid read (0
/// for none).
fn events_of(
    tx: &Connection,
    id: &str,
    after: Option<i64>,
) -> Result<(Vec<Event>, i64), StoreError> {
    let (bodies, newest) = event_bodies(tx, id, after)?;
    Ok((bodies.parse()?, newest))
}

/// As [`events_of`], the events still JSON text.
fn event_bodies(
    tx: &Connection,
    id: &str,
    after: Option<i64>,
) -> Result<(EventBodies, i64), StoreError> {
    let mut statement = match after {
        None => tx.prepare_cached(
            "SELECT rowid, body FROM events WHERE lead_id = ?1 ORDER BY timestamp, message_id",
        ),
        Some(_) => tx.prepare_cached(
            "SELECT rowid, body FROM events WHERE lead_id = ?1 AND rowid > ?2 ORDER BY rowid",
        ),
    }
    .map_err(sql)?;
    let mut rows = match after {
        None => statement.query(params![id]),
        Some(after) => statement.query(params![id, after]),
    }
    .map_err(sql)?;
    let mut bodies = Vec::new();
    let mut newest = 0;
    while let Some(row) = rows.next().map_err(sql)? {
        let rowid: i64 = row.get(0).map_err(sql)?;
        newest = newest.max(rowid);
        let body = row
            .get_ref(1)
            .map_err(sql)?
            .as_str()
            .map_err(|e| StoreError::corrupt("a stored event has the wrong type").because(e))?;
        bodies.push(body.to_string());
    }
    Ok((EventBodies(bodies), newest))
}

/// Moves the events an anonymous id of the call left before it was linked to `lead_id`.
fn adopt_anonymous_events(
    tx: &Connection,
    record: &Record,
    lead_id: &str,
) -> Result<(), StoreError> {
    for key in &record.keys {
        if let IdentityKey::Anonymous(anonymous_id) = key {
            tx.exec(
                "UPDATE events SET lead_id = ?1 WHERE lead_id IS NULL AND anonymous_id = ?2",
                params![lead_id, anonymous_id],
            )
            .map_err(sql)?;
        }
    }
    Ok(())
}

fn insert_event(
    tx: &Connection,
    record: &Record,
    body: &str,
    lead_id: Option<&str>,
    now: &str,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO events (message_id, lead_id, anonymous_id, timestamp, received_at, body, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            &*record.event.message_id,
            lead_id,
            record.event.anonymous_id,
            time(record.event.timestamp),
            now,
            body,
            record.digest,
        ],
    )
    .map_err(sql)?;
    Ok(())
}

/// Moves the events of lead `from` to `into`; `from` then redirects to `into`. (Its keys
/// and attributes move as [`identity::apply`] says.)
fn merge(tx: &Connection, from: &str, into: &str, now: &str) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE events SET lead_id = ?2 WHERE lead_id = ?1",
        params![from, into],
    )
    .map_err(sql)?;
    // A merged lead is not scored again.
    tx.exec("DELETE FROM marks WHERE lead_id = ?1", [from])
        .map_err(sql)?;
    tx.exec(
        "UPDATE leads SET merged_into = ?2, updated_at = ?3 WHERE id = ?1",
        params![from, into, now],
    )
    .map_err(sql)?;
    Ok(())
}

/// Marks lead `id` (current) for rescoring, as changed at `at` (else at its last
/// change): its change counter goes up by one, and a lead set aside is tried again at
/// once. The lead's own row is written only when it was set aside.
fn mark(tx: &Connection, id: &str, at: Option<&str>) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO marks (lead_id, seq, first_at, last_at)
            SELECT id, scored_seq + 1, COALESCE(?2, updated_at), COALESCE(?2, updated_at) FROM leads
            WHERE id = ?1 AND merged_into IS NULL
         ON CONFLICT (lead_id) DO UPDATE SET seq = seq + 1, last_at = max(last_at, excluded.last_at)",
        params![id, at],
    )
    .map_err(sql)?;
    tx.exec(
        "UPDATE leads SET aside_until = NULL WHERE id = ?1 AND aside_until IS NOT NULL",
        [id],
    )
    .map_err(sql)?;
    Ok(())
}

fn load_lead(tx: &Connection, id: &str) -> Result<Option<StoredLead>, StoreError> {
    lead_row(tx, id)?.map(LeadRow::parse).transpose()
}

/// A lead's row as read (the lead `id` stands for, after merges), its times and JSON
/// columns still text: the scorer's reads on the writer leave parsing to the caller.
fn lead_row(tx: &Connection, id: &str) -> Result<Option<LeadRow>, StoreError> {
    let Some(id) = current_id(tx, id)? else {
        return Ok(None);
    };
    let row = tx
        .row(
            "SELECT l.created_at, max(l.updated_at, COALESCE(m.last_at, l.updated_at)), l.attributes, l.score_json,
                l.hot_crossings, l.stage_json, l.history_rev
             FROM leads l LEFT JOIN marks m ON m.lead_id = l.id WHERE l.id = ?1",
            [&id],
            |r| Ok(LeadRow {
                id: String::new(),
                created_at: r.get(0)?,
                updated_at: r.get(1)?,
                attributes: r.get(2)?,
                score: r.get(3)?,
                hot_crossings: r.get(4)?,
                stage: r.get(5)?,
                history_rev: r.get(6)?,
                identities: Vec::new(),
            }),
        )
        .map_err(sql)?;
    let identities = identities_of(tx, &id)?;
    Ok(Some(LeadRow {
        id,
        identities,
        ..row
    }))
}

/// See [`lead_row`].
struct LeadRow {
    id: String,
    created_at: String,
    updated_at: String,
    attributes: String,
    score: Option<String>,
    hot_crossings: u32,
    stage: Option<String>,
    history_rev: u32,
    identities: Vec<String>,
}

impl LeadRow {
    fn parse(self) -> Result<StoredLead, StoreError> {
        Ok(StoredLead {
            id: self.id,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
            attributes: json(&self.attributes)?,
            identities: self.identities,
            score: self.score.as_deref().map(json).transpose()?,
            hot_crossings: self.hot_crossings,
            stage: self.stage.as_deref().map(json).transpose()?,
            history_rev: self.history_rev,
        })
    }
}

/// Follow-up records chosen by `rest` (a `WHERE ... ORDER BY ... LIMIT` clause).
fn select_follow_ups(
    tx: &Connection,
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
fn insert_history(tx: &Connection, entries: &[HistoryEntry]) -> Result<(), StoreError> {
    for entry in entries {
        tx.exec(
            "INSERT INTO history (lead_id, rev, at, body) VALUES (?1, ?2, ?3, ?4)",
            params![entry.lead_id, entry.rev, time(entry.at), to_json(entry)?],
        )
        .map_err(sql)?;
    }
    Ok(())
}

/// The history of `lead_id` and of the leads merged into it, oldest first.
fn history_of(tx: &Connection, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
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
        let body = to_json(&record.event)?;
        self.transaction(move |tx| record_in(tx, record, &body))
            .await
    }

    async fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError> {
        let id = id.to_string();
        self.read(move |tx| load_lead(tx, &id)).await
    }

    async fn events(&self, lead_id: &str) -> Result<Vec<Event>, StoreError> {
        let lead_id = lead_id.to_string();
        self.read(move |tx| {
            let Some(id) = current_id(tx, &lead_id)? else {
                return Ok(Vec::new());
            };
            Ok(events_of(tx, &id, None)?.0)
        })
        .await
    }

    async fn events_since(
        &self,
        lead_id: &str,
        since: Option<&EventsCursor>,
    ) -> Result<EventsRead, StoreError> {
        fn none() -> EventsRead {
            EventsRead::All {
                events: Vec::new(),
                cursor: None,
            }
        }
        // The events added since the cursor on the writer's warm cache; a whole history
        // on a read connection, where a long read holds up no write.
        if let Some(since) = since.cloned() {
            let lead_id = lead_id.to_string();
            // `Some(None)`: no such lead; `None`: the cursor does not hold.
            let added = self
                .read_warm(move |tx| match current_id(tx, &lead_id)? {
                    None => Ok(Some(None)),
                    Some(id) => Ok(added_events_in(tx, id, since)?.map(Some)),
                })
                .await?;
            match added {
                Some(None) => return Ok(none()),
                Some(Some(added)) => return added.parse(),
                None => {}
            }
        }
        let lead_id = lead_id.to_string();
        self.read(move |tx| match current_id(tx, &lead_id)? {
            None => Ok(none()),
            Some(id) => all_events_in(tx, id),
        })
        .await
    }

    async fn lead_with_events(
        &self,
        id: &str,
        since: Option<&EventsCursor>,
    ) -> Result<Option<(StoredLead, EventsRead)>, StoreError> {
        // As `events_since`: only the new events are read on the writer.
        if let Some(since) = since.cloned() {
            let id = id.to_string();
            let warm = self
                .read_warm(move |tx| {
                    let Some(lead) = lead_row(tx, &id)? else {
                        return Ok(Warm::Gone);
                    };
                    Ok(match added_events_in(tx, lead.id.clone(), since)? {
                        Some(events) => Warm::Read(Box::new(lead), events),
                        None => Warm::Stale,
                    })
                })
                .await?;
            match warm {
                Warm::Gone => return Ok(None),
                Warm::Read(lead, events) => return Ok(Some((lead.parse()?, events.parse()?))),
                Warm::Stale => {}
            }
        }
        let id = id.to_string();
        self.read(move |tx| {
            let Some(lead) = load_lead(tx, &id)? else {
                return Ok(None);
            };
            let events = all_events_in(tx, lead.id.clone())?;
            Ok(Some((lead, events)))
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
        self.read(move |tx| {
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
        self.read_warm(move |tx| {
            let dirty = |r: &rusqlite::Row<'_>| {
                Ok(Dirty {
                    lead_id: r.get(0)?,
                    seq: r.get(1)?,
                    failures: r.get(2)?,
                })
            };
            // The lead that has waited longest since its last score first (never scored
            // first of all, then by the first change since): the newest change would put
            // a lead that keeps getting events behind every quiet one, and a lead that
            // just got its first mark (a form) behind every lead whose last event was
            // earlier.
            let mut marked = tx
                .prepare_cached(
                    "SELECT m.lead_id, m.seq, l.aside_failures FROM marks m JOIN leads l ON l.id = m.lead_id
                     WHERE l.merged_into IS NULL AND l.aside_until IS NULL
                     ORDER BY l.scored_at IS NOT NULL, l.scored_at, m.first_at, m.lead_id LIMIT ?1",
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
                        "SELECT l.id, COALESCE(m.seq, l.scored_seq), l.aside_failures
                         FROM leads l LEFT JOIN marks m ON m.lead_id = l.id
                         WHERE l.aside_until IS NOT NULL AND l.aside_until <= ?1 AND l.merged_into IS NULL
                         ORDER BY l.aside_until, l.id LIMIT ?2",
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
            tx.exec(
                "UPDATE leads SET aside_reason = ?2, aside_failures = ?3, aside_since = COALESCE(aside_since, ?4),
                    aside_until = ?5
                 WHERE id = ?1 AND merged_into IS NULL
                   AND COALESCE((SELECT seq FROM marks WHERE lead_id = ?1), scored_seq) = ?6",
                params![aside.lead_id, aside.reason, aside.failures, time(aside.since), time(aside.retry_at), aside.seq],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn set_aside_leads(&self, limit: usize) -> Result<Vec<SetAside>, StoreError> {
        self.read(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT l.id, COALESCE(m.seq, l.scored_seq), l.aside_failures, l.aside_reason, l.aside_since, l.aside_until
                     FROM leads l LEFT JOIN marks m ON m.lead_id = l.id
                     WHERE l.aside_until IS NOT NULL AND l.merged_into IS NULL ORDER BY l.aside_since, l.id LIMIT ?1",
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
        self.read(move |tx| {
            let mut statement = tx
                .prepare_cached(
                    "SELECT l.id, COALESCE(m.seq, l.scored_seq) FROM leads l LEFT JOIN marks m ON m.lead_id = l.id
                     WHERE l.merged_into IS NULL AND l.aside_until IS NULL AND l.scored_at IS NOT NULL AND l.scored_at < ?1
                     ORDER BY l.scored_at, l.id LIMIT ?2",
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
        // Written out here, by the caller, not by the one thread that writes the file.
        let score_json = to_json(&update.score)?;
        let stage_json = update.history.stage.as_ref().map(to_json).transpose()?;
        self.transaction_later(move |tx| {
            let history = &update.history;
            if !history.entries.is_empty() && history.read.is_none() {
                return Err(StoreError::rejected("history entries without what they were worked out from"));
            }
            // Saved only while the lead holds what the score was worked out from.
            let read = history.read.unwrap_or(HistoryRead { band: None, history_rev: 0 });
            let last_rev = history.entries.last().map_or(read.history_rev, |e| e.rev);
            let changed = tx
                .exec(
                    "UPDATE leads SET score_json = ?2, score_hundredths = ?3, band = ?4, scored_at = ?5, hot_crossings = ?6,
                        scored_seq = ?7, aside_reason = NULL, aside_failures = 0, aside_since = NULL, aside_until = NULL,
                        history_rev = CASE WHEN ?13 THEN ?10 ELSE history_rev END,
                        updated_at = max(updated_at, COALESCE((SELECT last_at FROM marks WHERE lead_id = ?1 AND seq <= ?7), updated_at)),
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
                tx.exec(
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
                tx.exec(
                    "INSERT INTO outbox (key, lead_id, created_at, message, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?3)
                     ON CONFLICT (key) DO NOTHING",
                    params![alert.key, update.lead_id, time(alert.created_at), to_json(&alert.message)?],
                )
                .map_err(sql)?;
            }
            tx.exec("DELETE FROM marks WHERE lead_id = ?1 AND seq <= ?2", params![update.lead_id, update.seen_seq])
                .map_err(sql)?;
            let still_dirty: bool = tx
                .row("SELECT EXISTS (SELECT 1 FROM marks WHERE lead_id = ?1)", [&update.lead_id], |r| r.get(0))
                .map_err(sql)?;
            Ok(if still_dirty { SaveOutcome::SavedStillDirty } else { SaveOutcome::Saved })
        })
        .await
    }

    async fn history(&self, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let lead_id = lead_id.to_string();
        self.read(move |tx| history_of(tx, &lead_id)).await
    }

    async fn record_action(&self, action: &ActionRecord) -> Result<ActionOutcome, StoreError> {
        let action = action.clone();
        self.transaction(move |tx| {
            let rev: Option<u32> = tx
                .row(
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
                .row(
                    "SELECT EXISTS (SELECT 1 FROM action_tokens WHERE lead_id = ?1 AND token = ?2)",
                    params![action.lead_id, action.token],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if repeated {
                return Ok(ActionOutcome::Repeated);
            }
            if rev != action.read_rev {
                return Err(StoreError::conflict(format!(
                    "lead {} changed meanwhile",
                    action.lead_id
                )));
            }
            insert_history(tx, &action.entries)?;
            tx.exec(
                "INSERT INTO action_tokens (lead_id, token) VALUES (?1, ?2)",
                params![action.lead_id, action.token],
            )
            .map_err(sql)?;
            let at = action.entries.first().map(|e| time(e.at));
            let first = action.entries.iter().find_map(|e| match &e.change {
                hotlead_core::stage::Change::Action { action, .. } => Some(*action),
                _ => None,
            });
            if action.crossing > 0 {
                tx.exec(
                    "UPDATE follow_ups SET first_action_at = ?3, first_action = ?4
                     WHERE lead_id = ?1 AND crossing = ?2 AND first_action_at IS NULL",
                    params![
                        action.lead_id,
                        action.crossing,
                        at,
                        first.map(|a| a.as_str()),
                    ],
                )
                .map_err(sql)?;
            }
            tx.exec(
                "UPDATE leads SET history_rev = ?2, stage_json = COALESCE(?3, stage_json),
                    updated_at = COALESCE(?4, updated_at)
                 WHERE id = ?1",
                params![
                    action.lead_id,
                    action.entries.last().map_or(rev, |e| e.rev),
                    action.stage.as_ref().map(to_json).transpose()?,
                    at,
                ],
            )
            .map_err(sql)?;
            mark(tx, &action.lead_id, at.as_deref())?;
            Ok(ActionOutcome::Recorded)
        })
        .await
    }

    async fn add_notice(&self, notice: &OutboxEntry) -> Result<bool, StoreError> {
        let notice = notice.clone();
        self.transaction(move |tx| {
            let added = tx
                .exec(
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
        self.read(move |tx| {
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
                .exec(
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
                tx.exec(
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
        self.read(move |tx| {
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
        self.read(move |tx| {
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
            tx.exec(
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
            tx.exec(
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
                .exec(
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
            tx.exec(
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
                        .row(
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
                    tx.exec("DELETE FROM identities WHERE key = ?1", [&key])
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
        self.read(move |tx| {
            let id = match &who {
                EraseSubject::Lead(id) => Some(id.clone()),
                EraseSubject::Key(key) => tx
                    .row(
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
                tx.exec(
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
        self.read(move |tx| {
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

fn active_version(tx: &Connection) -> Result<Option<u32>, StoreError> {
    let value: Option<String> = tx
        .row(
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
    tx: &Connection,
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

fn add_rules_in(tx: &Connection, rules: &NewRules) -> Result<RulesVersion, StoreError> {
    let next: u32 = tx
        .row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM rules_versions",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    let at = time(rules.at);
    tx.exec(
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

fn set_active(tx: &Connection, version: u32) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO settings (key, value) VALUES ('active_rules', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [version.to_string()],
    )
    .map_err(sql)?;
    Ok(())
}

fn pending_review(tx: &Connection, id: &str) -> Result<(), StoreError> {
    let review: Option<String> = tx
        .row("SELECT review FROM suggestions WHERE id = ?1", [id], |r| {
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

fn set_review(tx: &Connection, id: &str, review: &SuggestionStatus) -> Result<(), StoreError> {
    let review_json = to_json(review)?;
    let body: String = tx
        .row("SELECT body FROM suggestions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    let mut stored: StoredSuggestion = json(&body)?;
    stored.review = review.clone();
    tx.exec(
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
        self.read(move |tx| {
            let lead: Option<String> = tx
                .row(
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
        self.read(|tx| {
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
            tx.exec(
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
        self.read(move |tx| {
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
        self.read(move |tx| {
            let body: Option<String> = tx
                .row("SELECT body FROM suggestions WHERE id = ?1", [&id], |r| {
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
                .exec(
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
        self.read(|tx| load_rules_versions(tx, None)).await
    }

    async fn active_rules(&self) -> Result<Option<RulesVersion>, StoreError> {
        self.read(|tx| match active_version(tx)? {
            Some(version) => Ok(load_rules_versions(tx, Some(version))?.pop()),
            None => Ok(None),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    //! The writer's group commit. Each test holds the writer on a gate call until every
    //! call it means to group is queued, so the group is known, never guessed from timing;
    //! `commits` tells that they committed in one transaction.

    use super::*;
    use hotlead_app::ports::content_digest;

    fn page(message_id: &str, user: &str) -> Record {
        page_of(message_id, Some(user), None)
    }

    fn queued(store: &SqliteStore) -> usize {
        let jobs = store.inner.jobs.as_ref().unwrap();
        jobs.max_capacity() - jobs.capacity()
    }

    fn commits(store: &SqliteStore) -> u64 {
        store.commits()
    }

    /// Holds the writer until the returned sender is used (or dropped); answers once the
    /// writer runs it, so the caller knows the writer is held.
    async fn hold_writer(
        store: &SqliteStore,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        hold_writer_on(store, false).await
    }

    /// Holds the writer on a call of a group, or on work that runs `alone`.
    async fn hold_writer_on(
        store: &SqliteStore,
        alone: bool,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (running, started) = oneshot::channel();
        let held = store.clone();
        let task = tokio::spawn(async move {
            let work = move |_: &Connection| {
                let _ = running.send(());
                let _ = gate.recv();
                Ok(())
            };
            if alone {
                held.alone(work).await
            } else {
                held.transaction(work).await
            }
        });
        started.await.unwrap();
        (release, task)
    }

    /// Waits (without a deadline: each turn yields) until `n` calls are queued.
    async fn until_queued(store: &SqliteStore, n: usize) {
        while queued(store) < n {
            tokio::task::yield_now().await;
        }
    }

    async fn events_stored(store: &SqliteStore) -> i64 {
        store
            .read(|c| {
                c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                    .map_err(sql)
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_with_one_message_id_store_one_event() {
        let dir = std::env::temp_dir().join(format!("hotlead-group-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("dedupe.db")).unwrap();
        let (release, gate) = hold_writer(&store).await;
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.record(page("same", "u1")).await })
            })
            .collect();
        until_queued(&store, 40).await;
        let before = commits(&store);
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();
        let mut fresh = 0;
        for call in calls {
            let recorded = call.await.unwrap().unwrap();
            assert_eq!(recorded.lead_id.as_deref(), Some("L-same"));
            fresh += usize::from(!recorded.duplicate);
        }
        assert_eq!(
            fresh, 1,
            "one call stored the event, the others were duplicates"
        );
        assert_eq!(commits(&store) - before, 1, "all in one transaction");
        assert_eq!(store.events("L-same").await.unwrap().len(), 1);
        let store_events = events_stored(&store).await;
        assert_eq!(store_events, 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_or_panicking_call_is_rolled_back_alone() {
        let store = SqliteStore::in_memory().unwrap();
        let (release, gate) = hold_writer(&store).await;
        let first = tokio::spawn({
            let store = store.clone();
            async move { store.record(page("a", "u1")).await }
        });
        until_queued(&store, 1).await;
        // Writes an event, then fails: its write must not survive.
        let failing = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .transaction(|tx| {
                        let record = page("failed", "u9");
                        let body = to_json(&record.event)?;
                        record_in(tx, record, &body)?;
                        Err::<(), _>(StoreError::rejected("this call fails"))
                    })
                    .await
            }
        });
        until_queued(&store, 2).await;
        let panicking = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .transaction(|tx| -> Result<(), StoreError> {
                        let record = page("panicked", "u8");
                        let body = to_json(&record.event)?;
                        record_in(tx, record, &body)?;
                        panic!("a bug in one call");
                    })
                    .await
            }
        });
        until_queued(&store, 3).await;
        let last = tokio::spawn({
            let store = store.clone();
            async move { store.record(page("b", "u2")).await }
        });
        until_queued(&store, 4).await;
        let before = commits(&store);
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();
        assert!(!first.await.unwrap().unwrap().duplicate);
        assert!(matches!(
            failing.await.unwrap(),
            Err(StoreError::Rejected { .. })
        ));
        assert!(matches!(
            panicking.await.unwrap(),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(!last.await.unwrap().unwrap().duplicate);
        assert_eq!(commits(&store) - before, 1, "all in one transaction");
        assert_eq!(store.events("L-a").await.unwrap().len(), 1);
        assert_eq!(store.events("L-b").await.unwrap().len(), 1);
        assert!(store.lead("L-failed").await.unwrap().is_none());
        assert!(store.lead("L-panicked").await.unwrap().is_none());
        let stored = events_stored(&store).await;
        assert_eq!(stored, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_commit_answers_every_caller_with_an_error() {
        let store = SqliteStore::in_memory().unwrap();
        // A deferred foreign key is checked at COMMIT: an orphan row makes it fail.
        store
            .transaction(|tx| {
                tx.execute_batch(
                    "CREATE TABLE parent (id TEXT PRIMARY KEY);
                     CREATE TABLE child (parent TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
                )
                .map_err(sql)
            })
            .await
            .unwrap();
        let (release, gate) = hold_writer(&store).await;
        let mut calls = Vec::new();
        for i in 0..3 {
            let caller = store.clone();
            calls.push(tokio::spawn(async move {
                caller
                    .record(page(&format!("m{i}"), "u1"))
                    .await
                    .map(|_| ())
            }));
            until_queued(&store, i + 1).await;
        }
        until_queued(&store, 3).await;
        let orphan = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .transaction(|tx| {
                        tx.exec("INSERT INTO child (parent) VALUES ('none')", [])
                            .map_err(sql)?;
                        Ok(())
                    })
                    .await
            }
        });
        until_queued(&store, 4).await;
        let before = commits(&store);
        release.send(()).unwrap();
        // The gate was in the group: its caller gets the error too.
        assert!(gate.await.unwrap().is_err());
        for call in calls {
            let error = call.await.unwrap().unwrap_err();
            assert!(error.to_string().contains("did not commit"), "{error}");
        }
        assert!(orphan.await.unwrap().is_err());
        assert_eq!(commits(&store), before);
        assert!(store.lead("L-m0").await.unwrap().is_none());
        let stored = events_stored(&store).await;
        assert_eq!(stored, 0);
        // The writer goes on.
        store.record(page("later", "u1")).await.unwrap();
        assert_eq!(store.events("L-later").await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn callers_get_an_error_when_the_writer_is_gone() {
        let store = SqliteStore::in_memory().unwrap();
        let (release, gate) = hold_writer(&store).await;
        store.queue().unwrap().send(Job::Exit).await.unwrap();
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.record(page("a", "u1")).await }
        });
        until_queued(&store, 2).await;
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();
        assert!(matches!(
            waiting.await.unwrap(),
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            store.record(page("b", "u1")).await,
            Err(StoreError::Unavailable { .. })
        ));
        assert!(store.schema_version().is_err());
    }

    /// A store on a file commits without syncing (`synchronous = NORMAL`) because its
    /// log is synced beside the writer, each group answered after the sync that follows
    /// its commit (see the tests with a held sync below); only [`LogSync::start`] makes
    /// that switch, and it makes it only for a file.
    #[tokio::test]
    async fn an_answered_write_is_synced_to_disk() {
        let dir = std::env::temp_dir().join(format!("hotlead-sync-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("sync.db")).unwrap();
        let pragma = |name: &'static str| {
            store.alone(move |c| {
                c.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                    .map_err(sql)
            })
        };
        assert_eq!(
            pragma("synchronous").await.unwrap(),
            1,
            "the log's own sync thread syncs"
        );
        let memory = Connection::open_in_memory().unwrap();
        memory.execute_batch(WRITER_TUNING).unwrap();
        assert!(LogSync::start(&memory).unwrap().is_none());
        let full: i64 = memory
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(full, 2, "with no file, nothing changes");
        let rollback = Connection::open(dir.join("rollback.db")).unwrap();
        rollback.execute_batch(WRITER_TUNING).unwrap();
        assert!(
            LogSync::start(&rollback).unwrap().is_none(),
            "a file with no log"
        );
        let full: i64 = rollback
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(full, 2, "it syncs at each commit");
        // The rest of WRITER_TUNING holds on the writer's connection too.
        assert_eq!(pragma("cache_size").await.unwrap(), -32_768);
        assert_eq!(pragma("wal_autocheckpoint").await.unwrap(), 8_192);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A sync of the log that says when it starts, with the events the file holds then
    /// (read by a connection of its own), and waits to be told how it ends.
    struct HeldFlush {
        path: std::path::PathBuf,
        started: std::sync::mpsc::Sender<i64>,
        ends: std::sync::mpsc::Receiver<std::io::Result<()>>,
    }

    impl crate::log_sync::Flush for HeldFlush {
        fn flush(&mut self) -> std::io::Result<()> {
            let _ = self.started.send(events_in_file(&self.path));
            self.ends.recv().unwrap_or(Ok(()))
        }
    }

    /// How many events the file at `path` holds, read by a connection of its own.
    fn events_in_file(path: &std::path::Path) -> i64 {
        let connection = Connection::open(path).unwrap();
        connection
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    }

    /// A store on a file whose log syncs are held: it answers each with how the sync
    /// ends, and tells when one starts.
    struct HeldSyncs {
        /// First: dropped before the store, so that a held sync ends (a test that failed
        /// with a sync held ends instead of waiting for it).
        ends: std::sync::mpsc::Sender<std::io::Result<()>>,
        store: SqliteStore,
        path: std::path::PathBuf,
        started: std::sync::mpsc::Receiver<i64>,
    }

    impl Drop for HeldSyncs {
        fn drop(&mut self) {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    impl HeldSyncs {
        fn open(name: &str) -> HeldSyncs {
            let dir = temp_db(name);
            let path = dir.join("held.db");
            let (started_tx, started) = std::sync::mpsc::channel();
            let (ends, ends_rx) = std::sync::mpsc::channel();
            let flush = HeldFlush {
                path: path.clone(),
                started: started_tx,
                ends: ends_rx,
            };
            let store = SqliteStore::open_with(&path, move |connection| {
                connection
                    .execute_batch("PRAGMA synchronous = NORMAL")
                    .map_err(std::io::Error::other)?;
                LogSync::with_flush(flush).map(Some)
            })
            .unwrap();
            HeldSyncs {
                store,
                path,
                started,
                ends,
            }
        }

        /// Until a sync starts: the events the file held as it started.
        async fn sync_started(&self) -> i64 {
            soon(async {
                loop {
                    if let Ok(events) = self.started.try_recv() {
                        return events;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
            .await
        }

        fn events_in_file(&self) -> i64 {
            events_in_file(&self.path)
        }

        /// A page view of message id `id`, recorded once its group committed (its answer
        /// may wait for a sync).
        async fn committed(
            &self,
            id: &str,
        ) -> tokio::task::JoinHandle<Result<Recorded, StoreError>> {
            let before = commits(&self.store);
            let call = recording(&self.store, id);
            soon(async {
                while commits(&self.store) == before {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
            .await;
            call
        }
    }

    fn recording(
        store: &SqliteStore,
        id: &str,
    ) -> tokio::task::JoinHandle<Result<Recorded, StoreError>> {
        let (store, id) = (store.clone(), id.to_string());
        tokio::spawn(async move { store.record(page(&id, "u1")).await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_is_answered_after_the_sync_that_follows_its_commit_and_the_next_one_commits_meanwhile()
     {
        let held = HeldSyncs::open("held-sync");
        let first = recording(&held.store, "m1");
        // The sync began after the commit: what it makes durable includes the call.
        assert_eq!(held.sync_started().await, 1);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!first.is_finished(), "not answered before its sync ended");
        // The writer does not wait for the sync: the next call commits meanwhile.
        let second = held.committed("m2").await;
        assert_eq!(held.events_in_file(), 2);
        assert!(!second.is_finished());
        held.ends.send(Ok(())).unwrap();
        assert!(!soon(first).await.unwrap().unwrap().duplicate);
        // The second group is answered after a sync of its own.
        assert_eq!(held.sync_started().await, 2);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !second.is_finished(),
            "not covered by the sync before its commit"
        );
        held.ends.send(Ok(())).unwrap();
        assert!(!soon(second).await.unwrap().unwrap().duplicate);
    }

    /// After a failed sync, nothing written since is known to be on disk (the system may
    /// have dropped the log's pages, and a later sync that succeeds proves nothing of
    /// them): the groups handed over meanwhile fail too, and the writer takes no more
    /// writes until the store is opened again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_fails_its_group_and_every_write_after_it() {
        let held = HeldSyncs::open("failed-sync");
        let first = recording(&held.store, "m1");
        assert_eq!(held.sync_started().await, 1);
        // A second group commits while the first one's sync is held.
        let second = held.committed("m2").await;
        held.ends
            .send(Err(std::io::Error::other("the disk went away")))
            .unwrap();
        let error = soon(first).await.unwrap().unwrap_err();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error}");
        assert!(error.to_string().contains("did not confirm"), "{error}");
        // Its sync would succeed, but comes after the failure.
        let _ = held.ends.send(Ok(()));
        let error = soon(second).await.unwrap().unwrap_err();
        assert!(error.to_string().contains("did not confirm"), "{error}");
        let error = soon(held.store.record(page("m3", "u1"))).await.unwrap_err();
        assert!(error.to_string().contains("writer stopped"), "{error}");
        // Both calls were committed: not known to be on disk, not rolled back either.
        assert_eq!(held.events_in_file(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_run_alone_is_answered_after_a_sync() {
        let held = HeldSyncs::open("alone-sync");
        let alone = tokio::spawn({
            let store = held.store.clone();
            async move { store.alone(|_| Ok(7)).await }
        });
        held.sync_started().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!alone.is_finished());
        held.ends.send(Ok(())).unwrap();
        assert_eq!(soon(alone).await.unwrap().unwrap(), 7);
    }

    /// An in-memory store whose calls that may wait wait `linger` for company.
    fn lingering(linger: std::time::Duration) -> SqliteStore {
        let connection = SqliteStore::prepare(Connection::open_in_memory().unwrap()).unwrap();
        SqliteStore::start(connection, None, linger, None).unwrap()
    }

    /// A write that may wait, as the scorer saves a score: one row in `settings`.
    fn later_write(
        store: &SqliteStore,
        key: &str,
    ) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let (store, key) = (store.clone(), key.to_string());
        tokio::spawn(async move {
            store
                .transaction_later(move |tx| {
                    tx.exec("INSERT INTO settings (key, value) VALUES (?1, 'x')", [key])
                        .map(drop)
                        .map_err(sql)
                })
                .await
        })
    }

    /// Until the writer has taken every queued call (it is then running or waiting).
    async fn until_taken(store: &SqliteStore) {
        while queued(store) > 0 {
            tokio::task::yield_now().await;
        }
    }

    /// Holds the writer on work that runs alone (outside any group) until the returned
    /// sender is used: what is queued meanwhile is taken afterwards, in order, the first
    /// call starting a group of its own.
    async fn hold_writer_alone(
        store: &SqliteStore,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        hold_writer_on(store, true).await
    }

    /// `future`, which must end well within the 60 s a waiting write may wait here.
    async fn soon<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(10), future)
            .await
            .expect("done in time, not after the 60 s wait")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_may_wait_waits_for_the_next_call_and_shares_its_commit() {
        let store = lingering(std::time::Duration::from_secs(60));
        let (release, held) = hold_writer_alone(&store).await;
        let before = commits(&store);
        let saved = later_write(&store, "a");
        until_queued(&store, 1).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        soon(until_taken(&store)).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(commits(&store), before, "nothing committed while it waits");
        assert!(!saved.is_finished());
        // The next call ends the wait at once: both commit together.
        let recorded = soon(store.record(page("m1", "u1"))).await.unwrap();
        assert!(recorded.lead_id.is_some());
        soon(saved).await.unwrap().unwrap();
        assert_eq!(commits(&store) - before, 1, "one commit for both");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_may_wait_is_stored_alone_when_no_call_comes() {
        let store = SqliteStore::in_memory().unwrap();
        let before = commits(&store);
        later_write(&store, "a").await.unwrap().unwrap();
        assert_eq!(commits(&store) - before, 1);
        let stored: i64 = store
            .read(|c| {
                c.query_row("SELECT count(*) FROM settings WHERE key = 'a'", [], |r| {
                    r.get(0)
                })
                .map_err(sql)
            })
            .await
            .unwrap();
        assert_eq!(stored, 1);
    }

    /// Calls queued after work that runs alone (a checkpoint) wait for it, even when it
    /// comes while a write waits for company: that write commits without them, then the
    /// checkpoint runs, then they do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_behind_a_checkpoint_do_not_join_a_waiting_write() {
        let store = lingering(std::time::Duration::from_secs(60));
        // Everything below is queued before the writer takes the waiting write.
        let (release, held) = hold_writer_alone(&store).await;
        let before = commits(&store);
        let saved = later_write(&store, "a");
        until_queued(&store, 1).await;
        let checkpoint = tokio::spawn({
            let store = store.clone();
            async move { store.checkpoint().await }
        });
        until_queued(&store, 2).await;
        let behind = later_write(&store, "b");
        until_queued(&store, 3).await;
        let call = tokio::spawn({
            let store = store.clone();
            async move { store.record(page("m1", "u1")).await }
        });
        until_queued(&store, 4).await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        soon(saved).await.unwrap().unwrap();
        // An in-memory database has no log to write back: the checkpoint's answer does
        // not matter here, only that it ran between the two groups.
        let _ = soon(checkpoint).await.unwrap();
        soon(behind).await.unwrap().unwrap();
        assert!(soon(call).await.unwrap().unwrap().lead_id.is_some());
        assert_eq!(
            commits(&store) - before,
            2,
            "the waiting write alone, then the calls behind"
        );
    }

    /// A lead merged into another after the scorer listed it is not saved with its own
    /// change counter on the lead it went into (whose mark could then be taken away with
    /// changes the score never read): the rescore is refused, and that lead keeps the
    /// mark the merge gave it.
    #[tokio::test]
    async fn a_lead_merged_after_it_was_listed_is_not_scored_under_its_counter() {
        let store = SqliteStore::in_memory().unwrap();
        let scorer = scorer_on(&store);
        let older = store
            .record(page_of("y1", Some("u-y"), None))
            .await
            .unwrap();
        let older = older.lead_id.unwrap();
        assert_eq!(scorer.rescore_marked().await.unwrap(), 1);
        for i in 1..=5 {
            let mut call = page_of(&format!("x{i}"), Some("u-x"), Some("a-x"));
            call.received_at += chrono::Duration::minutes(1);
            store.record(call).await.unwrap();
        }
        let listed = store.dirty(Utc::now(), 10).await.unwrap();
        let [mark] = listed.as_slice() else {
            panic!("one marked lead: {listed:?}")
        };
        assert_eq!((mark.lead_id.as_str(), mark.seq), ("L-x1", 5));
        let mut merging = page_of("m", Some("u-y"), Some("a-x"));
        merging.received_at += chrono::Duration::minutes(2);
        let merged = store.record(merging).await.unwrap();
        assert_eq!(merged.lead_id.as_deref(), Some(older.as_str()));
        assert_eq!(merged.merged, ["L-x1"]);
        let refused = scorer.rescore(&mark.lead_id, mark.seq).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict { .. })),
            "{refused:?}"
        );
        let marked: Vec<_> = store.dirty(Utc::now(), 10).await.unwrap();
        assert_eq!(marked.len(), 1);
        assert_eq!(
            (marked[0].lead_id.as_str(), marked[0].seq),
            (older.as_str(), 2)
        );
        assert_eq!(scorer.rescore_marked().await.unwrap(), 1);
        assert!(store.dirty(Utc::now(), 10).await.unwrap().is_empty());
    }

    /// A file written before marks had a table of their own (schema 9) keeps every
    /// marked lead marked, with its change counter, and no other.
    #[tokio::test]
    async fn marked_leads_of_an_older_file_stay_marked() {
        let dir = temp_db("marks");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v9.db");
        {
            let c = Connection::open(&path).unwrap();
            for migration in &MIGRATIONS[..9] {
                c.execute_batch(migration).unwrap();
            }
            c.execute_batch(
                "PRAGMA user_version = 9;
                 INSERT INTO leads (id, created_at, updated_at, dirty_seq, scored_seq, scored_at)
                 VALUES ('L-marked', '2026-01-01T00:00:00.000000Z', '2026-01-03T00:00:00.000000Z', 3, 1, '2026-01-02T00:00:00.000000Z'),
                        ('L-clean', '2026-01-01T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z', 2, 2, '2026-01-02T00:00:00.000000Z'),
                        ('L-new', '2026-01-04T00:00:00.000000Z', '2026-01-04T00:00:00.000000Z', 1, 0, NULL);
                 INSERT INTO leads (id, created_at, updated_at, dirty_seq, scored_seq, merged_into)
                 VALUES ('L-merged', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 5, 0, 'L-marked');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let marked: Vec<(String, i64)> = store
            .dirty(Utc::now(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.lead_id, d.seq))
            .collect();
        assert_eq!(
            marked,
            [("L-new".to_string(), 1), ("L-marked".to_string(), 3)]
        );
        let rows: Vec<(String, i64, String)> = store
            .read(|c| {
                let mut statement = c
                    .prepare("SELECT lead_id, seq, first_at FROM marks ORDER BY lead_id")
                    .map_err(sql)?;
                let rows = statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(sql)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(sql)
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    "L-marked".to_string(),
                    3,
                    "2026-01-03T00:00:00.000000Z".to_string()
                ),
                (
                    "L-new".to_string(),
                    1,
                    "2026-01-04T00:00:00.000000Z".to_string()
                ),
            ],
            "marked leads only: not the clean one, not the merged one"
        );
        let lead = store.lead("L-marked").await.unwrap().unwrap();
        assert_eq!(time(lead.updated_at), "2026-01-03T00:00:00.000000Z");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An event marks its lead without writing the lead's row, and the lead still says
    /// when it last changed; its score takes the mark away (unless another came since).
    #[tokio::test]
    async fn an_event_marks_its_lead_and_its_score_clears_the_mark() {
        let store = SqliteStore::in_memory().unwrap();
        let lead = store
            .record(page("m1", "u1"))
            .await
            .unwrap()
            .lead_id
            .unwrap();
        let first = store.lead(&lead).await.unwrap().unwrap().updated_at;
        let mut later = page("m2", "u1");
        later.received_at = first + chrono::Duration::minutes(5);
        store.record(later).await.unwrap();
        let rows_written = |store: &SqliteStore, lead: String| {
            let store = store.clone();
            async move {
                store
                    .read(move |c| {
                        c.query_row("SELECT updated_at FROM leads WHERE id = ?1", [lead], |r| {
                            r.get::<_, String>(0)
                        })
                        .map_err(sql)
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            rows_written(&store, lead.clone()).await,
            time(first),
            "the lead's row is not written"
        );
        let read = store.lead(&lead).await.unwrap().unwrap();
        assert_eq!(read.updated_at, first + chrono::Duration::minutes(5));
        let dirty = store.dirty(Utc::now(), 10).await.unwrap();
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].seq, 2);
        let scorer = scorer_on(&store);
        assert_eq!(scorer.rescore_marked().await.unwrap(), 1);
        assert!(store.dirty(Utc::now(), 10).await.unwrap().is_empty());
        assert_eq!(
            store.lead(&lead).await.unwrap().unwrap().updated_at,
            first + chrono::Duration::minutes(5)
        );
    }

    #[tokio::test]
    async fn a_read_sees_every_write_answered_before_it() {
        let dir = std::env::temp_dir().join(format!("hotlead-read-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("read.db")).unwrap();
        for i in 0..20 {
            let recorded = store.record(page(&format!("m{i}"), "u1")).await.unwrap();
            let lead = recorded.lead_id.unwrap();
            assert_eq!(store.events(&lead).await.unwrap().len(), i + 1);
            assert_eq!(store.dirty(Utc::now(), 10).await.unwrap().len(), 1);
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two programs that open one new database file at once (`hotlead serve` and a
    /// command beside it) both open it: the schema is brought up to date once, by
    /// whichever comes first, and the other sees it done.
    #[test]
    fn programs_opening_one_new_file_at_once_all_open_it() {
        let dir = std::env::temp_dir().join(format!("hotlead-migrate-{}", std::process::id()));
        for round in 0..10 {
            let path = dir.join(format!("race-{round}.db"));
            let start = Arc::new(std::sync::Barrier::new(4));
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        SqliteStore::open(&path).map(|store| store.schema_version())
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().unwrap();
                assert!(
                    matches!(opened, Ok(Ok(version)) if version == MIGRATIONS.len() as i64),
                    "round {round}: {opened:?}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Reading the events a lead got since a cursor is a range of an index (lead, then
    /// rowid), not a scan of the lead's whole history: a lead that keeps browsing is
    /// rescored again and again.
    #[tokio::test]
    async fn the_events_added_since_a_cursor_are_a_range_of_an_index() {
        let store = SqliteStore::in_memory().unwrap();
        let plan: Vec<String> = store
            .alone(|c| {
                let mut statement = c
                    .prepare(
                        "EXPLAIN QUERY PLAN SELECT rowid, body FROM events
                         WHERE lead_id = ?1 AND rowid > ?2 ORDER BY rowid",
                    )
                    .map_err(sql)?;
                let rows = statement
                    .query_map(params!["L-1", 5], |r| r.get::<_, String>(3))
                    .map_err(sql)?;
                rows.collect::<Result<_, _>>().map_err(sql)
            })
            .await
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH events USING INDEX events_lead (lead_id=? AND rowid>?)"],
            "no scan of the lead's events, no sort"
        );
    }

    /// The scorer's short reads (the marked leads, a lead with its new events) run on the
    /// writer's connection, whose page cache stays valid across its commits (a read
    /// connection's is dropped at each), and see what the writes before them stored; a
    /// lead's whole history is read on a read connection, where a long read holds up no
    /// write.
    #[tokio::test]
    async fn short_reads_run_on_the_writer_and_whole_histories_beside_it() {
        let dir = std::env::temp_dir().join(format!("hotlead-warm-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("warm.db")).unwrap();
        let lead = store
            .record(page("m0", "u1"))
            .await
            .unwrap()
            .lead_id
            .unwrap();
        let mut commits_before = commits(&store);
        let mut through_writer = || {
            let now = commits(&store);
            let n = now - commits_before;
            commits_before = now;
            n
        };
        assert_eq!(store.dirty(Utc::now(), 10).await.unwrap().len(), 1);
        assert_eq!(through_writer(), 1, "the marked leads: on the writer");
        let (_, read) = store.lead_with_events(&lead, None).await.unwrap().unwrap();
        let EventsRead::All { cursor, .. } = read else {
            panic!("a first read reads everything")
        };
        assert_eq!(through_writer(), 0, "a whole history: beside it");
        store.record(page("m1", "u1")).await.unwrap();
        through_writer();
        let read = store.events_since(&lead, cursor.as_ref()).await.unwrap();
        let EventsRead::Added { events, cursor } = read else {
            panic!("the cursor still holds")
        };
        assert_eq!(events.len(), 1);
        assert_eq!(through_writer(), 1, "the new events: on the writer");
        let (_, read) = store
            .lead_with_events(&lead, Some(&cursor))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(read, EventsRead::Added { ref events, .. } if events.is_empty()));
        assert_eq!(through_writer(), 1);
        let stale = EventsCursor {
            generation: cursor.generation + 1,
            ..cursor
        };
        let (_, read) = store
            .lead_with_events(&lead, Some(&stale))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(read, EventsRead::All { ref events, .. } if events.len() == 2));
        assert_eq!(
            through_writer(),
            1,
            "a cursor that does not hold: looked at on the writer, the history read beside it"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn page_of(message_id: &str, user: Option<&str>, anonymous: Option<&str>) -> Record {
        let mut call = serde_json::json!({"type": "page", "messageId": message_id,
            "timestamp": "2026-11-01T00:00:00Z", "context": {"page": {"path": "/pricing"}}});
        let mut keys = Vec::new();
        if let Some(user) = user {
            call["userId"] = user.into();
            keys.push(IdentityKey::User(user.into()));
        }
        if let Some(anonymous) = anonymous {
            call["anonymousId"] = anonymous.into();
            keys.push(IdentityKey::Anonymous(anonymous.into()));
        }
        let event = Event::from_segment(&call).expect("a valid page call");
        Record {
            digest: content_digest(&event, &[]),
            retention: Default::default(),
            event,
            keys,
            attributes: vec![],
            received_at: "2026-11-01T00:00:00Z".parse().unwrap(),
            new_lead_id: format!("L-{message_id}"),
        }
    }

    /// A plain page call whose keys point at two leads is no plain event of a known
    /// lead: it merges them (the short path takes only calls whose keys all point at one
    /// unmerged lead). Checked by letting the short path take keys of different leads:
    /// this test then fails.
    #[tokio::test]
    async fn a_call_whose_keys_point_at_two_leads_still_merges_them() {
        let store = SqliteStore::in_memory().unwrap();
        let a = store.record(page_of("a", Some("u1"), None)).await.unwrap();
        let b = store
            .record(page_of("b", Some("u2"), Some("x")))
            .await
            .unwrap();
        let (a, b) = (a.lead_id.unwrap(), b.lead_id.unwrap());
        // Known lead, both keys on it: stored on it, marked once more.
        let plain = store
            .record(page_of("c", Some("u2"), Some("x")))
            .await
            .unwrap();
        assert_eq!(plain.lead_id.as_deref(), Some(b.as_str()));
        assert!(plain.merged.is_empty());
        assert_eq!(store.events(&b).await.unwrap().len(), 2);
        // u1 is lead a's, x is lead b's: one person, merged into the older lead.
        let both = store
            .record(page_of("d", Some("u1"), Some("x")))
            .await
            .unwrap();
        assert_eq!(both.lead_id.as_deref(), Some(a.as_str()));
        assert_eq!(both.merged, vec![b.clone()]);
        assert_eq!(store.events(&a).await.unwrap().len(), 4);
        // And a later plain call of the merged lead's keys goes to the survivor.
        let after = store.record(page_of("e", Some("u2"), None)).await.unwrap();
        assert_eq!(after.lead_id.as_deref(), Some(a.as_str()));
        assert_eq!(store.events(&a).await.unwrap().len(), 5);
    }

    fn scorer_on(store: &SqliteStore) -> hotlead_app::Scorer {
        use hotlead_app::scorer::ManualClock;
        let rules = hotlead_core::RuleSet::from_toml("seed", hotlead_core::rules::SEED).unwrap();
        let outbox = std::env::temp_dir().join(format!(
            "hotlead-scorer-outbox-{}-{}.jsonl",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        hotlead_app::Scorer::new(
            Arc::new(store.clone()),
            Arc::new(crate::FileOutbox::new(&outbox)),
            Arc::new(ManualClock::at("2026-11-01T01:00:00Z".parse().unwrap())),
            Arc::new(rules),
            Arc::new(hotlead_app::Config::default()),
        )
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);

    fn temp_db(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "hotlead-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// What the saved scores say, lead by lead (the lead's events and the score's
    /// figures; the time is the same clock in both).
    async fn scores(store: &SqliteStore, leads: &[String]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for id in leads {
            let lead = store.lead(id).await.unwrap().unwrap();
            out.push((id.clone(), serde_json::to_string(&lead.score).unwrap()));
        }
        out
    }

    /// Leads rescored several at once (a scheduled round on a file database: reads on
    /// the read connections, saves grouped by the writer) get the scores they get one at
    /// a time, and the round leaves no lead marked. Checked by giving every task of a
    /// batch the first lead's mark: the scores then differ and leads stay marked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rescoring_saves_what_one_at_a_time_saves() {
        let dirs = [temp_db("concurrent"), temp_db("sequential")];
        let stores = [
            SqliteStore::open(&dirs[0].join("a.db")).unwrap(),
            SqliteStore::open(&dirs[1].join("b.db")).unwrap(),
        ];
        let mut leads = Vec::new();
        for store in &stores {
            leads.clear();
            for user in 0..60 {
                for view in 0..=(user % 7) {
                    let recorded = store
                        .record(page_of(
                            &format!("m{user}-{view}"),
                            Some(&format!("u{user}")),
                            None,
                        ))
                        .await
                        .unwrap();
                    if view == 0 {
                        leads.push(recorded.lead_id.unwrap());
                    }
                }
            }
        }
        let round = scorer_on(&stores[0]).scheduled_round().await;
        assert_eq!(round.rescored, 60);
        let one_by_one = scorer_on(&stores[1]);
        for mark in stores[1].dirty(Utc::now(), 1_000).await.unwrap() {
            one_by_one.rescore(&mark.lead_id, mark.seq).await.unwrap();
        }
        assert!(stores[0].dirty(Utc::now(), 10).await.unwrap().is_empty());
        assert_eq!(
            scores(&stores[0], &leads).await,
            scores(&stores[1], &leads).await
        );
        drop(stores);
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// A lead that gets an event after its mark was read is saved as still marked, and the
    /// next round scores it again with that event. Checked by saving the lead's newest
    /// change counter instead of the one its rescore began from: the lead is then clean
    /// after the first save and this test fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lead_marked_while_it_is_rescored_is_rescored_again() {
        let dir = temp_db("marked-again");
        let store = SqliteStore::open(&dir.join("m.db")).unwrap();
        let lead = store
            .record(page_of("first", Some("u1"), None))
            .await
            .unwrap()
            .lead_id
            .unwrap();
        let scorer = scorer_on(&store);
        let mark = store.dirty(Utc::now(), 10).await.unwrap().remove(0);
        // The event comes after the scorer read the mark (as while it scores).
        store
            .record(page_of("second", Some("u1"), None))
            .await
            .unwrap();
        let outcome = scorer.rescore(&mark.lead_id, mark.seq).await.unwrap();
        assert_eq!(outcome, SaveOutcome::SavedStillDirty);
        assert_eq!(store.dirty(Utc::now(), 10).await.unwrap().len(), 1);
        let round = scorer.scheduled_round().await;
        assert_eq!(round.rescored, 1);
        assert!(store.dirty(Utc::now(), 10).await.unwrap().is_empty());
        assert_eq!(store.events(&lead).await.unwrap().len(), 2);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
