//! The scoring function: rules + a lead + its events + "now" -> an explained score.
//!
//! Pure and deterministic: the same arguments give the same score and the same
//! explanation, whatever the order of the events.

use std::cmp::Reverse;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::index::{Bits, FastMap, Index, fast_map};
use crate::lead::Lead;
use crate::points::Points;
use crate::rules::{Axis, Band, Behaviour, Count, Decay, Plan, Rule, RuleKind, RuleSet};

/// How many message ids an event contribution lists (the most recent ones).
pub const MAX_EVIDENCE_EVENTS: usize = 20;

/// Which rules made a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesVersion {
    pub name: String,
    pub version: u32,
}

/// An explained score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub lead_id: String,
    pub rules: RulesVersion,
    /// The "now" the score was computed for.
    pub at: DateTime<Utc>,
    /// Total: exactly the sum of `contributions`.
    pub score: Points,
    pub band: Band,
    /// Fit letter and engagement digit, e.g. `A1`.
    pub grade: String,
    /// Per-group subtotals, after the group caps.
    pub groups: Vec<GroupTotal>,
    /// Why: every matched rule's points with its evidence, largest first, then any
    /// group-cap adjustments.
    pub contributions: Vec<Contribution>,
    /// A rule that held the band above or below what the points alone give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band_limit: Option<BandLimit>,
    /// Instant alerts raised by recent high-intent actions.
    pub alerts: Vec<AlertTrigger>,
    /// What happened to the events given.
    pub events: EventCounts,
    /// Why the lead scores nothing at all, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// The last instant alert raised per alert rule, and the actions held back since
    /// (see [`crate::alert::throttle`]). Empty from [`score`]; the scorer carries it from
    /// one score to the next.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub instant: std::collections::BTreeMap<String, crate::alert::LastInstant>,
}

/// A group's subtotal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupTotal {
    pub group: String,
    pub label: String,
    pub axis: Axis,
    pub points: Points,
    /// The sum before the group's cap or floor, when that changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncapped: Option<Points>,
}

/// One line of the explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The rule id, or `cap:<group>` for a group-cap adjustment.
    pub rule: String,
    pub label: String,
    pub group: String,
    pub points: Points,
    /// Decay or caps that changed the points, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub evidence: Evidence,
}

/// What a contribution rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// The attribute values the rule looked at (`raw`/`value` absent when missing).
    Attributes { attributes: Vec<AttributeEvidence> },
    /// The events that matched: how many, when, and the most recent message ids.
    Events {
        count: usize,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
        message_ids: Vec<std::sync::Arc<str>>,
    },
    /// A group's cap or floor.
    GroupCap { uncapped: Points, limit: Points },
}

/// One attribute value in the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeEvidence {
    pub attribute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A rule that capped or raised the band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandLimit {
    pub rule: String,
    pub label: String,
    /// The band the points alone would give.
    pub from: Band,
    pub to: Band,
}

/// An instant alert raised by one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertTrigger {
    pub alert: String,
    pub label: String,
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
}

/// Counts of the events given to the scorer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub received: usize,
    /// Used by the rules: all the others were dropped for one of the reasons below.
    pub scored: usize,
    /// Repeats of a message id already seen.
    pub duplicates: usize,
    pub bots: usize,
    pub internal_network: usize,
    /// Later than the scoring time.
    pub future: usize,
}

/// Scores `lead` with `rules` at time `now`, given its `events` and the band it had
/// before (for hysteresis; `None` for a lead never scored).
pub fn score(
    rules: &RuleSet,
    lead: &Lead,
    events: &[Event],
    now: DateTime<Utc>,
    previous_band: Option<Band>,
) -> Score {
    let (events, counts) = prepare(rules, events, now);
    let mut result = Score {
        lead_id: lead.id.clone(),
        rules: RulesVersion {
            name: rules.name.clone(),
            version: rules.version,
        },
        at: now,
        score: Points::ZERO,
        band: Band::Cold,
        grade: rules.grade.grade_for(Points::ZERO, Points::ZERO),
        groups: Vec::new(),
        contributions: Vec::new(),
        band_limit: None,
        alerts: Vec::new(),
        events: counts,
        excluded: None,
        instant: Default::default(),
    };
    if let Some(excluded) = excluded(rules, lead) {
        result.excluded = Some(excluded);
        result.grade = rules.grade.lowest();
        return result;
    }

    // Rule contributions, keyed by rule index for a stable order.
    let index = index(rules, &events);
    let mut matched = contributions(rules, lead, &events, &index);

    // Group subtotals with caps and floors; an adjustment line keeps the total equal to
    // the sum of the contributions.
    let mut adjustments = Vec::new();
    for group in &rules.groups {
        let uncapped: Points = matched
            .iter()
            .filter(|(_, c)| c.group == group.id)
            .map(|(_, c)| c.points)
            .sum();
        let mut points = uncapped;
        if let Some(max) = group.max {
            points = points.min(max);
        }
        if let Some(min) = group.min {
            points = points.max(min);
        }
        if points != uncapped {
            let limit = if points < uncapped {
                group.max
            } else {
                group.min
            }
            .unwrap_or(points);
            adjustments.push(Contribution {
                rule: format!("cap:{}", group.id),
                label: format!("{} limited to {limit}", group.label),
                group: group.id.clone(),
                points: points - uncapped,
                note: None,
                evidence: Evidence::GroupCap { uncapped, limit },
            });
        }
        result.groups.push(GroupTotal {
            group: group.id.clone(),
            label: group.label.clone(),
            axis: group.axis,
            points,
            uncapped: (points != uncapped).then_some(uncapped),
        });
    }
    let axis_total = |axis: Axis| -> Points {
        result
            .groups
            .iter()
            .filter(|g| g.axis == axis)
            .map(|g| g.points)
            .sum()
    };
    result.grade = rules
        .grade
        .grade_for(axis_total(Axis::Fit), axis_total(Axis::Engagement));
    result.score = result.groups.iter().map(|g| g.points).sum();

    // Band, then the rules that hold it: min_band raises, max_band ("keeps it cold") wins.
    let by_points = rules.bands.band_for(result.score, previous_band);
    let mut band = by_points;
    let mut limit: Option<&Rule> = None;
    let matched_rules = || matched.iter().map(|(i, _)| &rules.rules[*i]);
    if let Some(rule) = matched_rules()
        .filter(|r| r.min_band.is_some_and(|b| b > band))
        .max_by_key(|r| r.min_band)
    {
        band = rule.min_band.unwrap_or(band);
        limit = Some(rule);
    }
    if let Some(rule) = matched_rules()
        .filter(|r| r.max_band.is_some_and(|b| b < band))
        .min_by_key(|r| r.max_band)
    {
        band = rule.max_band.unwrap_or(band);
        limit = Some(rule);
    }
    result.band = band;
    result.band_limit = limit.filter(|_| band != by_points).map(|rule| BandLimit {
        rule: rule.id.clone(),
        label: rule.label.clone(),
        from: by_points,
        to: band,
    });

    matched.sort_by_key(|(index, c)| (Reverse(c.points.hundredths().abs()), *index));
    result.contributions = matched
        .into_iter()
        .map(|(_, c)| c)
        .chain(adjustments)
        .collect();
    result.alerts = alerts(rules, lead, &events, &index);
    result
}

/// Why a lead scores nothing at all (an internal e-mail domain), if it does not.
fn excluded(rules: &RuleSet, lead: &Lead) -> Option<String> {
    let domain = lead.get("email_domain")?;
    rules
        .filters
        .is_internal_email(&domain.value)
        .then(|| format!("internal e-mail domain {}", domain.value))
}

/// Each rule's term at `now`, in rule order, as a model sees it: 1 or 0 for an attribute
/// rule; for a behaviour rule, its points over the rule's points, which is the matched
/// count after caps and decay (1 or 0 for a rule of 0 points). Events after `now` are left
/// out, as in [`score`], so terms at a deal's close date use only what came before it.
pub fn rule_terms(rules: &RuleSet, lead: &Lead, events: &[Event], now: DateTime<Utc>) -> Vec<f64> {
    let mut terms = vec![0.0; rules.rules.len()];
    if excluded(rules, lead).is_some() {
        return terms;
    }
    // Attribute rules need no events and no explanation; behaviour rules are scored as
    // `score` scores them.
    let mut behaviour = false;
    for (term, rule) in terms.iter_mut().zip(&rules.rules) {
        match &rule.kind {
            RuleKind::Attribute(condition) => *term = f64::from(u8::from(condition.holds(lead))),
            RuleKind::Behaviour(_) => behaviour = true,
        }
    }
    if !behaviour {
        return terms;
    }
    let (events, _) = prepare(rules, events, now);
    let index = index(rules, &events);
    let mut decays = DecayMemo::default();
    let mut behaviours = 0;
    for (i, rule) in rules.rules.iter().enumerate() {
        let RuleKind::Behaviour(b) = &rule.kind else {
            continue;
        };
        behaviours += 1;
        let taken = index.events(behaviours - 1);
        let Some(contribution) = behaviour_points(rules, rule, b, &events, taken, &mut decays)
        else {
            continue;
        };
        let points = rule.points.hundredths();
        terms[i] = if points == 0 {
            1.0
        } else {
            contribution.points.hundredths() as f64 / points as f64
        };
    }
    terms
}

/// Every rule's contribution, if it has one, with the rule's index.
fn contributions(
    rules: &RuleSet,
    lead: &Lead,
    events: &[Seen<'_>],
    index: &Index,
) -> Vec<(usize, Contribution)> {
    let mut matched = Vec::new();
    let mut behaviours = 0;
    let mut decays = DecayMemo::default();
    for (i, rule) in rules.rules.iter().enumerate() {
        let contribution = match &rule.kind {
            RuleKind::Attribute(condition) => attribute_points(rules, rule, condition, lead),
            RuleKind::Behaviour(behaviour) => {
                behaviours += 1;
                let taken = index.events(behaviours - 1);
                behaviour_points(rules, rule, behaviour, events, taken, &mut decays)
            }
        };
        if let Some(contribution) = contribution {
            matched.push((i, contribution));
        }
    }
    matched
}

fn attribute_points(
    rules: &RuleSet,
    rule: &Rule,
    condition: &crate::rules::Condition,
    lead: &Lead,
) -> Option<Contribution> {
    let mut looked_at = Vec::new();
    condition
        .evaluate(lead, &mut looked_at)
        .then(|| Contribution {
            rule: rule.id.clone(),
            label: rule.label.clone(),
            group: rules.group(rule.group).id.clone(),
            points: rule.points,
            note: None,
            evidence: Evidence::Attributes {
                attributes: looked_at
                    .into_iter()
                    .map(|name| {
                        let value = lead.get(&name);
                        AttributeEvidence {
                            raw: value.map(|v| v.raw.clone()),
                            value: value.map(|v| v.value.clone()),
                            attribute: name,
                        }
                    })
                    .collect(),
            },
        })
}

/// The events each behaviour rule, then each alert, takes. The matchers are numbered in
/// that order, as in [`Plan`].
fn index(rules: &RuleSet, events: &[Seen<'_>]) -> Index {
    let seen = events.iter().map(|e| e.event);
    if rules.plan.fits(rules.rules.len(), rules.alerts.len()) {
        return Index::new(&rules.plan, seen);
    }
    // A rule set changed after it was compiled: plan it again, or match event by event.
    match Plan::new(&rules.rules, &rules.alerts) {
        Ok(plan) => Index::new(&plan, seen),
        Err(_) => Index::each(&matchers(rules), seen),
    }
}

/// The event matchers of the behaviour rules, then of the alerts.
fn matchers(rules: &RuleSet) -> Vec<&crate::rules::EventMatcher> {
    rules
        .rules
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::Behaviour(b) => Some(&b.matcher),
            RuleKind::Attribute(_) => None,
        })
        .chain(rules.alerts.iter().map(|a| &a.matcher))
        .collect()
}

/// An event that passed the filters, with its age at the scoring time and the day it
/// fell on in the rules' time zone (days since 1970-01-01 there).
#[derive(Debug, Clone, Copy)]
struct Seen<'e> {
    event: &'e Event,
    age: chrono::Duration,
    day: i64,
}

/// Drops future events, repeats of a message id, bots and internal traffic; returns the
/// rest in time order. Among events sharing a message id, the same one is kept whatever
/// their order.
fn prepare<'e>(
    rules: &RuleSet,
    events: &'e [Event],
    now: DateTime<Utc>,
) -> (Vec<Seen<'e>>, EventCounts) {
    let mut counts = EventCounts {
        received: events.len(),
        ..EventCounts::default()
    };
    let mut by_id: FastMap<&str, &Event> = fast_map(events.len());
    for event in events {
        match by_id.get_mut(&*event.message_id) {
            None => {
                by_id.insert(&event.message_id, event);
            }
            Some(kept) => {
                counts.duplicates += 1;
                if canonically_before(event, kept) {
                    *kept = event;
                }
            }
        }
    }
    // Most events of a lead come from a few browsers: the last few user agents seen are
    // remembered with their verdict (comparing a user agent is cheaper than hashing it).
    let mut agents: Vec<(&str, bool)> = Vec::with_capacity(AGENTS_REMEMBERED);
    // Sorted on the time as two integers, read once per event; ties (rare) by message id.
    let mut kept: Vec<((i64, u32), &Event)> = Vec::with_capacity(by_id.len());
    for event in by_id.into_values() {
        if event.timestamp > now {
            counts.future += 1;
            continue;
        }
        let bot = event.user_agent.as_deref().is_some_and(|agent| {
            if let Some(&(_, bot)) = agents.iter().find(|(a, _)| *a == agent) {
                return bot;
            }
            let bot = rules.filters.is_bot(agent);
            if agents.len() == AGENTS_REMEMBERED {
                agents.remove(0);
            }
            agents.push((agent, bot));
            bot
        });
        if bot {
            counts.bots += 1;
        } else if rules.filters.is_internal(event) {
            counts.internal_network += 1;
        } else {
            let at = &event.timestamp;
            kept.push(((at.timestamp(), at.timestamp_subsec_nanos()), event));
        }
    }
    kept.sort_unstable_by(|(a_at, a), (b_at, b)| {
        a_at.cmp(b_at).then_with(|| a.message_id.cmp(&b.message_id))
    });
    counts.scored = kept.len();
    let offset = i64::from(rules.utc_offset.local_minus_utc());
    let seen = kept
        .into_iter()
        .map(|((seconds, nanos), event)| Seen {
            event,
            age: age(now, (seconds, nanos), event),
            day: (seconds + offset).div_euclid(86_400),
        })
        .collect();
    (seen, counts)
}

/// `now - event.timestamp`, from the time as two integers (chrono's subtraction, which
/// goes through dates, only for a leap second).
fn age(now: DateTime<Utc>, (seconds, nanos): (i64, u32), event: &Event) -> chrono::Duration {
    let now_nanos = now.timestamp_subsec_nanos();
    if nanos >= 1_000_000_000 || now_nanos >= 1_000_000_000 {
        return now - event.timestamp;
    }
    chrono::Duration::seconds(now.timestamp() - seconds)
        + chrono::Duration::nanoseconds(i64::from(now_nanos) - i64::from(nanos))
}

/// How many distinct user agents [`prepare`] remembers.
const AGENTS_REMEMBERED: usize = 4;

/// A total order on events, used only to pick one among events sharing a message id: the
/// earlier, then the smaller JSON text (written out only for a tie in time).
fn canonically_before(event: &Event, other: &Event) -> bool {
    match event.timestamp.cmp(&other.timestamp) {
        std::cmp::Ordering::Equal => {
            let json = |e: &Event| serde_json::to_string(e).unwrap_or_default();
            json(event) < json(other)
        }
        order => order.is_lt(),
    }
}

/// Half-life factors by event position, worked out once per score for each half-life
/// (the same events decay alike under every rule that takes them).
#[derive(Default)]
struct DecayMemo {
    half_lives: Vec<(u64, Vec<f64>)>,
}

impl DecayMemo {
    fn factor(
        &mut self,
        decay: Decay,
        points: Points,
        events: &[Seen<'_>],
        position: usize,
    ) -> f64 {
        let Decay::HalfLife { days } = decay else {
            return decay.factor(points, events[position].age);
        };
        if points.is_negative() {
            return 1.0;
        }
        let key = days.to_bits();
        let slot = match self.half_lives.iter().position(|(k, _)| *k == key) {
            Some(slot) => slot,
            None => {
                self.half_lives.push((key, vec![f64::NAN; events.len()]));
                self.half_lives.len() - 1
            }
        };
        let factors = &mut self.half_lives[slot].1;
        if factors[position].is_nan() {
            factors[position] = decay.factor(points, events[position].age);
        }
        factors[position]
    }
}

/// The first position whose event a behaviour (or an alert's window) can still take:
/// events are in time order, so the ages fall and the window and an expiry cut a prefix.
fn first_in_window(
    events: &[Seen<'_>],
    within: Option<chrono::Duration>,
    decay: Decay,
    points: Points,
) -> usize {
    events.partition_point(|e| {
        within.is_some_and(|w| e.age > w)
            || matches!(decay, Decay::Expires { .. }) && decay.factor(points, e.age) <= 0.0
    })
}

fn behaviour_points(
    rules: &RuleSet,
    rule: &Rule,
    behaviour: &Behaviour,
    events: &[Seen<'_>],
    taken: Bits<'_>,
    decays: &mut DecayMemo,
) -> Option<Contribution> {
    let start = first_in_window(events, behaviour.within, behaviour.decay, rule.points);
    let count = taken.count_from(start);
    let first = &events[taken.first_from(start)?];
    let last = &events[taken.last_from(start, 1).next()?];
    let mut notes = Vec::new();
    let points = match behaviour.count {
        Count::Once { at_least } => {
            if count < at_least as usize {
                return None;
            }
            let factor = behaviour.decay.factor(rule.points, last.age);
            let points = rule.points.scaled(factor);
            if points != rule.points {
                notes.push(format!(
                    "{} decayed from {}, last {}",
                    decay_words(behaviour.decay),
                    rule.points,
                    age_words(last.age)
                ));
            }
            points
        }
        Count::Every => {
            let mut total = Points::ZERO;
            let mut undecayed = Points::ZERO;
            let mut day: Option<(i64, Points)> = None;
            let mut daily_capped = false;
            taken.each_from(start, |position| {
                let event = &events[position];
                let mut award = rule.points;
                if let Some(cap) = behaviour.daily_cap {
                    let so_far = match day {
                        Some((d, sum)) if d == event.day => sum,
                        _ => Points::ZERO,
                    };
                    let room = cap - Points::from_hundredths(so_far.hundredths().abs());
                    if Points::from_hundredths(award.hundredths().abs()) > room {
                        daily_capped = true;
                        let magnitude = room.max(Points::ZERO).hundredths();
                        award = Points::from_hundredths(magnitude * award.hundredths().signum());
                    }
                    day = Some((
                        event.day,
                        so_far + Points::from_hundredths(award.hundredths().abs()),
                    ));
                }
                undecayed += award;
                total += award.scaled(decays.factor(behaviour.decay, award, events, position));
            });
            if daily_capped {
                notes.push(format!(
                    "at most {} a day",
                    behaviour.daily_cap.unwrap_or_default()
                ));
            }
            if total != undecayed {
                notes.push(format!(
                    "{} decayed from {undecayed}",
                    decay_words(behaviour.decay)
                ));
            }
            if let Some(cap) = behaviour.cap
                && total.hundredths().abs() > cap.hundredths()
            {
                notes.push(format!("capped at {cap} from {total}"));
                total = Points::from_hundredths(cap.hundredths() * total.hundredths().signum());
            }
            total
        }
    };
    let recent: Vec<std::sync::Arc<str>> = taken
        .last_from(start, MAX_EVIDENCE_EVENTS)
        .map(|position| events[position].event.message_id.clone())
        .collect();
    Some(Contribution {
        rule: rule.id.clone(),
        label: rule.label.clone(),
        group: rules.group(rule.group).id.clone(),
        points,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        evidence: Evidence::Events {
            count,
            first: first.event.timestamp,
            last: last.event.timestamp,
            message_ids: recent,
        },
    })
}

fn decay_words(decay: Decay) -> String {
    match decay {
        Decay::HalfLife { days } => format!("half-life {days} days:"),
        Decay::Expires { days } => format!("expiry {days} days:"),
        Decay::None => String::new(),
    }
}

fn age_words(age: chrono::Duration) -> String {
    match age.num_days() {
        0 => "today".to_string(),
        1 => "1 day ago".to_string(),
        n => format!("{n} days ago"),
    }
}

fn alerts(rules: &RuleSet, lead: &Lead, events: &[Seen<'_>], index: &Index) -> Vec<AlertTrigger> {
    let behaviours = rules
        .rules
        .iter()
        .filter(|r| matches!(r.kind, RuleKind::Behaviour(_)))
        .count();
    let mut triggers = Vec::new();
    for (a, alert) in rules.alerts.iter().enumerate() {
        if let Some(when) = &alert.when
            && !when.evaluate(lead, &mut Vec::new())
        {
            continue;
        }
        let start = events.partition_point(|e| e.age > alert.within);
        index.events(behaviours + a).each_from(start, |position| {
            let event = events[position].event;
            triggers.push(AlertTrigger {
                alert: alert.id.clone(),
                label: alert.label.clone(),
                message_id: event.message_id.to_string(),
                timestamp: event.timestamp,
            });
        });
    }
    triggers.sort_by(|a, b| {
        (a.timestamp, &a.message_id, &a.alert).cmp(&(b.timestamp, &b.message_id, &b.alert))
    });
    triggers
}

impl Contribution {
    /// One line a rep can read: `+30  従業員1,000名以上  (employees: １，０００名)`. Dates
    /// are shown at `offset` (the rules' `utc_offset`).
    pub fn describe(&self, offset: FixedOffset) -> String {
        let sign = if self.points.is_negative() { "" } else { "+" };
        let detail = match &self.evidence {
            Evidence::Attributes { attributes } => attributes
                .iter()
                .map(|a| {
                    format!(
                        "{}: {}",
                        a.attribute,
                        a.raw.as_deref().unwrap_or("(missing)")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            Evidence::Events { count, last, .. } => {
                let times = if *count == 1 {
                    "1 event".to_string()
                } else {
                    format!("{count} events")
                };
                format!(
                    "{times}, last {}",
                    last.with_timezone(&offset).format("%Y-%m-%d")
                )
            }
            Evidence::GroupCap { uncapped, .. } => format!("{uncapped} before the cap"),
        };
        let note = self
            .note
            .as_deref()
            .map(|n| format!("; {n}"))
            .unwrap_or_default();
        format!("{sign}{}  {}  ({detail}{note})", self.points, self.label)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(body: &str) -> RuleSet {
        let source = format!(
            "name = \"t\"\nversion = 7\nutc_offset = \"+09:00\"\n[bands]\nhot = 50\nhot_exit = 40\nwarm = 20\n\
             [groups.fit]\naxis = \"fit\"\n[groups.engagement]\naxis = \"engagement\"\n{body}"
        );
        RuleSet::from_toml("t.toml", &source).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn page(id: &str, when: &str, path: &str) -> Event {
        Event::from_segment(
            &json!({"type": "page", "messageId": id, "userId": "L", "timestamp": when,
            "context": {"page": {"path": path}, "userAgent": "Mozilla/5.0"}}),
        )
        .unwrap()
    }

    fn lead() -> Lead {
        Lead::new("L")
    }

    #[test]
    fn every_rules_respect_the_daily_cap_in_the_rules_time_zone() {
        let rules = rules(
            "[[rules]]\nid = \"p\"\ngroup = \"engagement\"\npoints = 4\nevent = { path = \"/p\" }\ncount = \"every\"\ndaily_cap = 10\n",
        );
        // 23:30 and 23:50 UTC on the 1st are already the 2nd in Tokyo.
        let events = [
            page("a", "2026-01-01T01:00:00Z", "/p"),
            page("b", "2026-01-01T02:00:00Z", "/p"),
            page("c", "2026-01-01T03:00:00Z", "/p"),
            page("d", "2026-01-01T23:30:00Z", "/p"),
            page("e", "2026-01-01T23:50:00Z", "/p"),
        ];
        let result = score(&rules, &lead(), &events, at("2026-01-03T00:00:00Z"), None);
        assert_eq!(result.score, Points::whole(10 + 8));
        assert_eq!(
            result.contributions[0].note.as_deref(),
            Some("at most 10 a day")
        );
    }

    #[test]
    fn half_life_halves_points_and_says_so() {
        let rules = rules(
            "[[rules]]\nid = \"p\"\ngroup = \"engagement\"\npoints = 30\nevent = { path = \"/pricing\" }\ndecay = { half_life_days = 10 }\n",
        );
        let events = [page("a", "2026-01-01T00:00:00Z", "/pricing")];
        let result = score(&rules, &lead(), &events, at("2026-01-11T00:00:00Z"), None);
        assert_eq!(result.score, Points::whole(15));
        let note = result.contributions[0].note.clone().unwrap();
        assert!(
            note.contains("half-life 10 days")
                && note.contains("decayed from 30")
                && note.contains("10 days ago"),
            "{note}"
        );
        let later = score(&rules, &lead(), &events, at("2026-01-21T00:00:00Z"), None);
        assert_eq!(later.score, Points::from_f64(7.5));
    }

    #[test]
    fn expired_events_no_longer_count() {
        let rules = rules(
            "[[rules]]\nid = \"w\"\ngroup = \"engagement\"\npoints = 20\nevent = { path = \"/webinar\" }\nat_least = 2\ndecay = { expires_after_days = 30 }\n",
        );
        let events = [
            page("a", "2026-01-01T00:00:00Z", "/webinar"),
            page("b", "2026-01-20T00:00:00Z", "/webinar"),
        ];
        assert_eq!(
            score(&rules, &lead(), &events, at("2026-01-30T00:00:00Z"), None).score,
            Points::whole(20)
        );
        assert_eq!(
            score(&rules, &lead(), &events, at("2026-02-01T00:00:00Z"), None).score,
            Points::ZERO
        );
    }

    #[test]
    fn a_group_cap_is_an_explained_adjustment() {
        let rules = rules(
            "[groups.extra]\naxis = \"none\"\nmax = 25\n\
             [[rules]]\nid = \"a\"\ngroup = \"extra\"\npoints = 20\nevent = { path = \"/a\" }\n\
             [[rules]]\nid = \"b\"\ngroup = \"extra\"\npoints = 15\nevent = { path = \"/b\" }\n",
        );
        let events = [
            page("1", "2026-01-01T00:00:00Z", "/a"),
            page("2", "2026-01-01T00:00:00Z", "/b"),
        ];
        let result = score(&rules, &lead(), &events, at("2026-01-02T00:00:00Z"), None);
        assert_eq!(result.score, Points::whole(25));
        let cap = result.contributions.last().unwrap();
        assert_eq!(cap.rule, "cap:extra");
        assert_eq!(cap.points, Points::whole(-10));
        assert_eq!(
            cap.evidence,
            Evidence::GroupCap {
                uncapped: Points::whole(35),
                limit: Points::whole(25)
            }
        );
        let extra = result.groups.iter().find(|g| g.group == "extra").unwrap();
        assert_eq!(extra.uncapped, Some(Points::whole(35)));
    }

    #[test]
    fn a_hot_lead_stays_hot_down_to_the_exit_threshold() {
        let rules = rules(
            "[[rules]]\nid = \"p\"\ngroup = \"engagement\"\npoints = 45\nevent = { path = \"/p\" }\n",
        );
        let events = [page("a", "2026-01-01T00:00:00Z", "/p")];
        let now = at("2026-01-02T00:00:00Z");
        assert_eq!(score(&rules, &lead(), &events, now, None).band, Band::Warm);
        assert_eq!(
            score(&rules, &lead(), &events, now, Some(Band::Hot)).band,
            Band::Hot
        );
    }

    #[test]
    fn min_band_raises_and_max_band_wins() {
        let rules = rules(
            "[[rules]]\nid = \"demo\"\ngroup = \"engagement\"\npoints = 5\nmin_band = \"hot\"\nevent = { path = \"/demo\" }\n\
             [[rules]]\nid = \"student\"\ngroup = \"fit\"\npoints = 0\nmax_band = \"warm\"\nwhen = { attribute = \"title\", contains = [\"学生\"] }\n",
        );
        let events = [page("a", "2026-01-01T00:00:00Z", "/demo")];
        let now = at("2026-01-02T00:00:00Z");
        let raised = score(&rules, &lead(), &events, now, None);
        assert_eq!(raised.band, Band::Hot);
        assert_eq!(
            raised
                .band_limit
                .as_ref()
                .map(|l| (l.rule.as_str(), l.from)),
            Some(("demo", Band::Cold))
        );
        let student = Lead::from_raw("L", [("title", "大学生")]);
        let held = score(&rules, &student, &events, now, None);
        assert_eq!(held.band, Band::Warm);
        assert_eq!(held.band_limit.map(|l| l.rule), Some("student".to_string()));
    }

    #[test]
    fn campaign_and_property_matchers_read_the_event() {
        let rules = rules(
            "[[rules]]\nid = \"cpc\"\ngroup = \"engagement\"\npoints = 5\nevent = { utm_medium = \"cpc\", utm_campaign = \"spring*\" }\n\
             [[rules]]\nid = \"wp\"\ngroup = \"engagement\"\npoints = 7\nevent = { type = \"track\", properties = { category = \"white*\" } }\n",
        );
        let events = [
            Event::from_segment(&json!({"type": "page", "messageId": "1", "userId": "L", "timestamp": "2026-01-01T00:00:00Z",
                "context": {"page": {"url": "https://x.example/?utm_medium=CPC&utm_campaign=Spring-Sale"}}})).unwrap(),
            Event::from_segment(&json!({"type": "track", "messageId": "2", "userId": "L", "timestamp": "2026-01-01T00:00:00Z",
                "event": "Document Downloaded", "properties": {"category": "Whitepaper"}})).unwrap(),
            Event::from_segment(&json!({"type": "track", "messageId": "3", "userId": "L", "timestamp": "2026-01-01T00:00:00Z",
                "event": "Document Downloaded", "properties": {"category": "case study"}})).unwrap(),
        ];
        let result = score(&rules, &lead(), &events, at("2026-01-02T00:00:00Z"), None);
        assert_eq!(result.score, Points::whole(12));
    }

    #[test]
    fn alerts_look_back_only_as_far_as_their_window() {
        let rules = rules(
            "[[alerts]]\nid = \"pricing\"\nevent = { path = \"/pricing\" }\nwithin_days = 1\n",
        );
        let events = [
            page("old", "2026-01-01T00:00:00Z", "/pricing"),
            page("new", "2026-01-05T00:00:00Z", "/pricing"),
        ];
        let result = score(&rules, &lead(), &events, at("2026-01-05T12:00:00Z"), None);
        let ids: Vec<&str> = result
            .alerts
            .iter()
            .map(|a| a.message_id.as_str())
            .collect();
        assert_eq!(ids, ["new"]);
    }

    #[test]
    fn a_score_names_the_rules_version_and_time() {
        let rules = rules("");
        let now = at("2026-01-05T12:00:00Z");
        let result = score(&rules, &lead(), &[], now, None);
        assert_eq!(
            result.rules,
            RulesVersion {
                name: "t".into(),
                version: 7
            }
        );
        assert_eq!(result.at, now);
        assert_eq!(result.grade, "D4");
    }

    #[test]
    fn evidence_lists_the_most_recent_events_first_and_at_most_twenty() {
        let rules = rules(
            "[[rules]]\nid = \"p\"\ngroup = \"engagement\"\npoints = 1\nevent = { path = \"/p\" }\ncount = \"every\"\n",
        );
        let events: Vec<Event> = (0..30)
            .map(|i| {
                page(
                    &format!("m{i:02}"),
                    &format!("2026-01-01T00:{i:02}:00Z"),
                    "/p",
                )
            })
            .collect();
        let result = score(&rules, &lead(), &events, at("2026-01-02T00:00:00Z"), None);
        let Evidence::Events {
            count, message_ids, ..
        } = &result.contributions[0].evidence
        else {
            panic!()
        };
        assert_eq!(*count, 30);
        assert_eq!(message_ids.len(), MAX_EVIDENCE_EVENTS);
        assert_eq!(&*message_ids[0], "m29");
        assert_eq!(result.score, Points::whole(30));
    }
}
