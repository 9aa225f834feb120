//! The scoring function: rules + a lead + its events + "now" -> an explained score.
//!
//! Pure and deterministic: the same arguments give the same score and the same
//! explanation, whatever the order of the events.

use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::index::{Bits, Index, Interner, hash_text, same_text};
use crate::lead::{AttributeValue, Lead};
use crate::points::Points;
use crate::rules::{
    Axis, Band, Behaviour, Condition, Count, Decay, Plan, Rule, RuleKind, RuleSet, RuleTexts,
};

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
    pub rule: SharedText,
    pub label: SharedText,
    pub group: SharedText,
    pub points: Points,
    /// Decay or caps that changed the points, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<SharedText>,
    pub evidence: Evidence,
}

/// Text an explanation shares rather than copies: the id, label and group of each rule it
/// counts (shared with the rule set), the attribute values it cites (with the lead's other
/// lines), its notes (parts of one text per score). A clone copies a pointer, not the
/// words. It reads as a `str`, compares with one or with a `String`, and is written out and
/// read back as a plain string.
///
/// A rule set's texts are as a rule kept for the life of the process
/// ([`SharedText::keep_all`]): a clone of one is a copy, and dropping it costs nothing (a
/// score names hundreds of them). Other texts, and rule texts past the bound on what is
/// kept, are counted references.
#[derive(Clone)]
pub struct SharedText(Shared);

#[derive(Clone)]
enum Shared {
    Kept(&'static str),
    /// A counted text: the bytes `start..end` of it (a part of a text others share, as a
    /// score's notes share one), or all of it when `start > end` ([`WHOLE`]), whatever
    /// its length.
    Counted(Arc<str>, u32, u32),
}

/// The `start` and `end` of all of a counted text.
const WHOLE: (u32, u32) = (1, 0);

/// The texts kept for the life of the process, and about the memory they take.
#[derive(Default)]
struct KeptTexts {
    texts: std::collections::HashSet<&'static str>,
    bytes: usize,
}

/// At most about this many bytes of memory hold the rule texts kept for the life of the
/// process (a rule set's texts are short, and a process reads few rule sets, but a
/// long-running learner reads new ones): past it, texts are counted references.
pub(crate) const KEPT_TEXT_BYTES: usize = 4 << 20;

/// The memory a kept text takes beyond its bytes: its allocation's rounding and header,
/// and its slot in the table (with the table's spare room).
const KEPT_TEXT_OVERHEAD: usize = 48;

static KEPT: std::sync::Mutex<Option<KeptTexts>> = std::sync::Mutex::new(None);

impl KeptTexts {
    /// `text`, kept unless that would take the texts kept past `limit` bytes.
    fn keep(&mut self, text: &str, limit: usize) -> SharedText {
        if let Some(&text) = self.texts.get(text) {
            return SharedText(Shared::Kept(text));
        }
        let bytes = self
            .bytes
            .saturating_add(text.len())
            .saturating_add(KEPT_TEXT_OVERHEAD);
        if bytes > limit {
            return text.into();
        }
        let text: &'static str = Box::leak(text.into());
        self.texts.insert(text);
        self.bytes = bytes;
        SharedText(Shared::Kept(text))
    }
}

impl SharedText {
    /// What `work` makes, given a function that keeps a text for the life of the process:
    /// the same text is kept once, however many rule sets name it, and no more than about
    /// [`KEPT_TEXT_BYTES`] in all (past it, the function gives a counted text). The table
    /// of kept texts is locked once, for all that `work` keeps.
    pub(crate) fn keep_all<T>(work: impl FnOnce(&mut dyn FnMut(&str) -> SharedText) -> T) -> T {
        let mut kept = KEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let kept = kept.get_or_insert_with(KeptTexts::default);
        work(&mut |text| kept.keep(text, KEPT_TEXT_BYTES))
    }

    /// Whether the text is kept for the life of the process.
    #[cfg(test)]
    fn is_kept(&self) -> bool {
        matches!(self.0, Shared::Kept(_))
    }

    /// All of `text`.
    fn whole(text: Arc<str>) -> SharedText {
        SharedText(Shared::Counted(text, WHOLE.0, WHOLE.1))
    }

    /// The bytes `start..end` of `text`, which must be on character boundaries, with
    /// `start <= end`.
    fn part(text: &Arc<str>, start: u32, end: u32) -> SharedText {
        debug_assert!(start <= end && text.get(start as usize..end as usize).is_some());
        SharedText(Shared::Counted(text.clone(), start, end))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Shared::Kept(text) => text,
            Shared::Counted(text, start, end) if start > end => text,
            // Parts are made only on boundaries of their text.
            Shared::Counted(text, start, end) => {
                text.get(*start as usize..*end as usize).unwrap_or("")
            }
        }
    }
}

impl std::ops::Deref for SharedText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SharedText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedText {}

impl PartialOrd for SharedText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for SharedText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Display for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_str(), f)
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        SharedText::whole(text.into())
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        SharedText::whole(text.into())
    }
}

impl From<Arc<str>> for SharedText {
    fn from(text: Arc<str>) -> Self {
        SharedText::whole(text)
    }
}

impl From<SharedText> for String {
    fn from(text: SharedText) -> Self {
        text.as_str().to_string()
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SharedText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<SharedText> for str {
    fn eq(&self, other: &SharedText) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<SharedText> for &str {
    fn eq(&self, other: &SharedText) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<SharedText> for String {
    fn eq(&self, other: &SharedText) -> bool {
        *self == other.as_str()
    }
}

impl Serialize for SharedText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SharedText::from)
    }
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
        message_ids: MessageIds,
    },
    /// A group's cap or floor.
    GroupCap { uncapped: Points, limit: Points },
}

/// The message ids an event contribution lists, most recent first. The contributions of
/// a score pick them from one list they share, where each id is written once however many
/// rules list it: a contribution holds one pointer, not one per id. It reads like a list
/// of `str`, and is written out and read back as a plain list of strings.
#[derive(Clone)]
pub struct MessageIds {
    /// The list (none for no ids).
    list: Option<Arc<IdList>>,
    /// Where the ids are picked in `list.picks`.
    picks: std::ops::Range<usize>,
}

/// The list of no message ids.
static NO_IDS: IdList = IdList {
    text: String::new(),
    ends: Vec::new(),
    picks: Vec::new(),
};

/// Message ids, each written once, and the runs of them that [`MessageIds`] pick.
#[derive(Debug, Default)]
struct IdList {
    /// The ids, one after the other.
    text: String,
    /// Where each id ends in `text`.
    ends: Vec<usize>,
    /// Runs of ids, by their place in `ends`.
    picks: Vec<usize>,
}

impl IdList {
    /// Writes `id` down; returns its place.
    fn push(&mut self, id: &str) -> usize {
        self.text.push_str(id);
        self.ends.push(self.text.len());
        self.ends.len() - 1
    }

    /// The id at `place` (empty for a place never given).
    fn id(&self, place: usize) -> &str {
        let start = match place.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or_default(),
            None => 0,
        };
        let end = self.ends.get(place).copied().unwrap_or_default();
        self.text.get(start..end).unwrap_or_default()
    }
}

impl MessageIds {
    /// No message ids.
    pub fn new() -> Self {
        MessageIds {
            list: None,
            picks: 0..0,
        }
    }

    pub fn len(&self) -> usize {
        self.picks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.picks.is_empty()
    }

    /// The id at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.iter().nth(index)
    }

    /// The ids, in order.
    pub fn iter(&self) -> MessageIdsIter<'_> {
        let list = self.list.as_deref().unwrap_or(&NO_IDS);
        MessageIdsIter {
            list,
            picks: list
                .picks
                .get(self.picks.clone())
                .unwrap_or_default()
                .iter(),
        }
    }

    /// Ids listed in `list`, at `picks` in its picks.
    fn of(list: IdList, picks: std::ops::Range<usize>) -> Self {
        MessageIds {
            list: (!picks.is_empty()).then(|| Arc::new(list)),
            picks,
        }
    }
}

impl Default for MessageIds {
    fn default() -> Self {
        MessageIds::new()
    }
}

impl std::ops::Index<usize> for MessageIds {
    type Output = str;

    /// The id at `index`; panics past the end, as a slice does.
    fn index(&self, index: usize) -> &str {
        match self.get(index) {
            Some(id) => id,
            None => panic!(
                "message id {index} asked of a list of {} message ids",
                self.len()
            ),
        }
    }
}

impl<'a> IntoIterator for &'a MessageIds {
    type Item = &'a str;
    type IntoIter = MessageIdsIter<'a>;
    fn into_iter(self) -> MessageIdsIter<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for MessageIds {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> Self {
        let mut list = IdList::default();
        for id in ids {
            let place = list.push(id.as_ref());
            list.picks.push(place);
        }
        let picks = 0..list.picks.len();
        MessageIds::of(list, picks)
    }
}

impl PartialEq for MessageIds {
    fn eq(&self, other: &MessageIds) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for MessageIds {}

impl<S: AsRef<str>> PartialEq<[S]> for MessageIds {
    fn eq(&self, other: &[S]) -> bool {
        self.iter().eq(other.iter().map(AsRef::as_ref))
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for MessageIds {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for MessageIds {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl std::fmt::Debug for MessageIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for MessageIds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for MessageIds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, SeqAccess, Unexpected, Visitor};

        /// A list of strings, each written straight into an [`IdList`].
        struct Ids;
        impl<'de> Visitor<'de> for Ids {
            type Value = IdList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of message ids")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IdList, A::Error> {
                let mut list = IdList::default();
                while seq.next_element_seed(Id(&mut list))?.is_some() {}
                list.picks = (0..list.ends.len()).collect();
                Ok(list)
            }
        }

        /// One string of the list, read as a `String` reads it.
        struct Id<'a>(&'a mut IdList);
        impl<'de> DeserializeSeed<'de> for Id<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_string(self)
            }
        }
        impl<'de> Visitor<'de> for Id<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: Error>(self, id: &str) -> Result<(), E> {
                self.0.push(id);
                Ok(())
            }
            fn visit_bytes<E: Error>(self, id: &[u8]) -> Result<(), E> {
                match std::str::from_utf8(id) {
                    Ok(id) => self.visit_str(id),
                    Err(_) => Err(E::invalid_value(Unexpected::Bytes(id), &self)),
                }
            }
        }

        let list = deserializer.deserialize_seq(Ids)?;
        let picks = 0..list.picks.len();
        Ok(MessageIds::of(list, picks))
    }
}

/// The ids of a [`MessageIds`], in order.
#[derive(Debug, Clone)]
pub struct MessageIdsIter<'a> {
    list: &'a IdList,
    picks: std::slice::Iter<'a, usize>,
}

impl<'a> Iterator for MessageIdsIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        self.picks.next().map(|&place| self.list.id(place))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.picks.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<&'a str> {
        self.picks.nth(n).map(|&place| self.list.id(place))
    }
}

impl DoubleEndedIterator for MessageIdsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.picks.next_back().map(|&place| self.list.id(place))
    }
}

impl ExactSizeIterator for MessageIdsIter<'_> {}

impl std::iter::FusedIterator for MessageIdsIter<'_> {}

/// One attribute value in the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeEvidence {
    pub attribute: SharedText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<SharedText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SharedText>,
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
    let (timeline, counts) = prepare(rules, events, now);
    let mut result = Score {
        lead_id: lead.id.clone(),
        rules: RulesVersion {
            name: rules.name.clone(),
            version: rules.version,
        },
        at: now,
        score: Points::ZERO,
        band: Band::Cold,
        // Graded below, once the points are known.
        grade: String::new(),
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

    // Rule contributions, in rule order.
    let index = index(rules, &timeline);
    let behaviours = behaviour_rules(rules);
    let mut matched = contributions(rules, lead, &timeline, &index, behaviours);
    let lines = || matched.iter().filter_map(|(i, c)| Some((*i, c.as_ref()?)));

    // Group subtotals with caps and floors; an adjustment line keeps the total equal to
    // the sum of the contributions.
    let mut adjustments = Vec::new();
    for group in &rules.groups {
        let uncapped: Points = lines()
            .filter(|(_, c)| same_text(&c.group, &group.id))
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
                rule: format!("cap:{}", group.id).into(),
                label: format!("{} limited to {limit}", group.label).into(),
                group: group.id.as_str().into(),
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
    let matched_rules = || lines().map(|(i, _)| &rules.rules[i]);
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

    // Largest first, then in rule order (the order of `matched`): the order is sorted on
    // one integer per line, the magnitude (as `i64::abs` wraps it) turned to sort largest
    // first, above the line's place; each line is moved once, straight into place.
    let mut order: Vec<u128> = Vec::with_capacity(matched.len());
    order.extend(lines().enumerate().map(|(at, (_, c))| {
        let magnitude = c.points.hundredths().wrapping_abs() as u64 ^ SIGN;
        (u128::from(!magnitude) << 64) | at as u128
    }));
    order.sort_unstable();
    result.contributions = Vec::with_capacity(order.len() + adjustments.len());
    for key in order {
        result
            .contributions
            .extend(matched[key as u64 as usize].1.take());
    }
    result.contributions.extend(adjustments);
    result.alerts = alerts(rules, lead, &timeline, &index, behaviours);
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
    let (timeline, _) = prepare(rules, events, now);
    let index = index(rules, &timeline);
    let mut memo = Memo::default();
    let mut notes = Notes::default();
    let mut behaviours = 0;
    for (i, rule) in rules.rules.iter().enumerate() {
        let RuleKind::Behaviour(b) = &rule.kind else {
            continue;
        };
        behaviours += 1;
        let taken = index.events(behaviours - 1);
        let Some(scored) = behaviour_points(rules, i, b, &timeline, taken, &mut memo, &mut notes)
        else {
            continue;
        };
        let points = rule.points.hundredths();
        terms[i] = if points == 0 {
            1.0
        } else {
            scored.points.hundredths() as f64 / points as f64
        };
    }
    terms
}

/// The rules that matched, in rule order: each rule's index with its line of the
/// explanation (always there: [`score`] takes the lines out as it puts them in order).
type Matched = Vec<(usize, Option<Contribution>)>;

/// How many of the rules are behaviour rules: the index numbers their matchers first, then
/// the alerts'.
fn behaviour_rules(rules: &RuleSet) -> usize {
    (rules.rules.iter())
        .filter(|r| matches!(r.kind, RuleKind::Behaviour(_)))
        .count()
}

/// Every rule's contribution, if it has one, with the rule's index; `event_rules` is
/// [`behaviour_rules`].
fn contributions(
    rules: &RuleSet,
    lead: &Lead,
    timeline: &Timeline<'_>,
    index: &Index,
    event_rules: usize,
) -> Matched {
    let mut matched = Vec::with_capacity(rules.rules.len());
    let mut behaviours = 0;
    let mut memo = Memo::default();
    let (mut looked_at, mut seen) = (Vec::new(), Vec::new());
    let mut ids = Picker::new(timeline.len(), event_rules);
    // Every note of the score, in one text: by the place of its line in `matched`, where
    // each note lies in it.
    let mut notes = Notes::default();
    let mut noted = Vec::with_capacity(event_rules);
    for (i, rule) in rules.rules.iter().enumerate() {
        let contribution = match &rule.kind {
            RuleKind::Attribute(condition) => {
                attribute_points(rules, i, condition, lead, &mut looked_at, &mut seen)
            }
            RuleKind::Behaviour(behaviour) => {
                behaviours += 1;
                let taken = index.events(behaviours - 1);
                behaviour_points(rules, i, behaviour, timeline, taken, &mut memo, &mut notes).map(
                    |points| {
                        if let Some(note) = points.note.clone() {
                            noted.push((matched.len(), note));
                        }
                        let picks = ids.pick(index.row(behaviours - 1), taken, points.start);
                        points.contribution(rules.texts(i), picks)
                    },
                )
            }
        };
        if contribution.is_some() {
            matched.push((i, contribution));
        }
    }
    if !noted.is_empty() {
        let text: Arc<str> = notes.text.into();
        for (at, note) in noted {
            if let Some(contribution) = &mut matched[at].1 {
                contribution.note = Some(SharedText::part(&text, note.start, note.end));
            }
        }
    }
    // The ids picked, in one list that the event contributions share.
    if !ids.picks.is_empty() {
        let list = Arc::new(ids.list(timeline));
        for (_, contribution) in &mut matched {
            if let Some(Contribution {
                evidence: Evidence::Events { message_ids, .. },
                ..
            }) = contribution
            {
                message_ids.list = Some(list.clone());
            }
        }
    }
    matched
}

/// The message ids the event contributions of a score list, picked rule by rule: each id
/// is written once, however many rules list its event, and each run of ids once, however
/// many rules list the same events.
struct Picker {
    /// By position, one more than the event's place in `events` (0 until it is picked).
    listed: Vec<u32>,
    /// The positions of the events picked, in the order first picked: the ids' places.
    events: Vec<usize>,
    /// The places picked, run after run.
    picks: Vec<usize>,
    /// The runs picked: the first position, where they are in `picks`, and one more than
    /// the index of the run picked before from the same index row (0 for none). Rules
    /// that share a matcher and a window pick the same run.
    runs: Vec<(usize, std::ops::Range<usize>, u32)>,
    /// By index row, one more than the index of its last run in `runs` (0 for none): a
    /// rule looks only through the runs of its own row (a row has as many as its rules
    /// have windows).
    last_run: Vec<u32>,
}

impl Picker {
    /// Room for the picks of `rules` event rules in a timeline of `events`.
    fn new(events: usize, rules: usize) -> Self {
        let picks = rules * events.min(MAX_EVIDENCE_EVENTS);
        Picker {
            listed: vec![0; events],
            events: Vec::with_capacity(picks.min(events)),
            picks: Vec::with_capacity(picks),
            runs: Vec::new(),
            last_run: Vec::new(),
        }
    }

    /// Picks the ids of up to [`MAX_EVIDENCE_EVENTS`] events of `taken` (the events of
    /// index row `row`) from position `start` on, the most recent first; returns where
    /// they are in the picks.
    fn pick(&mut self, row: usize, taken: Bits<'_>, start: usize) -> std::ops::Range<usize> {
        if self.last_run.len() <= row {
            self.last_run.resize(row + 1, 0);
        }
        let mut next = self.last_run[row];
        while next != 0 {
            let (from, run, before) = &self.runs[next as usize - 1];
            if *from == start {
                return run.clone();
            }
            next = *before;
        }
        let from = self.picks.len();
        taken.each_last_from(start, MAX_EVIDENCE_EVENTS, |position| {
            let listed = &mut self.listed[position];
            if *listed == 0 {
                self.events.push(position);
                // Fewer events than 2^32: a time key holds a place in 32 bits.
                *listed = self.events.len() as u32;
            }
            self.picks.push(*listed as usize - 1);
        });
        self.runs
            .push((start, from..self.picks.len(), self.last_run[row]));
        // Fewer runs than rules, and fewer rules than 2^32.
        self.last_run[row] = self.runs.len() as u32;
        from..self.picks.len()
    }

    /// The list of the ids picked, each written once (holding no more room for picks than
    /// twice those made: the score keeps it).
    fn list(mut self, timeline: &Timeline<'_>) -> IdList {
        if self.picks.capacity() > 2 * self.picks.len() {
            self.picks.shrink_to_fit();
        }
        let id = |position: usize| &*timeline.event(position).message_id;
        let mut list = IdList {
            text: String::with_capacity(self.events.iter().map(|&p| id(p).len()).sum()),
            ends: Vec::with_capacity(self.events.len()),
            picks: self.picks,
        };
        for &position in &self.events {
            list.push(id(position));
        }
        list
    }
}

/// An attribute rule's contribution, if its condition holds; `looked_at` is room for the
/// attributes the condition looks at (borrowed until they are written out, and kept from
/// one rule to the next), and `seen` the evidence of the attributes written out so far:
/// rules look at a few attributes between them, and each is written out once per score.
fn attribute_points<'r, 'l>(
    rules: &'r RuleSet,
    index: usize,
    condition: &'r Condition,
    lead: &'l Lead,
    looked_at: &mut Vec<(&'r str, Option<&'l AttributeValue>)>,
    seen: &mut Vec<(&'r str, AttributeEvidence)>,
) -> Option<Contribution> {
    let rule = &rules.rules[index];
    looked_at.clear();
    condition.looked_at(lead, looked_at).then(|| {
        let texts = rules.texts(index);
        let attributes = looked_at
            .iter()
            .map(|&(name, value)| {
                if let Some((_, evidence)) = seen.iter().find(|(seen, _)| same_text(seen, name)) {
                    return evidence.clone();
                }
                let evidence = AttributeEvidence {
                    attribute: name.into(),
                    raw: value.map(|v| v.raw.as_str().into()),
                    value: value.map(|v| v.value.as_str().into()),
                };
                seen.push((name, evidence.clone()));
                evidence
            })
            .collect();
        Contribution {
            rule: texts.id,
            label: texts.label,
            group: texts.group,
            points: rule.points,
            note: None,
            evidence: Evidence::Attributes { attributes },
        }
    })
}

/// The events each behaviour rule, then each alert, takes. The matchers are numbered in
/// that order, as in [`Plan`].
fn index(rules: &RuleSet, timeline: &Timeline<'_>) -> Index {
    if rules.plan.fits(rules.rules.len(), rules.alerts.len()) {
        return Index::of(&rules.plan, &timeline.events);
    }
    // A rule set changed after it was compiled: plan it again, or match event by event.
    match Plan::new(&rules.rules, &rules.alerts) {
        Ok(plan) => Index::of(&plan, &timeline.events),
        Err(_) => Index::each(&matchers(rules), timeline.events.iter().copied()),
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

/// The events that passed the filters, in time order: the earliest at position 0. An
/// event's age at the scoring time and its day are worked out from its time key when they
/// are read (most never are).
struct Timeline<'e> {
    /// The events left once repeats of a message id are dropped, in the order given: an
    /// event's place here is in its time key.
    kept: Vec<&'e Event>,
    /// By position, the time key (see [`TimeKeys`]) of each event that passed the filters:
    /// in increasing order.
    keys: Vec<u128>,
    /// By position, the events that passed the filters.
    events: Vec<&'e Event>,
    now: DateTime<Utc>,
    /// `now` as seconds and nanoseconds since 1970.
    now_at: (i64, u32),
    /// The rules' UTC offset, in seconds.
    offset: i64,
}

impl<'e> Timeline<'e> {
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// The event at `position`.
    fn event(&self, position: usize) -> &'e Event {
        self.events[position]
    }

    /// The age at the scoring time of the event whose time key is `key`.
    fn age_of(&self, key: u128) -> chrono::Duration {
        age(self.now, self.now_at, key_time(key), || {
            self.kept[place(key)].timestamp
        })
    }

    /// The age at the scoring time of the event at `position`.
    fn age(&self, position: usize) -> chrono::Duration {
        self.age_of(self.keys[position])
    }

    /// The day of the event at `position` in the rules' time zone (days since 1970-01-01
    /// there).
    fn day(&self, position: usize) -> i64 {
        (key_time(self.keys[position]).0 + self.offset).div_euclid(86_400)
    }

    /// The first position whose event is not `too_old` (the ages fall along the
    /// positions).
    fn first_not(&self, too_old: impl Fn(chrono::Duration) -> bool) -> usize {
        self.keys.partition_point(|&key| too_old(self.age_of(key)))
    }

    /// Each event in time order, with its age and its day.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = Seen<'e>> + '_ {
        (0..self.len()).map(|position| Seen {
            event: self.event(position),
            age: self.age(position),
            day: self.day(position),
        })
    }
}

/// An event of a [`Timeline`] with its age at the scoring time and the day it fell on in
/// the rules' time zone, as the tests read them.
#[cfg(test)]
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
) -> (Timeline<'e>, EventCounts) {
    let mut counts = EventCounts {
        received: events.len(),
        ..EventCounts::default()
    };
    // One hash per event: the first event of each message id takes a place in `kept`; a
    // repeat only takes it over when it comes canonically first. Repeats are few: a bit
    // per hash (a few bits per event) first tells the ids whose hash is seen once, which
    // are those of one event each and take their place at once; only the others are
    // numbered by their text.
    let state = RandomState::default();
    let hashes: Vec<u64> = (events.iter())
        .map(|event| hash_text(&state, &event.message_id))
        .collect();
    let seen = SeenTwice::of(&hashes);
    let mut ids = Interner::with_capacity(0);
    // By the number `ids` gives a repeated id, its place in `kept`.
    let mut places: Vec<usize> = Vec::new();
    let mut kept: Vec<&Event> = Vec::with_capacity(events.len());
    for (event, &hash) in events.iter().zip(&hashes) {
        if !seen.twice(hash) {
            kept.push(event);
            continue;
        }
        let id = &*event.message_id;
        let number = ids.intern(hash, |number| {
            same_text(&kept[places[number]].message_id, id)
        });
        if number == places.len() {
            places.push(kept.len());
            kept.push(event);
        } else {
            counts.duplicates += 1;
            let place = places[number];
            if canonically_before(event, kept[place]) {
                kept[place] = event;
            }
        }
    }
    // A key above this one is of a time later than `now`, whatever its place.
    let now_at = (now.timestamp(), now.timestamp_subsec_nanos());
    let latest = key_at(now_at, u32::MAX);
    // Most events of a lead come from a few browsers: the last few user agents seen are
    // remembered with their verdict (comparing a user agent is cheaper than hashing it).
    let mut agents: Vec<(&str, bool)> = Vec::with_capacity(AGENTS_REMEMBERED);
    // Sorted on one integer: the time (read once per event) above the place in `kept`.
    let mut keys: Vec<u128> = Vec::with_capacity(kept.len());
    let mut time_keys = TimeKeys::new();
    for (place, event) in kept.iter().enumerate() {
        let key = time_keys.key(event, place);
        if key > latest {
            counts.future += 1;
            continue;
        }
        let bot = event.user_agent.as_deref().is_some_and(|agent| {
            if let Some(&(_, bot)) = agents.iter().find(|(a, _)| same_text(a, agent)) {
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
            keys.push(key);
        }
    }
    let mut keys = sort_times(keys);
    // Events at the same instant (rare) go by message id, as if sorted on (time, id).
    let same_time = |a: &u128, b: &u128| a >> 32 == b >> 32;
    if keys.windows(2).any(|pair| same_time(&pair[0], &pair[1])) {
        for run in keys.chunk_by_mut(same_time) {
            run.sort_unstable_by(|a, b| {
                kept[place(*a)].message_id.cmp(&kept[place(*b)].message_id)
            });
        }
    }
    counts.scored = keys.len();
    let timeline = Timeline {
        events: keys.iter().map(|&key| kept[place(key)]).collect(),
        kept,
        keys,
        now,
        now_at,
        offset: i64::from(rules.utc_offset.local_minus_utc()),
    };
    (timeline, counts)
}

/// The hashes seen more than once among some, as bits of a few bits per hash each: a
/// hash not marked was seen once (a marked one may have been seen once too, sharing its
/// bit with another).
struct SeenTwice {
    twice: Vec<u64>,
    shift: u32,
}

impl SeenTwice {
    fn of(hashes: &[u64]) -> SeenTwice {
        // 16 bits per hash at least (a hash seen once shares its bit with another's in
        // about one case in 16), from the hash's high bits (the interner's table reads
        // its low ones).
        let bits = (16 * hashes.len()).next_power_of_two().max(64);
        let shift = 64 - bits.trailing_zeros();
        let mut once = vec![0u64; bits / 64];
        let mut twice = vec![0u64; bits / 64];
        for &hash in hashes {
            let bit = (hash >> shift) as usize;
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            twice[word] |= once[word] & mask;
            once[word] |= mask;
        }
        SeenTwice { twice, shift }
    }

    /// Whether `hash` may have been seen more than once.
    fn twice(&self, hash: u64) -> bool {
        let bit = (hash >> self.shift) as usize;
        self.twice[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// Sorts keys made by [`TimeKeys`] (all distinct: their places are): a radix sort on the
/// highest byte of the time in which they differ (a lead's events span days, not
/// centuries, and spread over its 256 values), into a new list, then each bucket of that
/// byte likewise in place, down to buckets so small that an insertion sort sorts them at
/// once. One list is allocated, and each key is moved once per byte, on few bytes. The
/// keys being distinct, the order is that of `sort_unstable`.
fn sort_times(mut keys: Vec<u128>) -> Vec<u128> {
    if keys.len() <= SMALL_SORT {
        insertion_sort(&mut keys);
        return keys;
    }
    let Some(shift) = top_byte(&keys) else {
        // All at the same instant: in order of place.
        keys.sort_unstable();
        return keys;
    };
    // The byte from the word that holds it, when one does (a shift of a u128 by a
    // variable costs more).
    let (mut sorted, ends) = match shift {
        64.. => into_buckets(&keys, |key| ((key >> 64) as u64 >> (shift - 64)) as u8),
        ..=56 => into_buckets(&keys, |key| (key as u64 >> shift) as u8),
        _ => into_buckets(&keys, |key| (key >> shift) as u8),
    };
    sort_buckets(&mut sorted, &ends);
    sorted
}

/// `keys` in a new list, in order of the byte `digit` (counted, then each key written
/// once into its bucket: no chain of swaps, whose next place depends on the key last
/// read); and where each byte's bucket ends.
fn into_buckets(keys: &[u128], digit: impl Fn(u128) -> u8) -> (Vec<u128>, [usize; 256]) {
    let digit = |key: u128| usize::from(digit(key));
    let mut ends = [0usize; 256];
    for &key in keys {
        ends[digit(key)] += 1;
    }
    let mut next = [0usize; 256];
    let mut start = 0;
    for (end, next) in ends.iter_mut().zip(&mut next) {
        *next = start;
        start += *end;
        *end = start;
    }
    let mut sorted = vec![0u128; keys.len()];
    for &key in keys {
        let to = &mut next[digit(key)];
        sorted[*to] = key;
        *to += 1;
    }
    (sorted, ends)
}

/// The shift of the highest byte of the times (above the places) in which `keys`
/// differ, or `None` when they are all of one instant.
fn top_byte(keys: &[u128]) -> Option<u32> {
    let (mut all, mut any) = (u128::MAX, 0);
    for &key in keys {
        all &= key;
        any |= key;
    }
    let differ = (all ^ any) >> 32;
    (differ != 0).then(|| 32 + (127 - differ.leading_zeros()).max(7) - 7)
}

/// Sorts each bucket of `keys` (the buckets ending at `ends`, in order).
fn sort_buckets(keys: &mut [u128], ends: &[usize; 256]) {
    let mut start = 0;
    for &end in ends {
        match end - start {
            0 | 1 => {}
            2..=SMALL_SORT => insertion_sort(&mut keys[start..end]),
            _ => sort_in_place(&mut keys[start..end]),
        }
        start = end;
    }
}

/// As [`sort_times`], in place: for the buckets of its first byte.
fn sort_in_place(keys: &mut [u128]) {
    let Some(shift) = top_byte(keys) else {
        keys.sort_unstable();
        return;
    };
    // The byte from the word that holds it, when one does (a shift of a u128 by a
    // variable costs more).
    let buckets = match shift {
        64.. => by_byte(keys, |key| ((key >> 64) as u64 >> (shift - 64)) as u8),
        ..=56 => by_byte(keys, |key| (key as u64 >> shift) as u8),
        _ => by_byte(keys, |key| (key >> shift) as u8),
    };
    sort_buckets(keys, &buckets);
}

/// Puts `keys` in order of the byte `digit` (American flag sort: each key swapped
/// straight into its bucket); returns where each byte's bucket ends.
fn by_byte(keys: &mut [u128], digit: impl Fn(u128) -> u8) -> [usize; 256] {
    let digit = |key: u128| usize::from(digit(key));
    let mut ends = [0usize; 256];
    for &key in keys.iter() {
        ends[digit(key)] += 1;
    }
    // The next place to fill in each bucket.
    let mut next = [0usize; 256];
    let mut start = 0;
    for (end, next) in ends.iter_mut().zip(&mut next) {
        *next = start;
        start += *end;
        *end = start;
    }
    for bucket in 0..256 {
        while next[bucket] < ends[bucket] {
            let mut key = keys[next[bucket]];
            let mut to = digit(key);
            while to != bucket {
                std::mem::swap(&mut key, &mut keys[next[to]]);
                next[to] += 1;
                to = digit(key);
            }
            keys[next[bucket]] = key;
            next[bucket] += 1;
        }
    }
    ends
}

/// Sorts a few keys.
fn insertion_sort(keys: &mut [u128]) {
    for i in 1..keys.len() {
        let key = keys[i];
        let mut at = i;
        while at > 0 && keys[at - 1] > key {
            keys[at] = keys[at - 1];
            at -= 1;
        }
        keys[at] = key;
    }
}

/// The most keys [`sort_times`] sorts by insertion.
const SMALL_SORT: usize = 24;

/// Flips the sign bit of a time's seconds, so that they sort as unsigned integers.
const SIGN: u64 = 1 << 63;

/// Makes time keys: an event's time, as seconds and nanoseconds since 1970, above `place`
/// (an index below 2^32: no slice of events is that long) in one integer that sorts in
/// time order. The seconds are those of `DateTime::timestamp`, which works a date's days
/// out from its year (a few divisions) and its day of the year: the days before the year
/// last seen are kept, as a lead's events fall in a year or two.
struct TimeKeys {
    year: i32,
    /// The days from the common era to the year's first day, less one.
    days_before: i64,
}

impl TimeKeys {
    fn new() -> Self {
        // No date's year (chrono's years are within 2^18 of 0).
        TimeKeys {
            year: i32::MIN,
            days_before: 0,
        }
    }

    /// The key of `event` at `place`.
    fn key(&mut self, event: &Event, place: usize) -> u128 {
        let at = event.timestamp.naive_utc();
        let date = at.date();
        if date.year() != self.year {
            self.year = date.year();
            self.days_before = i64::from(date.num_days_from_ce()) - i64::from(date.ordinal());
        }
        let days = self.days_before + i64::from(date.ordinal()) - UNIX_EPOCH_DAY;
        let seconds = days * 86_400 + i64::from(at.time().num_seconds_from_midnight());
        key_at((seconds, at.time().nanosecond()), place as u32)
    }
}

/// The days from the common era to 1970-01-01, as chrono counts them.
const UNIX_EPOCH_DAY: i64 = 719_163;

/// The key of a time (seconds and nanoseconds since 1970) and a place.
fn key_at((seconds, nanos): (i64, u32), place: u32) -> u128 {
    (u128::from(seconds as u64 ^ SIGN) << 64) | (u128::from(nanos) << 32) | u128::from(place)
}

/// The time of a key: seconds and nanoseconds since 1970.
fn key_time(key: u128) -> (i64, u32) {
    (((key >> 64) as u64 ^ SIGN) as i64, (key >> 32) as u32)
}

/// The place of a key's event in [`Timeline::kept`].
fn place(key: u128) -> usize {
    key as u32 as usize
}

/// `now - timestamp`, from both times as seconds and nanoseconds (chrono's subtraction,
/// which goes through dates, only for a leap second).
fn age(
    now: DateTime<Utc>,
    (now_seconds, now_nanos): (i64, u32),
    (seconds, nanos): (i64, u32),
    timestamp: impl FnOnce() -> DateTime<Utc>,
) -> chrono::Duration {
    if nanos < 1_000_000_000 && now_nanos < 1_000_000_000 {
        let (seconds, nanos) = match now_nanos.checked_sub(nanos) {
            Some(nanos) => (now_seconds - seconds, nanos),
            None => (now_seconds - seconds - 1, now_nanos + 1_000_000_000 - nanos),
        };
        if let Some(age) = chrono::Duration::new(seconds, nanos) {
            return age;
        }
    }
    now - timestamp()
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

/// Per score, what many rules share: the first position of each window (rules repeat
/// windows), half-life factors by event position, worked out once for each half-life (the
/// same events decay alike under every rule that takes them), and the words of each decay.
#[derive(Default)]
struct Memo {
    /// By the window's length and the bits of its expiry's days.
    windows: Vec<(Option<chrono::Duration>, Option<u64>, usize)>,
    half_lives: Vec<(u64, Vec<f64>)>,
    words: Vec<(Decay, String)>,
}

impl Memo {
    /// The first position whose event a behaviour can still take: events are in time
    /// order, so the ages fall and the window and an expiry cut a prefix.
    fn first_in_window(
        &mut self,
        timeline: &Timeline<'_>,
        within: Option<chrono::Duration>,
        decay: Decay,
        points: Points,
    ) -> usize {
        // An expiry cuts the same events whatever the points.
        let expiry = match decay {
            Decay::Expires { days } => Some(days.to_bits()),
            Decay::None | Decay::HalfLife { .. } => None,
        };
        if within.is_none() && expiry.is_none() {
            return 0;
        }
        if let Some(&(.., start)) = (self.windows.iter()).find(|w| (w.0, w.1) == (within, expiry)) {
            return start;
        }
        let start = timeline.first_not(|age| {
            within.is_some_and(|w| age > w) || expiry.is_some() && decay.factor(points, age) <= 0.0
        });
        self.windows.push((within, expiry, start));
        start
    }

    /// The factors of a half-life of `days` by position: NaN until worked out.
    fn half_life(&mut self, days: f64, events: usize) -> &mut [f64] {
        let key = days.to_bits();
        let slot = match self.half_lives.iter().position(|(k, _)| *k == key) {
            Some(slot) => slot,
            None => {
                self.half_lives.push((key, vec![f64::NAN; events]));
                self.half_lives.len() - 1
            }
        };
        &mut self.half_lives[slot].1
    }

    /// [`decay_words`], written once per decay (told apart by the bits of its days, as they
    /// are printed).
    fn words(&mut self, decay: Decay) -> &str {
        let key = |decay: Decay| match decay {
            Decay::None => (0, 0),
            Decay::HalfLife { days } => (1, days.to_bits()),
            Decay::Expires { days } => (2, days.to_bits()),
        };
        let slot = match self.words.iter().position(|(d, _)| key(*d) == key(decay)) {
            Some(slot) => slot,
            None => {
                self.words.push((decay, decay_words(decay)));
                self.words.len() - 1
            }
        };
        &self.words[slot].1
    }
}

/// A behaviour rule's points and what they rest on, but for the message ids.
struct EventPoints {
    points: Points,
    /// Where its note lies in the score's [`Notes`].
    note: Option<std::ops::Range<u32>>,
    count: usize,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// The first position the rule can take (see [`Memo::first_in_window`]).
    start: usize,
}

impl EventPoints {
    /// The rule's line of the explanation, with the ids at `picks` of a list to come.
    fn contribution(self, texts: RuleTexts, picks: std::ops::Range<usize>) -> Contribution {
        Contribution {
            rule: texts.id,
            label: texts.label,
            group: texts.group,
            points: self.points,
            // Set once every note of the score is written.
            note: None,
            evidence: Evidence::Events {
                count: self.count,
                first: self.first,
                last: self.last,
                message_ids: MessageIds { list: None, picks },
            },
        }
    }
}

/// A behaviour rule's points, if it has any, from `taken`: the events its matcher takes.
fn behaviour_points(
    rules: &RuleSet,
    index: usize,
    behaviour: &Behaviour,
    timeline: &Timeline<'_>,
    taken: Bits<'_>,
    memo: &mut Memo,
    notes: &mut Notes,
) -> Option<EventPoints> {
    let rule = &rules.rules[index];
    let start = memo.first_in_window(timeline, behaviour.within, behaviour.decay, rule.points);
    let first = taken.first_from(start)?;
    let last = taken.last_from(start)?;
    let count = taken.count_from(start);
    notes.start();
    let points = match behaviour.count {
        Count::Once { at_least } => {
            if count < at_least as usize {
                return None;
            }
            let age = timeline.age(last);
            let points = rule.points.scaled(behaviour.decay.factor(rule.points, age));
            if points != rule.points {
                let note = notes.next();
                note.push_str(memo.words(behaviour.decay));
                note.push_str(" decayed from ");
                rule.points.push_to(note);
                note.push_str(", last ");
                push_age(note, age);
            }
            points
        }
        Count::Every => {
            let (mut total, undecayed, daily_capped) = match (behaviour.daily_cap, behaviour.decay)
            {
                // Every event gives the rule's points in full: the sum of `count` equal
                // points, saturating at each step, is their product, saturating.
                (None, Decay::None | Decay::Expires { .. }) => {
                    let times = |points: Points| {
                        Points::from_hundredths(points.hundredths().saturating_mul(count as i64))
                    };
                    (times(rule.points.scaled(1.0)), times(rule.points), false)
                }
                _ => each_event(rule.points, behaviour, timeline, taken, start, memo),
            };
            if daily_capped {
                let note = notes.next();
                note.push_str("at most ");
                behaviour.daily_cap.unwrap_or_default().push_to(note);
                note.push_str(" a day");
            }
            if total != undecayed {
                let note = notes.next();
                note.push_str(memo.words(behaviour.decay));
                note.push_str(" decayed from ");
                undecayed.push_to(note);
            }
            if let Some(cap) = behaviour.cap
                && total.hundredths().abs() > cap.hundredths()
            {
                let note = notes.next();
                note.push_str("capped at ");
                cap.push_to(note);
                note.push_str(" from ");
                total.push_to(note);
                total = Points::from_hundredths(cap.hundredths() * total.hundredths().signum());
            }
            total
        }
    };
    Some(EventPoints {
        points,
        note: notes.end(),
        count,
        first: timeline.event(first).timestamp,
        last: timeline.event(last).timestamp,
        start,
    })
}

/// An `every` rule's points event by event, from position `start` on, under its daily cap
/// and half-life: the total, the total before decay, and whether the daily cap cut any.
fn each_event(
    points: Points,
    behaviour: &Behaviour,
    timeline: &Timeline<'_>,
    taken: Bits<'_>,
    start: usize,
    memo: &mut Memo,
) -> (Points, Points, bool) {
    let mut total = Points::ZERO;
    let mut undecayed = Points::ZERO;
    // The day of the last event, and what the daily cap has counted on it (no event's day
    // is `i64::MIN`).
    let (mut day, mut so_far) = (i64::MIN, Points::ZERO);
    // The points' magnitude and sign, as the daily cap reads them.
    let (magnitude, sign) = (points.hundredths().abs(), points.hundredths().signum());
    let mut daily_capped = false;
    // Half-life factors come from the memo; past the window's start, an expiry (like no
    // decay) leaves every event its full points.
    let mut half_life = match behaviour.decay {
        Decay::HalfLife { days } => Some(memo.half_life(days, timeline.len())),
        Decay::None | Decay::Expires { .. } => None,
    };
    taken.each_from(start, |position| {
        let mut award = points;
        if let Some(cap) = behaviour.daily_cap {
            let today = timeline.day(position);
            if today != day {
                (day, so_far) = (today, Points::ZERO);
            }
            let room = cap - Points::from_hundredths(so_far.hundredths().abs());
            if Points::from_hundredths(magnitude) > room {
                daily_capped = true;
                award = Points::from_hundredths(room.max(Points::ZERO).hundredths() * sign);
            }
            so_far += Points::from_hundredths(award.hundredths().abs());
        }
        undecayed += award;
        let factor = match &mut half_life {
            // A half-life fades only positive points.
            Some(factors) if !award.is_negative() => {
                let factor = &mut factors[position];
                if factor.is_nan() {
                    *factor = behaviour.decay.factor(award, timeline.age(position));
                }
                *factor
            }
            _ => 1.0,
        };
        total += award.scaled(factor);
    });
    (total, undecayed, daily_capped)
}

/// The notes of a score's contributions, one after another in one text (which the
/// contributions then share): a contribution's notes are joined by "; " as they are
/// written.
#[derive(Default)]
struct Notes {
    text: String,
    /// Where the notes of the contribution being written start.
    start: usize,
}

impl Notes {
    /// Starts the notes of a contribution.
    fn start(&mut self) {
        self.start = self.text.len();
    }

    /// The text to write the contribution's next note to.
    fn next(&mut self) -> &mut String {
        if self.text.is_empty() {
            // Room for the usual notes at once, rather than growing as they are written.
            self.text.reserve(NOTE_CAPACITY);
        }
        if self.text.len() > self.start {
            self.text.push_str("; ");
        }
        &mut self.text
    }

    /// Where the contribution's notes lie, if it has any (`None` past 4 GiB of notes,
    /// which no score writes).
    fn end(&self) -> Option<std::ops::Range<u32>> {
        let start = u32::try_from(self.start).ok()?;
        let end = u32::try_from(self.text.len()).ok()?;
        (end > start).then_some(start..end)
    }
}

fn decay_words(decay: Decay) -> String {
    match decay {
        Decay::HalfLife { days } => format!("half-life {days} days:"),
        Decay::Expires { days } => format!("expiry {days} days:"),
        Decay::None => String::new(),
    }
}

/// How long ago `age` is, in words, written straight into a note.
fn push_age(note: &mut String, age: chrono::Duration) {
    match age.num_days() {
        0 => note.push_str("today"),
        1 => note.push_str("1 day ago"),
        days => {
            // Whole points print as the whole number, without a fraction (and `days`, under
            // 2^40, is far from overflowing as hundredths).
            Points::whole(days).push_to(note);
            note.push_str(" days ago");
        }
    }
}

/// The bytes reserved for a score's notes when it has any (a few lines' worth).
const NOTE_CAPACITY: usize = 1024;

/// The alerts the events raise; `behaviours` is [`behaviour_rules`] (the alerts'
/// matchers come after theirs in the index).
fn alerts(
    rules: &RuleSet,
    lead: &Lead,
    timeline: &Timeline<'_>,
    index: &Index,
    behaviours: usize,
) -> Vec<AlertTrigger> {
    let mut triggers = Vec::new();
    for (a, alert) in rules.alerts.iter().enumerate() {
        if let Some(when) = &alert.when
            && !when.holds(lead)
        {
            continue;
        }
        let start = timeline.first_not(|age| age > alert.within);
        index.events(behaviours + a).each_from(start, |position| {
            let event = timeline.event(position);
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

    /// A rule set's texts are kept once for the life of the process, shared by every rule
    /// set that names them, up to a bound past which they are counted references; kept or
    /// not, they read, compare and hash alike.
    #[test]
    fn rule_texts_are_kept_once_within_a_bound() {
        let one = rules(
            "[[rules]]\nid = \"kept_once\"\ngroup = \"engagement\"\npoints = 1\nevent = { path = \"/a\" }\n",
        );
        let two = rules(
            "[[rules]]\nid = \"kept_once\"\ngroup = \"engagement\"\npoints = 2\nevent = { path = \"/b\" }\n",
        );
        let (a, b) = (one.texts(0).id, two.texts(0).id);
        assert!(a.is_kept() && b.is_kept());
        assert!(std::ptr::eq(a.as_str(), b.as_str()), "one text, kept once");

        // A rules file with a problem makes no rule set, and keeps none of its texts.
        let rejected = RuleSet::from_toml(
            "t.toml",
            "name = \"t\"\nversion = 1\n[bands]\nhot = 50\nwarm = 20\n[groups.e]\naxis = \"engagement\"\n\
             [[rules]]\nid = \"kept_by_no_rule_set\"\ngroup = \"e\"\npoints = 1\nevent = { path = \"/a\" }\n\
             [[rules]]\nid = \"broken\"\ngroup = \"nowhere\"\npoints = 1\nevent = { path = \"/b\" }\n",
        );
        assert!(rejected.is_err());
        let kept = |text: &str| {
            let table = KEPT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            table.as_ref().is_some_and(|t| t.texts.contains(text))
        };
        assert!(kept("kept_once") && !kept("kept_by_no_rule_set"));

        // Room for two texts of 12 bytes and one of 8, each with its overhead.
        let limit = 12 + 12 + 8 + 3 * KEPT_TEXT_OVERHEAD;
        let mut kept = KeptTexts::default();
        let first = kept.keep("twelve bytes", limit);
        let again = kept.keep("twelve bytes", limit);
        let second = kept.keep("twelve more.", limit);
        let fits = kept.keep("8 bytes.", limit);
        let past = kept.keep("9 bytes..", limit);
        let small = kept.keep("", limit);
        assert!(first.is_kept() && again.is_kept() && second.is_kept() && fits.is_kept());
        assert!(!past.is_kept() && !small.is_kept());
        assert!(std::ptr::eq(first.as_str(), again.as_str()));
        assert_eq!((kept.texts.len(), kept.bytes), (3, limit));
        assert_eq!(kept.keep("8 bytes.", limit), "8 bytes.");
        let past = kept.keep("nine more", limit);
        let counted = SharedText::from("twelve bytes");
        assert!(!counted.is_kept());
        assert_eq!(counted, first);
        assert_eq!(past, "nine more");
        let hash = |text: &SharedText| {
            std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::with_seed(1), text)
        };
        assert_eq!(hash(&counted), hash(&first));
        assert_eq!(counted.cmp(&first), std::cmp::Ordering::Equal);
    }

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
    fn leads_with_many_distinct_pages_are_counted_page_by_page() {
        // Far more distinct paths than the index keeps a row for: each counts all the
        // same, whether it is among the first values seen or past them.
        let rules = rules(
            "[[rules]]\nid = \"products\"\ngroup = \"engagement\"\npoints = 1\nevent = { path = \"/product/*\" }\ncount = \"every\"\n\
             [[rules]]\nid = \"late\"\ngroup = \"engagement\"\npoints = 7\nevent = { path = \"/product/1900\" }\n",
        );
        let events: Vec<Event> = (0..2000)
            .map(|i| {
                let section = if i % 2 == 0 { "product" } else { "other" };
                let when = format!(
                    "2026-01-01T{:02}:{:02}:{:02}Z",
                    i / 3600,
                    i / 60 % 60,
                    i % 60
                );
                page(&format!("m{i}"), &when, &format!("/{section}/{i}"))
            })
            .collect();
        let result = score(&rules, &lead(), &events, at("2026-01-02T00:00:00Z"), None);
        let count = |rule: &str| {
            result
                .contributions
                .iter()
                .find(|c| &*c.rule == rule)
                .map(|c| match &c.evidence {
                    Evidence::Events { count, .. } => *count,
                    _ => 0,
                })
        };
        assert_eq!(count("products"), Some(1000));
        assert_eq!(count("late"), Some(1));
        assert_eq!(result.score, Points::whole(1000 + 7));
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

    /// The notes of a score's lines are written one after another in one text: each line
    /// reads its own notes, joined by "; ", and writes them out as a plain string.
    #[test]
    fn each_line_reads_its_own_notes() {
        let rules = rules(
            "[[rules]]\nid = \"unmatched\"\ngroup = \"engagement\"\npoints = 5\nevent = { path = \"/none\" }\ndecay = { half_life_days = 1 }\n\
             [[rules]]\nid = \"fit\"\ngroup = \"fit\"\npoints = 5\nwhen = { attribute = \"employees\", gte = 1000000 }\n\
             [[rules]]\nid = \"capped\"\ngroup = \"engagement\"\npoints = 10\nevent = { path = \"/a\" }\ncount = \"every\"\ndaily_cap = 20\ncap = 25\n\
             [[rules]]\nid = \"plain\"\ngroup = \"engagement\"\npoints = 1\nevent = { path = \"/a\" }\n\
             [[rules]]\nid = \"faded\"\ngroup = \"engagement\"\npoints = 30\nevent = { path = \"/b\" }\ndecay = { half_life_days = 10 }\n",
        );
        let events = [
            page("a1", "2026-01-10T01:00:00Z", "/a"),
            page("a2", "2026-01-10T02:00:00Z", "/a"),
            page("a3", "2026-01-10T03:00:00Z", "/a"),
            page("a4", "2026-01-11T01:00:00Z", "/a"),
            page("b", "2026-01-01T00:00:00Z", "/b"),
        ];
        let result = score(&rules, &lead(), &events, at("2026-01-12T00:00:00Z"), None);
        let note = |rule: &str| {
            let line = result.contributions.iter().find(|c| c.rule == rule);
            line.and_then(|c| c.note.as_deref()).map(str::to_string)
        };
        assert_eq!(
            note("capped").as_deref(),
            Some("at most 20 a day; capped at 25 from 30")
        );
        assert_eq!(note("plain"), None);
        let faded = note("faded").unwrap_or_default();
        assert!(
            faded.starts_with("half-life 10 days: decayed from 30"),
            "{faded}"
        );
        let json = serde_json::to_value(&result).unwrap_or_default();
        let back: Score = serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, result);
        assert!(json["contributions"].as_array().is_some_and(|lines| {
            lines
                .iter()
                .any(|l| l["note"] == "at most 20 a day; capped at 25 from 30")
        }));
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
        assert_eq!(&message_ids[0], "m29");
        assert_eq!(result.score, Points::whole(30));
    }

    /// Rules that share a matcher share the run of ids they list, and each lists what it
    /// would list scored alone: a rule whose window (or expiry) starts later lists its own
    /// run. The events span three words of positions, and the windows start past the
    /// first.
    #[test]
    fn rules_sharing_events_list_what_each_lists_alone() {
        let rule = |id: &str, points: i64, path: &str, more: &str| {
            format!(
                "[[rules]]\nid = \"{id}\"\ngroup = \"engagement\"\npoints = {points}\n\
                 event = {{ path = \"{path}\" }}\ncount = \"every\"\n{more}"
            )
        };
        let all = [
            rule("a", 1, "/p", ""),
            rule("b", 3, "/p", ""),
            rule("c", 2, "/p", "within_days = 0.25\n"),
            rule("d", 1, "/q", ""),
            rule("e", 5, "/p", "within_days = 0.25\n"),
            rule("f", 4, "/p", "decay = { expires_after_days = 1 }\n"),
        ];
        // One event every half hour for 75 hours, a quarter of them on other pages.
        let first = at("2026-01-01T00:00:00Z");
        let events: Vec<Event> = (0..150)
            .map(|i| {
                let path = if i % 4 == 3 { "/q" } else { "/p" };
                let when = first + chrono::Duration::minutes(30 * i);
                page(&format!("m{i:03}"), &when.to_rfc3339(), path)
            })
            .collect();
        let now = first + chrono::Duration::minutes(30 * 150);
        let line = |result: &Score, id: &str| -> MessageIds {
            let line = result.contributions.iter().find(|c| c.rule == id).unwrap();
            let Evidence::Events { message_ids, .. } = &line.evidence else {
                panic!()
            };
            message_ids.clone()
        };
        let ids = |ids: MessageIds| -> Vec<String> { ids.iter().map(str::to_string).collect() };
        let together = score(&rules(&all.concat()), &lead(), &events, now, None);
        for (id, text) in ["a", "b", "c", "d", "e", "f"].iter().zip(&all) {
            let alone = score(&rules(text), &lead(), &events, now, None);
            assert_eq!(ids(line(&together, id)), ids(line(&alone, id)), "rule {id}");
        }
        // The last 6 hours hold 9 of the pages, the last day 36 (20 listed).
        assert_eq!(line(&together, "c").len(), 9);
        assert_eq!(line(&together, "f").len(), MAX_EVIDENCE_EVENTS);
        assert_eq!(ids(line(&together, "c"))[0], "m149");
        // The same run for the same events and window, another for another window.
        assert_eq!(line(&together, "a").picks, line(&together, "b").picks);
        assert_eq!(line(&together, "c").picks, line(&together, "e").picks);
        assert_ne!(line(&together, "a").picks, line(&together, "f").picks);
        assert_ne!(line(&together, "c").picks, line(&together, "f").picks);
        // Four runs picked (a and b, c and e, d, f): each listed once.
        let list = line(&together, "a").list.unwrap();
        assert_eq!(list.picks.len(), 3 * MAX_EVIDENCE_EVENTS + 9);
    }

    /// Message ids shared by the lines of a score read, compare, and are written out and
    /// read back as the plain lists of strings they were.
    #[test]
    fn message_ids_read_and_write_as_lists_of_strings() {
        let rules = rules(
            "[[rules]]\nid = \"p\"\ngroup = \"engagement\"\npoints = 1\nevent = { path = \"/p*\" }\ncount = \"every\"\n\
             [[rules]]\nid = \"q\"\ngroup = \"engagement\"\npoints = 2\nevent = { path = \"/pq\" }\n",
        );
        let events = [
            page("a", "2026-01-01T00:00:00Z", "/p"),
            page("b", "2026-01-01T01:00:00Z", "/pq"),
            page("c", "2026-01-01T02:00:00Z", "/p"),
            page("d", "2026-01-01T03:00:00Z", "/pq"),
        ];
        let result = score(&rules, &lead(), &events, at("2026-01-02T00:00:00Z"), None);
        let ids = |line: &Contribution| match &line.evidence {
            Evidence::Events { message_ids, .. } => message_ids.clone(),
            _ => panic!("event evidence"),
        };
        let (p, q) = (ids(&result.contributions[0]), ids(&result.contributions[1]));
        assert_eq!(p, ["d", "c", "b", "a"]);
        assert_eq!(q, ["d", "b"]);
        assert_eq!((p.len(), p.get(1), p.get(4)), (4, Some("c"), None));
        assert_eq!(&q[1], "b");
        assert_eq!(p.iter().rev().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert_eq!(format!("{q:?}"), r#"["d", "b"]"#);
        assert_eq!(serde_json::to_string(&q).unwrap(), r#"["d","b"]"#);
        let read: MessageIds = serde_json::from_str(r#"["d","b"]"#).unwrap();
        assert_eq!(read, q);
        assert_eq!(read, ["d", "b"].into_iter().collect::<MessageIds>());
        assert_ne!(read, p);
        let none: MessageIds = serde_json::from_str("[]").unwrap();
        assert!(none.is_empty() && none == MessageIds::new() && none.iter().next().is_none());
        assert!(serde_json::from_str::<MessageIds>("[1]").is_err());
        let text = serde_json::to_string(&result).unwrap();
        let back: Score = serde_json::from_str(&text).unwrap();
        assert_eq!(back, result);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    /// `prepare` as it was first written (a map by message id, then a comparison sort), as
    /// the reference for the one that sorts on integers.
    fn prepare_reference<'e>(
        rules: &RuleSet,
        events: &'e [Event],
        now: DateTime<Utc>,
    ) -> (Vec<&'e Event>, EventCounts) {
        let mut counts = EventCounts {
            received: events.len(),
            ..EventCounts::default()
        };
        let mut by_id: std::collections::HashMap<&str, &Event> = Default::default();
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
        let mut kept: Vec<&Event> = Vec::new();
        for event in by_id.into_values() {
            if event.timestamp > now {
                counts.future += 1;
            } else if event
                .user_agent
                .as_deref()
                .is_some_and(|agent| rules.filters.is_bot(agent))
            {
                counts.bots += 1;
            } else if rules.filters.is_internal(event) {
                counts.internal_network += 1;
            } else {
                kept.push(event);
            }
        }
        kept.sort_by(|a, b| (a.timestamp, &a.message_id).cmp(&(b.timestamp, &b.message_id)));
        counts.scored = kept.len();
        (kept, counts)
    }

    /// Time keys read the seconds as `DateTime::timestamp` does, whatever the year (before
    /// the common era too), the order of the years and leap seconds.
    #[test]
    fn time_keys_have_the_seconds_of_timestamp() {
        let mut keys = TimeKeys::new();
        for (place, text) in [
            "2026-01-01T00:00:00Z",
            "2025-12-31T23:59:59.999Z",
            "2026-06-30T23:59:60.5Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2024-02-29T12:00:00Z",
            "0001-01-01T00:00:00Z",
            "2026-03-01T08:30:00.25+09:00",
            "9999-12-31T23:59:59Z",
            "2026-07-01T00:00:00Z",
        ]
        .into_iter()
        .enumerate()
        {
            let event = page("m", text, "/p");
            let at = event.timestamp;
            let expected = key_at((at.timestamp(), at.timestamp_subsec_nanos()), place as u32);
            assert_eq!(keys.key(&event, place), expected, "{text}");
        }
        let before = DateTime::<Utc>::MIN_UTC + chrono::Duration::days(400);
        let mut event = page("m", "2026-01-01T00:00:00Z", "/p");
        event.timestamp = before;
        let expected = key_at((before.timestamp(), 0), 3);
        assert_eq!(TimeKeys::new().key(&event, 3), expected);
    }

    /// Numbers below a bound, from a xorshift generator seeded with `seed`.
    fn below(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |bound| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        }
    }

    /// The radix sort of time keys against `sort_unstable`: the first byte in which keys
    /// differ in the seconds' word, in the nanoseconds' word, across the two, and none.
    #[test]
    fn sort_times_orders_keys_as_sort_unstable_whichever_byte_they_first_differ_in() {
        let mut next = below(0x9e37_79b9_7f4a_7c15);
        // (first second, seconds, nanoseconds) spans that put the highest differing byte
        // in each word of a key and across the two, at the first level and in the
        // buckets below it (with more keys than an insertion sort takes):
        let spans: [(i64, i64, u64); 7] = [
            // a day: the seconds' word, then below;
            (1_780_000_000, 86_400, 1_000_000_000),
            // 50 s within 128: across the words, then the nanoseconds' word;
            (1_780_000_010, 50, 1_000_000_000),
            // one second: the nanoseconds' word;
            (1_780_000_000, 1, 1_000_000_000),
            // 20,000 s from a multiple of 2^15: the seconds' word, then across the words;
            (1_779_990_528, 20_000, 1),
            // both sides of 1970: the sign;
            (-200, 400, 1_000_000_000),
            // one instant: none;
            (1_780_000_000, 1, 1),
            // leap seconds' nanoseconds.
            (0, 3, 2_000_000_000),
        ];
        for (case, &(from, seconds, nanos)) in spans.iter().enumerate() {
            for count in [2, 24, 25, 300, 2_000, 5_000] {
                let keys: Vec<u128> = (0..count as u32)
                    .map(|place| {
                        let at = from + next(seconds as u64) as i64;
                        key_at((at, next(nanos) as u32), place)
                    })
                    .collect();
                let mut expected = keys.clone();
                expected.sort_unstable();
                assert_eq!(sort_times(keys), expected, "case {case}, {count} keys");
            }
        }
    }

    #[test]
    fn seen_twice_marks_every_hash_seen_more_than_once() {
        for count in [0usize, 1, 4, 5, 64, 1_000] {
            // Distinct hashes spread over the high bits (Fibonacci hashing); then one
            // repeated three times, and two that share their high bits (and so their bit).
            let mut hashes: Vec<u64> = (1..=count as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let seen = SeenTwice::of(&hashes);
            let once = hashes.iter().filter(|&&h| !seen.twice(h)).count();
            assert!(once * 10 >= count * 9, "{count}: most are told seen once");
            hashes.extend([u64::MAX, u64::MAX, u64::MAX, 1 << 63 | 1, 1 << 63 | 2]);
            let seen = SeenTwice::of(&hashes);
            assert!(seen.twice(u64::MAX), "{count}");
            assert!(
                seen.twice(1 << 63 | 1) && seen.twice(1 << 63 | 2),
                "{count}"
            );
        }
    }

    /// Events in time order, whatever the sort takes (a radix sort over a few bytes of the
    /// time, or a comparison sort), with repeats of message ids at the same and at other
    /// times, ties in time, leap seconds, nanoseconds, future events, bots and internal
    /// traffic; ages and days as chrono works them out.
    #[test]
    fn prepare_keeps_the_same_events_in_the_same_order_as_a_plain_sort() {
        let rules = rules("[filters]\ninternal_ips = [\"10.0.0.0/8\"]\n");
        let now = at("2026-07-01T00:00:00.25Z");
        let mut next = below(0x2545_f491_4f6c_dd1d);
        for case in 0..60 {
            let count = [3, 63, 64, 300, 1000][case % 5];
            // Seconds only, or spread over nanoseconds too, or with leap seconds (more bytes
            // than a radix sort takes).
            let nanos = case % 3 == 0;
            let leap = case % 4 == 1;
            let times = [
                "2026-06-30T23:59:60Z",
                "2026-06-30T23:59:60.5Z",
                "2026-06-30T23:59:59.5Z",
            ];
            let events: Vec<Event> = (0..count)
                .map(|i| {
                    let id = if next(4) == 0 { next(count / 2 + 1) } else { i };
                    let when = if leap && next(10) == 0 {
                        times[next(3) as usize].to_string()
                    } else {
                        let minutes = next(200 * 24 * 60) as i64 - 10;
                        let mut when =
                            at("2026-01-01T00:00:00Z") + chrono::Duration::minutes(minutes);
                        if nanos {
                            when += chrono::Duration::nanoseconds(next(1_000_000_000) as i64);
                        } else if next(8) == 0 {
                            when = at("2026-03-01T00:00:00Z");
                        }
                        when.to_rfc3339()
                    };
                    let agent = ["Mozilla/5.0", "Googlebot/2.1", "curl/8"][next(3) as usize];
                    let ip = ["10.1.2.3", "203.0.113.9"][next(2) as usize];
                    Event::from_segment(&json!({"type": "page", "messageId": format!("m{id}"),
                        "userId": format!("L{}", next(2)), "timestamp": when,
                        "context": {"page": {"path": "/p"}, "userAgent": agent, "ip": ip}}))
                    .unwrap()
                })
                .collect();
            let (seen, counts) = prepare(&rules, &events, now);
            let (expected, expected_counts) = prepare_reference(&rules, &events, now);
            assert_eq!(counts, expected_counts, "case {case}");
            assert_eq!(seen.len(), expected.len(), "case {case}");
            for (seen, expected) in seen.iter().zip(&expected) {
                assert!(std::ptr::eq(seen.event, *expected), "case {case}");
                assert_eq!(seen.age, now - expected.timestamp, "case {case}");
                let local = expected.timestamp + chrono::Duration::hours(9);
                let day = local.date_naive() - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
                assert_eq!(seen.day, day.num_days(), "case {case}");
            }
        }
    }
}
