//! Lead stages: the steps marketing and sales agreed a lead goes through (nurture, MQL,
//! SQL, recycled ...), who is responsible at each, and how a lead enters one: by the
//! rules (an *automatic* stage: a band, fit points and a condition on the lead), or by a
//! rep's action on the lead page (accept, reject with a reason, contacted).
//!
//! Pure: given the stages, the lead, its score and the stage it is in, these functions
//! say which stage it moves to. Storing the move and its history is the stores' job.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lead::Lead;
use crate::points::Points;
use crate::rules::{Axis, Band, Condition};
use crate::score::{RulesVersion, Score};

/// What a rep does from the lead page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepAction {
    /// The rep takes the lead: it is worth working (e.g. it becomes an SQL).
    Accept,
    /// The rep turns the lead down, with one of the configured reasons.
    Reject,
    /// The rep reached the lead (a call, a mail answered).
    Contacted,
}

impl RepAction {
    pub const ALL: [RepAction; 3] = [RepAction::Accept, RepAction::Reject, RepAction::Contacted];

    pub fn as_str(self) -> &'static str {
        match self {
            RepAction::Accept => "accept",
            RepAction::Reject => "reject",
            RepAction::Contacted => "contacted",
        }
    }

    pub fn parse(text: &str) -> Option<RepAction> {
        RepAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl std::fmt::Display for RepAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a lead enters a stage.
#[derive(Debug, Clone)]
pub enum Entry {
    /// By the rules, on every rescore: the lead's band is at least `min_band`, its fit
    /// points at least `min_fit`, and `when` holds (each when given; none: always).
    Automatic {
        min_band: Option<Band>,
        min_fit: Option<Points>,
        when: Option<Condition>,
    },
    /// By a rep's action.
    Action(RepAction),
}

/// One stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: String,
    /// What people call it ("MQL", "ナーチャリング").
    pub label: String,
    /// The team or person responsible while a lead is in it.
    pub owner: Option<String>,
    pub entry: Entry,
}

impl Stage {
    pub fn is_automatic(&self) -> bool {
        matches!(self.entry, Entry::Automatic { .. })
    }

    /// Whether the lead, scored `score`, meets this automatic stage's conditions (an
    /// action stage: never).
    pub fn holds(&self, lead: &Lead, score: &Score) -> bool {
        let Entry::Automatic {
            min_band,
            min_fit,
            when,
        } = &self.entry
        else {
            return false;
        };
        min_band.is_none_or(|band| score.band >= band)
            && min_fit.is_none_or(|min| fit_points(score) >= min)
            && when.as_ref().is_none_or(|c| c.holds(lead))
    }
}

/// A score's fit points: the sum of its fit groups.
pub fn fit_points(score: &Score) -> Points {
    score
        .groups
        .iter()
        .filter(|g| g.axis == Axis::Fit)
        .fold(Points::ZERO, |sum, g| sum + g.points)
}

/// The stages of a rule set, in funnel order, the reasons a rep may give to reject, and
/// the follow-up deadline.
#[derive(Debug, Clone, Default)]
pub struct Stages {
    pub stages: Vec<Stage>,
    pub reject_reasons: Vec<String>,
    pub sla: Option<Sla>,
}

/// The follow-up agreement: a rep's first action within `within` of business time after
/// a hot lead's alert; else one re-alert, to `escalate_to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub within: Duration,
    /// Business hours, local time: from `opens` to `closes` (later the same day).
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    /// Business days, Monday first.
    pub days: [bool; 7],
    /// The rules' time zone.
    pub offset: FixedOffset,
    pub escalate_to: Option<String>,
}

/// How many days the business calendar is walked at most (a deadline further away than
/// this is capped: a year of closed days cannot make it loop).
const MAX_CALENDAR_DAYS: i64 = 400;

impl Sla {
    /// The business hours of the local day `date` that fall at or after `from`, as UTC.
    fn open_part(
        &self,
        date: chrono::NaiveDate,
        from: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days[date.weekday().num_days_from_monday() as usize] {
            return None;
        }
        let at = |time: NaiveTime| {
            date.and_time(time)
                .and_local_timezone(self.offset)
                .single()
                .map(|t| t.with_timezone(&Utc))
        };
        let (opens, closes) = (at(self.opens)?, at(self.closes)?);
        let start = opens.max(from);
        (start < closes).then_some((start, closes))
    }

    /// When `within` of business time after `from` has passed.
    pub fn deadline(&self, from: DateTime<Utc>) -> DateTime<Utc> {
        let mut left = self.within;
        let mut date = from.with_timezone(&self.offset).date_naive();
        for _ in 0..MAX_CALENDAR_DAYS {
            if let Some((start, end)) = self.open_part(date, from) {
                if end - start >= left {
                    return start + left;
                }
                left -= end - start;
            }
            date = date.succ_opt().unwrap_or(date);
        }
        from + Duration::days(MAX_CALENDAR_DAYS)
    }

    /// The business time between `from` and `to` (zero when `to` is earlier).
    pub fn business_time(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        let mut date = from.with_timezone(&self.offset).date_naive();
        for _ in 0..MAX_CALENDAR_DAYS {
            if let Some((start, end)) = self.open_part(date, from) {
                if start >= to {
                    break;
                }
                total += end.min(to) - start;
            }
            if date
                .and_hms_opt(0, 0, 0)
                .and_then(|d| d.and_local_timezone(self.offset).single())
                .is_some_and(|d| d.with_timezone(&Utc) >= to)
            {
                break;
            }
            date = date.succ_opt().unwrap_or(date);
        }
        total
    }
}

/// The stage a lead is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadStage {
    pub id: String,
    pub since: DateTime<Utc>,
    /// Entered by a rep's action (the rules do not move it on), else by the rules.
    pub by_rep: bool,
}

impl Stages {
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// The automatic stage the lead belongs in: the furthest along the funnel (the last
    /// listed) whose conditions hold. `None` when none holds, or the lead scores nothing
    /// (internal).
    pub fn automatic(&self, lead: &Lead, score: &Score) -> Option<&Stage> {
        if score.excluded.is_some() {
            return None;
        }
        self.stages.iter().rev().find(|s| s.holds(lead, score))
    }

    /// Where the rules move a lead in `current` after a rescore, when they move it: a
    /// stage a rep's action put it in stays until a rep acts again (unless these rules
    /// no longer have it); otherwise the lead follows [`Stages::automatic`].
    pub fn after_rescore(
        &self,
        current: Option<&LeadStage>,
        lead: &Lead,
        score: &Score,
    ) -> Option<&Stage> {
        if let Some(current) = current
            && current.by_rep
            && self.get(&current.id).is_some()
        {
            return None;
        }
        let next = self.automatic(lead, score)?;
        (current.map(|c| c.id.as_str()) != Some(next.id.as_str())).then_some(next)
    }

    /// The stage a rep's action moves a lead to, when one is entered by it.
    pub fn entered_by(&self, action: RepAction) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| matches!(s.entry, Entry::Action(a) if a == action))
    }

    /// Whether a rep may take `action`: rejecting needs the configured reasons.
    pub fn offers(&self, action: RepAction) -> bool {
        action != RepAction::Reject || !self.reject_reasons.is_empty()
    }

    /// A stage's label, or its id when these rules no longer have it.
    pub fn label<'a>(&'a self, id: &'a str) -> &'a str {
        self.get(id).map_or(id, |s| s.label.as_str())
    }
}

/// One change in a lead's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The band changed (the first score included: `from` is then absent).
    Band {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Band>,
        to: Band,
        score: Points,
        rules: RulesVersion,
    },
    /// The stage changed.
    Stage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        to: String,
    },
    /// A rep acted.
    Action {
        action: RepAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

    const RULES: &str = r#"
name = "t"
version = 1
[bands]
hot = 80
warm = 40
[groups.fit]
axis = "fit"
[groups.engagement]
axis = "engagement"
[[rules]]
id = "big"
group = "fit"
points = 30
when = { attribute = "employees", gte = 1000 }
[[rules]]
id = "pricing"
group = "engagement"
points = 20
count = "every"
event = { type = "page", path = "/pricing" }
[follow_up]
reject_reasons = ["no budget", "competitor"]
[[stages]]
id = "nurture"
[[stages]]
id = "mql"
label = "MQL"
owner = "inside-sales"
min_band = "warm"
min_fit = 30
[[stages]]
id = "sql"
on = "accept"
owner = "sales"
[[stages]]
id = "recycled"
on = "reject"
"#;

    fn scored(employees: &str, pricing_views: usize) -> (RuleSet, Lead, Score) {
        let rules = RuleSet::from_toml("t.toml", RULES).unwrap();
        let lead = Lead::from_raw("L-1", [("employees", employees)]);
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let events: Vec<_> = (0..pricing_views)
            .map(|i| {
                crate::Event::from_segment(&serde_json::json!({
                    "type": "page", "messageId": format!("m{i}"), "userId": "L-1",
                    "timestamp": "2026-11-30T00:00:00Z", "context": {"page": {"path": "/pricing"}}
                }))
                .unwrap()
            })
            .collect();
        let score = crate::score::score(&rules, &lead, &events, at, None);
        (rules, lead, score)
    }

    fn stage(id: &str, by_rep: bool) -> LeadStage {
        LeadStage {
            id: id.into(),
            since: DateTime::UNIX_EPOCH,
            by_rep,
        }
    }

    #[test]
    fn a_lead_is_in_the_furthest_automatic_stage_it_meets() {
        let (rules, lead, score) = scored("5000", 1);
        assert_eq!(score.band, Band::Warm);
        let stages = &rules.stages;
        assert_eq!(stages.automatic(&lead, &score).unwrap().id, "mql");
        assert_eq!(stages.after_rescore(None, &lead, &score).unwrap().id, "mql");
        assert!(
            stages
                .after_rescore(Some(&stage("mql", false)), &lead, &score)
                .is_none(),
            "no move to the stage it is in"
        );
        let (_, small, small_score) = scored("50", 2);
        assert_eq!(small_score.band, Band::Warm);
        assert_eq!(
            stages.automatic(&small, &small_score).unwrap().id,
            "nurture",
            "warm without the fit is not an MQL"
        );
        assert_eq!(
            stages
                .after_rescore(Some(&stage("mql", false)), &small, &small_score)
                .unwrap()
                .id,
            "nurture",
            "an automatic stage follows the rules both ways"
        );
    }

    #[test]
    fn a_stage_a_rep_chose_stays_until_a_rep_acts_unless_the_rules_dropped_it() {
        let (rules, lead, score) = scored("50", 0);
        let stages = &rules.stages;
        assert!(
            stages
                .after_rescore(Some(&stage("recycled", true)), &lead, &score)
                .is_none()
        );
        assert_eq!(
            stages
                .after_rescore(Some(&stage("gone", true)), &lead, &score)
                .unwrap()
                .id,
            "nurture"
        );
        assert_eq!(stages.entered_by(RepAction::Accept).unwrap().id, "sql");
        assert_eq!(stages.entered_by(RepAction::Reject).unwrap().id, "recycled");
        assert!(stages.entered_by(RepAction::Contacted).is_none());
        assert!(stages.offers(RepAction::Reject));
        assert!(!Stages::default().offers(RepAction::Reject));
        assert!(Stages::default().offers(RepAction::Accept));
    }

    #[test]
    fn rules_check_names_every_stage_problem_with_its_line_and_field() {
        let bad = r#"
name = "t"
version = 1
[bands]
hot = 80
warm = 40
[groups.fit]
axis = "fit"
[[stages]]
id = "mql"
[[stages]]
id = "mql"
[[stages]]
id = "sql"
on = "accept"
min_band = "warm"
[[stages]]
id = "won"
on = "accept"
[[stages]]
id = "recycled"
on = "reject"
[[stages]]
id = "x"
owner = ""
when = { attribute = "title", matches = "(" }
"#;
        let error = RuleSet::from_toml("bad.toml", bad).unwrap_err();
        let found: Vec<(usize, &str)> = error
            .diagnostics
            .iter()
            .map(|d| (d.line, d.field.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (12, "stages[1].id"),
                (16, "stages[2].min_band"),
                (19, "stages[3].on"),
                (22, "stages[4].on"),
                (25, "stages[5].owner"),
                (26, "stages[5].when.matches"),
            ],
            "{error}"
        );
        assert!(error.to_string().contains("duplicate stage id \"mql\""));
        assert!(error.to_string().contains("reject_reasons"));
        let reasons = "name = \"t\"\nversion = 1\n[bands]\nhot = 80\nwarm = 40\n[groups.fit]\naxis = \"fit\"\n[follow_up]\nreject_reasons = [\"a\", \"a\", \" \"]\n";
        let error = RuleSet::from_toml("r.toml", reasons).unwrap_err();
        let fields: Vec<&str> = error.diagnostics.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["follow_up.reject_reasons[1]", "follow_up.reject_reasons[2]"]
        );
    }

    fn sla() -> Sla {
        Sla {
            within: Duration::hours(2),
            opens: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            closes: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            days: [true, true, true, true, true, false, false],
            offset: FixedOffset::east_opt(9 * 3600).unwrap(),
            escalate_to: None,
        }
    }

    fn jst(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("{text}+09:00"))
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_deadline_counts_business_hours_only() {
        let sla = sla();
        // 2026-12-04 is a Friday.
        for (from, due) in [
            ("2026-12-04T10:00:00", "2026-12-04T12:00:00"),
            ("2026-12-04T17:00:00", "2026-12-07T10:00:00"),
            ("2026-12-04T20:00:00", "2026-12-07T11:00:00"),
            ("2026-12-05T12:00:00", "2026-12-07T11:00:00"),
            ("2026-12-07T07:30:00", "2026-12-07T11:00:00"),
            ("2026-12-07T16:00:00", "2026-12-07T18:00:00"),
        ] {
            assert_eq!(sla.deadline(jst(from)), jst(due), "from {from}");
            assert_eq!(
                sla.business_time(jst(from), jst(due)),
                Duration::hours(2),
                "from {from}"
            );
        }
        assert_eq!(
            sla.business_time(jst("2026-12-04T17:30:00"), jst("2026-12-07T09:15:00")),
            Duration::minutes(45)
        );
        assert_eq!(
            sla.business_time(jst("2026-12-07T12:00:00"), jst("2026-12-07T11:00:00")),
            Duration::zero()
        );
        let closed = Sla {
            days: [false; 7],
            ..sla
        };
        assert_eq!(
            closed.deadline(jst("2026-12-04T10:00:00")),
            jst("2026-12-04T10:00:00") + Duration::days(MAX_CALENDAR_DAYS)
        );
    }

    #[test]
    fn a_history_change_reads_back_as_written() {
        let change = Change::Action {
            action: RepAction::Reject,
            reason: Some("competitor".into()),
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"action","action":"reject","reason":"competitor"}"#
        );
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
        assert_eq!(RepAction::parse("contacted"), Some(RepAction::Contacted));
        assert_eq!(RepAction::parse("delete"), None);
    }
}
