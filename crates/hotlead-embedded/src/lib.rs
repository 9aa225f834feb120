//! The embedded adapters: the whole product on one machine with no cloud account.
//!
//! - [`SqliteStore`]: the [`hotlead_app::Store`] port on one SQLite file (WAL,
//!   migrations).
//! - [`FileOutbox`]: the [`hotlead_app::Notifier`] port appending each alert as one JSON
//!   line to a file.

mod outbox;
mod store;

pub use outbox::FileOutbox;
pub use store::SqliteStore;
