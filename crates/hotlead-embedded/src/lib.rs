//! The embedded adapters: the whole product on one machine with no cloud account.
//!
//! - [`SqliteStore`]: the [`hotlead_app::Store`] port on one SQLite file (WAL,
//!   migrations).
//! - [`FileOutbox`]: the [`hotlead_app::Notifier`] port appending each alert as one JSON
//!   line to a file.
//! - [`MemoryRequestCounter`]: the [`hotlead_app::ports::RequestCounter`] port (each
//!   client's requests per minute) in the process's memory.

mod counter;
mod outbox;
mod store;

pub use counter::MemoryRequestCounter;
pub use outbox::FileOutbox;
pub use store::{SqliteStore, WRITER_TUNING};
