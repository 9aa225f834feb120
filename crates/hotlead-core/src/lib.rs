//! hotlead's domain: the rules language, the normalisation of form input, and the pure
//! scoring function that turns rules + a lead + its events + "now" into an explained
//! score.
//!
//! This crate must never depend on an AWS SDK, an HTTP framework, a database or a clock:
//! it does no I/O and cannot fail for reasons outside its arguments. Time comes in as an
//! argument.

pub mod alert;
pub mod event;
pub mod identity;
mod index;
pub mod lead;
pub mod normalize;
pub mod points;
pub mod rules;
pub mod score;
pub mod stage;

pub use event::{Event, EventError, EventType};
pub use lead::{AttributeValue, Lead};
pub use points::Points;
pub use rules::{Band, RuleSet, RulesError};
pub use score::{Score, score};
