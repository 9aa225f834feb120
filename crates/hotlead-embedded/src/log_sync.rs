//! Syncing a SQLite write-ahead log on a thread of its own, so that the writer commits
//! its next group while the last one is being synced.
//!
//! With `synchronous = FULL` SQLite syncs the log inside `COMMIT`: the one writer thread
//! waits for the disk, and the calls queued meanwhile wait for it too. With a
//! [`LogSync`] the connection commits with `synchronous = NORMAL` (the log is written,
//! not synced) and hands the group's answers over; the sync thread syncs the log file and
//! only then answers them. A sync that begins after a commit returned covers every frame
//! that commit wrote, so no caller is answered before what it wrote is on disk: the same
//! promise as `FULL`, one sync shared by every group committed while the last sync ran.
//!
//! What `NORMAL` leaves to SQLite stays with it: the log's header is synced when the log
//! starts over, the log before a checkpoint copies it into the database file, and the
//! database file after. A write is visible to readers once committed, a sync before it is
//! answered: after a power cut (not a crash of the process, which leaves the written log
//! to the system) a read may have seen a write that is then gone. Whatever acts outside
//! on what it read (an alert delivered) first commits a claim of its own, answered after
//! a sync that covers what it read.
//!
//! A failed sync is final. The system may have dropped the log's unwritten pages (marked
//! clean, the error told once), so a later sync that succeeds proves nothing of the
//! groups before it, nor of those after it (the log is a chain: recovery stops at the
//! first frame that is not on disk). Every group handed over since is answered with the
//! error, and [`LogSync::failed`] tells the writer to take no more writes: after a
//! restart, SQLite reads back the log as it is on disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

/// What a group's callers are told once the sync that covers it returned: `None` when
/// it did, else the error of the sync (the group is committed, but maybe not on disk).
pub type Answers = Box<dyn FnOnce(Option<&std::io::Error>) + Send>;

/// What makes the log durable: the log file's `fdatasync` (tests give their own).
pub(crate) trait Flush: Send + 'static {
    fn flush(&mut self) -> std::io::Result<()>;
}

impl Flush for std::fs::File {
    fn flush(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// A thread that syncs the log and answers the groups committed before each sync.
pub struct LogSync {
    /// `None` once dropped (the thread answers what is queued, then ends).
    groups: Option<mpsc::Sender<Answers>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set by the first sync that failed.
    failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for LogSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSync").finish_non_exhaustive()
    }
}

impl LogSync {
    /// Syncs the write-ahead log of `connection`'s database file (which must be in WAL
    /// mode, its log open) on a thread of its own, and makes the connection commit
    /// without syncing. `None` for a database with no file (in memory).
    pub fn start(connection: &rusqlite::Connection) -> std::io::Result<Option<LogSync>> {
        let Some(path) = connection.path().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let mode: String = connection
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(std::io::Error::other)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // The connection syncs at each commit, as set.
            return Ok(None);
        }
        // The log is opened (created if need be) with the connection's first read.
        connection
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(std::io::Error::other)?;
        // Opened for writing (some systems sync only such handles), never written. SQLite
        // removes the log only when the last connection to the file closes (and after
        // writing it back into the file), and a checkpoint that truncates it keeps the
        // same file, so this handle stays the log's while the connection is open. A log
        // that cannot be opened leaves the connection syncing at each commit.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("{path}-wal"));
        let Ok(log) = opened else {
            return Ok(None);
        };
        let sync = LogSync::with_flush(log)?;
        connection
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(std::io::Error::other)?;
        Ok(Some(sync))
    }

    /// A sync thread that makes the log durable with `flush`.
    pub(crate) fn with_flush(mut flush: impl Flush) -> std::io::Result<LogSync> {
        let (groups, queued) = mpsc::channel::<Answers>();
        let failed = Arc::new(AtomicBool::new(false));
        let failing = failed.clone();
        let thread = std::thread::Builder::new()
            .name("hotlead-wal-sync".into())
            .spawn(move || {
                while let Ok(first) = queued.recv() {
                    // Every group committed by now: one sync covers them all.
                    let mut synced = vec![first];
                    synced.extend(queued.try_iter());
                    let result = if failing.load(Ordering::Acquire) {
                        Err(std::io::Error::other(
                            "an earlier sync of the log failed: no write since is known to be on disk",
                        ))
                    } else {
                        flush.flush()
                    };
                    if result.is_err() {
                        failing.store(true, Ordering::Release);
                    }
                    for answers in synced {
                        answers(result.as_ref().err());
                    }
                }
            })?;
        Ok(LogSync {
            groups: Some(groups),
            thread: Some(thread),
            failed,
        })
    }

    /// Whether a sync failed: nothing written since can be answered, and the writer
    /// should take no more writes.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Answers a group once a sync that begins after this call returned: call it after
    /// the group's commit returned.
    pub fn after_sync(&self, answers: Answers) {
        if let Some(groups) = &self.groups {
            // The thread ends only once `groups` is dropped, or if it panicked.
            if let Err(mpsc::SendError(answers)) = groups.send(answers) {
                answers(Some(&std::io::Error::other(
                    "the log's sync thread stopped",
                )));
            }
        }
    }
}

impl Drop for LogSync {
    /// Answers every group handed over (after a last sync), then returns.
    fn drop(&mut self) {
        self.groups = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers `answers` once what was committed before this call is on disk: through `sync`
/// when there is one, else at once (a database with no file, or a connection that
/// syncs at each commit).
pub(crate) fn when_durable(sync: Option<&LogSync>, answers: Answers) {
    match sync {
        Some(sync) => sync.after_sync(answers),
        None => answers(None),
    }
}
