//! The embedded adapters: the whole product on one machine with no cloud account.
//!
//! - [`SqliteStore`]: the [`hotlead_app::Store`] port on one SQLite file (WAL,
//!   migrations).
//! - [`FileOutbox`]: the [`hotlead_app::Notifier`] port appending each alert as one JSON
//!   line to a file.
//! - [`LogSync`]: syncs the SQLite write-ahead log beside the writer, which commits
//!   without waiting for the disk; callers are answered once their commit is on disk.
//! - [`MemoryRequestCounter`]: the [`hotlead_app::ports::RequestCounter`] port (each
//!   client's requests per minute) in the process's memory.

mod counter;
mod log_sync;
mod outbox;
mod store;

pub use counter::MemoryRequestCounter;
pub use log_sync::{Answers, LogSync};
pub use outbox::FileOutbox;
pub use store::{SqliteStore, WRITER_TUNING};
