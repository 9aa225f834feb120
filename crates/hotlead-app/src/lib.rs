//! hotlead's application services and the ports they use.
//!
//! The services (ingestion with identity stitching, rescoring, alert delivery) are the
//! same whether the product runs on one machine (SQLite, an outbox file) or on AWS
//! (DynamoDB, SNS). They reach the outside only through the traits in [`ports`]; this
//! crate itself depends on no database, no HTTP framework and no AWS SDK.

pub mod config;
pub mod erase;
pub mod event_cache;
#[cfg(feature = "faults")]
pub mod faults;
pub mod follow_up;
pub mod ingest;
pub mod links;
pub mod pages;
pub mod ports;
pub mod review;
pub mod scorer;
pub mod throttle;

pub use config::Config;
pub use ingest::{FormOutcome, Ingest, IngestError};
pub use ports::{Clock, IdSource, Notifier, NotifyError, Store, StoreError, SystemClock, UuidIds};
pub use scorer::{LeadChange, Round, Scorer};
