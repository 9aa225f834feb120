//! Follow-up figures: how fast reps act on hot alerts, per territory. Pure: given the
//! follow-up records of a period (see [`crate::ports::FollowUpRecord`]), the rules'
//! deadline and the time now.

use chrono::{DateTime, Utc};
use hotlead_core::stage::Sla;
use serde::Serialize;

use crate::ports::FollowUpRecord;

/// The most follow-up records one figures request reads.
pub const MAX_RECORDS: usize = 20_000;

/// One territory's figures (or all of them together).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub territory: String,
    /// Hot alerts in the period.
    pub alerts: usize,
    /// Alerts a rep acted on (accept, reject, contacted).
    pub answered: usize,
    /// Median time from the alert to the first action, in minutes (answered alerts).
    pub median_minutes_to_first_action: Option<f64>,
    /// The same in business minutes (the rules' business hours), when a deadline is set.
    pub median_business_minutes_to_first_action: Option<f64>,
    /// Answered by the deadline.
    pub within_deadline: usize,
    /// Not answered by the deadline: answered late, or not answered and past it.
    pub breaches: usize,
    /// Breaches that re-alerted (the lead was still hot at the deadline).
    pub realerted: usize,
    /// Not answered, deadline still ahead (or none set).
    pub waiting: usize,
}

/// The figures of a period, per territory and in total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FollowUpFigures {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The deadline in business hours, when the active rules set one.
    pub respond_within_hours: Option<f64>,
    pub territories: Vec<Figures>,
    pub total: Figures,
    /// More records than [`MAX_RECORDS`] fell in the period: the figures cover the first.
    pub truncated: bool,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

fn figures_of(
    territory: &str,
    records: &[&FollowUpRecord],
    sla: Option<&Sla>,
    now: DateTime<Utc>,
) -> Figures {
    let mut minutes = Vec::new();
    let mut business = Vec::new();
    let mut figures = Figures {
        territory: territory.to_string(),
        alerts: records.len(),
        answered: 0,
        median_minutes_to_first_action: None,
        median_business_minutes_to_first_action: None,
        within_deadline: 0,
        breaches: 0,
        realerted: 0,
        waiting: 0,
    };
    for record in records {
        if record.escalated_at.is_some() {
            figures.realerted += 1;
        }
        match (record.first_action_at, record.due_at) {
            (Some(acted), due) => {
                figures.answered += 1;
                minutes.push((acted - record.alerted_at).num_seconds() as f64 / 60.0);
                if let Some(sla) = sla {
                    business.push(
                        sla.business_time(record.alerted_at, acted).num_seconds() as f64 / 60.0,
                    );
                }
                match due {
                    Some(due) if acted > due => figures.breaches += 1,
                    _ => figures.within_deadline += 1,
                }
            }
            (None, Some(due)) if now > due => figures.breaches += 1,
            (None, _) => figures.waiting += 1,
        }
    }
    figures.median_minutes_to_first_action = median(minutes);
    figures.median_business_minutes_to_first_action = median(business);
    figures
}

/// The figures of `records` (alerts made from `since` to before `until`), per territory
/// (by name) and in total, as they stand at `now`.
pub fn figures(
    records: &[FollowUpRecord],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    sla: Option<&Sla>,
    now: DateTime<Utc>,
    truncated: bool,
) -> FollowUpFigures {
    let mut by_territory: std::collections::BTreeMap<&str, Vec<&FollowUpRecord>> =
        std::collections::BTreeMap::new();
    for record in records {
        by_territory
            .entry(&record.territory)
            .or_default()
            .push(record);
    }
    let all: Vec<&FollowUpRecord> = records.iter().collect();
    FollowUpFigures {
        since,
        until,
        respond_within_hours: sla.map(|s| s.within.num_seconds() as f64 / 3600.0),
        territories: by_territory
            .iter()
            .map(|(territory, records)| figures_of(territory, records, sla, now))
            .collect(),
        total: figures_of("(all)", &all, sla, now),
        truncated,
    }
}

/// The figures of alerts made from `since` to before `until`, read from `store`, with the
/// active rules' deadline.
pub async fn load(
    store: &dyn crate::review::Storage,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<FollowUpFigures, crate::ports::StoreError> {
    let mut records = store.follow_ups(since, until, MAX_RECORDS + 1).await?;
    let truncated = records.len() > MAX_RECORDS;
    records.truncate(MAX_RECORDS);
    let sla = store
        .active_rules()
        .await?
        .and_then(|version| hotlead_core::RuleSet::from_toml("active rules", &version.text).ok())
        .and_then(|rules| rules.stages.sla);
    Ok(figures(
        &records,
        since,
        until,
        sla.as_ref(),
        now,
        truncated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(minutes)
    }

    fn record(territory: &str, acted: Option<i64>, escalated: bool) -> FollowUpRecord {
        FollowUpRecord {
            lead_id: format!("L-{territory}-{acted:?}"),
            crossing: 1,
            territory: territory.into(),
            owner: None,
            alerted_at: at(0),
            due_at: Some(at(120)),
            first_action_at: acted.map(at),
            first_action: acted.map(|_| hotlead_core::stage::RepAction::Accept),
            escalated_at: escalated.then(|| at(120)),
            closed_at: None,
        }
    }

    #[test]
    fn figures_count_per_territory_with_the_median_time_to_first_action() {
        let records = vec![
            record("east", Some(30), false),
            record("east", Some(90), false),
            record("east", Some(200), true),
            record("east", None, true),
            record("west", Some(10), false),
            record("west", None, false),
        ];
        let at_100 = figures(&records, at(-10), at(10), None, at(100), false);
        let east = &at_100.territories[0];
        assert_eq!(
            (
                east.alerts,
                east.answered,
                east.within_deadline,
                east.breaches,
                east.realerted,
                east.waiting
            ),
            (4, 3, 2, 1, 2, 1),
            "at minute 100 the unanswered east alert is still within its deadline"
        );
        assert_eq!(east.median_minutes_to_first_action, Some(90.0));
        let west = &at_100.territories[1];
        assert_eq!((west.alerts, west.answered, west.waiting), (2, 1, 1));
        let at_300 = figures(&records, at(-10), at(10), None, at(300), false);
        assert_eq!(at_300.territories[0].breaches, 2);
        assert_eq!(at_300.territories[1].breaches, 1);
        assert_eq!(at_300.total.alerts, 6);
        assert_eq!(at_300.total.breaches, 3);
        assert_eq!(at_300.total.median_minutes_to_first_action, Some(60.0));
        assert!(
            figures(&[], at(0), at(1), None, at(2), false)
                .total
                .median_minutes_to_first_action
                .is_none()
        );
    }
}
