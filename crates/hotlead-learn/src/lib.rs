//! Learning rule weights from closed deals. Pure: it is given examples and rules and
//! returns a suggestion with its evidence; reading files, storing suggestions and timing
//! belong to the callers.
//!
//! The pipeline: split the labelled leads into training and hold-out parts; (optionally)
//! generate candidate rules from the training part; compute every rule's term for every
//! lead at its decision time (only events before the deal closed); choose few rules with
//! an L1 path cross-validated on the training part (`sparse`) and refit them with an L2
//! logistic regression (`fit`); turn coefficients into whole points on a scorecard scale
//! with ranges from the standard errors; write the suggested rules file; and score the
//! hold-out with the current and the suggested rules, exactly as `hotlead score` would.

pub mod dataset;
pub mod discover;
pub mod fit;
pub mod metrics;
pub mod report;
pub mod rules_out;
pub mod sparse;
pub mod suggest;
pub mod table;
pub mod terms;

use chrono::{DateTime, Utc};
use hotlead_core::{Event, Lead};

pub use suggest::{
    ColdStart, CurrentRules, Evaluation, Hooks, LearnError, LearnOptions, Outcome, Progress, Split,
    Suggestion, WeightRow, learn,
};

/// One labelled lead: its attributes and events, whether the deal was won, and when it was
/// decided (terms are computed as they stood then).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    /// Where it came from (a line of a file), for ordering and messages.
    pub line: u64,
    pub lead: Lead,
    pub events: Vec<Event>,
    pub won: bool,
    pub decided_at: DateTime<Utc>,
    /// When the lead came in, where known (for new leads per week).
    pub created_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests;
