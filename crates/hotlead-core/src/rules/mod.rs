//! The rules language: a versioned rule set, read from TOML, validated once, then used
//! by [`crate::score`] as compiled matchers.

mod compile;
pub mod locate;
mod plan;
pub mod raw;

use std::fmt;
use std::net::IpAddr;

use chrono::{Duration, FixedOffset};
use regex::Regex;
use serde::Serialize;

pub(crate) use compile::MAX_REGEX_SIZE;
pub use compile::{Diagnostic, RulesError};
pub(crate) use plan::{Field, Plan, Slot, Value};
pub use raw::json_schema;

use crate::event::{Event, EventType};
use crate::index::same_text;
use crate::lead::{AttributeValue, Lead};
use crate::points::Points;
use crate::score::SharedText;

/// The seed rules (`examples/rules/seed.toml`): the default when no rules file is given.
pub const SEED: &str = include_str!("../../../../examples/rules/seed.toml");

/// Cold, warm or hot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Cold,
    Warm,
    Hot,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Cold => "cold",
            Band::Warm => "warm",
            Band::Hot => "hot",
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of the grade a group counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    Fit,
    Engagement,
    None,
}

/// A validated rule set.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub name: String,
    pub version: u32,
    pub description: Option<String>,
    /// Where a day starts, for per-day caps.
    pub utc_offset: FixedOffset,
    pub bands: Bands,
    pub grade: Grade,
    pub groups: Vec<Group>,
    pub rules: Vec<Rule>,
    pub alerts: Vec<AlertRule>,
    pub filters: Filters,
    /// Lead stages and what reps may do (`[[stages]]`, `[follow_up]`).
    pub stages: crate::stage::Stages,
    /// The event matchers of `rules` and `alerts`, laid out for the scorer.
    pub(crate) plan: Plan,
    /// Per rule, its id, label and group id as shared text (see [`RuleSet::texts`]).
    pub(crate) texts: Vec<RuleTexts>,
}

/// A rule's id, label and group id as shared text, as a rule kept for the life of the
/// process (see [`SharedText::keep_all`]): an explanation names every rule it counts, and
/// sharing the rule set's words costs less than copying them.
#[derive(Debug, Clone)]
pub(crate) struct RuleTexts {
    pub id: SharedText,
    pub label: SharedText,
    pub group: SharedText,
}

impl RuleTexts {
    /// The texts counted (not kept): for a rule changed after its rule set was made.
    fn of(rule: &Rule, groups: &[Group]) -> RuleTexts {
        RuleTexts {
            id: rule.id.as_str().into(),
            label: rule.label.as_str().into(),
            group: groups[rule.group].id.as_str().into(),
        }
    }
}

/// Band thresholds with hysteresis.
#[derive(Debug, Clone, PartialEq)]
pub struct Bands {
    pub hot: Points,
    pub hot_exit: Points,
    pub warm: Points,
    pub warm_exit: Points,
}

impl Bands {
    /// The band for `score`, given the band the lead had before (hysteresis: a hot lead
    /// stays hot down to `hot_exit`).
    pub fn band_for(&self, score: Points, previous: Option<Band>) -> Band {
        let was = previous.unwrap_or(Band::Cold);
        if score >= self.hot || (was == Band::Hot && score >= self.hot_exit) {
            Band::Hot
        } else if score >= self.warm || (was >= Band::Warm && score >= self.warm_exit) {
            Band::Warm
        } else {
            Band::Cold
        }
    }
}

/// Fit letter and engagement digit thresholds, highest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    pub fit: Vec<Points>,
    pub engagement: Vec<Points>,
}

impl Grade {
    /// `A1` for the best fit and engagement; the letter after the last threshold for
    /// anything below it.
    pub fn grade_for(&self, fit: Points, engagement: Points) -> String {
        let rank = |thresholds: &[Points], points: Points| {
            thresholds
                .iter()
                .position(|t| points >= *t)
                .unwrap_or(thresholds.len())
        };
        let letter = (b'A' + rank(&self.fit, fit) as u8) as char;
        let digit = rank(&self.engagement, engagement) + 1;
        format!("{letter}{digit}")
    }

    /// The grade below every threshold (`D4` for three thresholds on each side).
    pub fn lowest(&self) -> String {
        format!(
            "{}{}",
            (b'A' + self.fit.len() as u8) as char,
            self.engagement.len() + 1
        )
    }
}

/// A score group.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub label: String,
    pub axis: Axis,
    pub max: Option<Points>,
    pub min: Option<Points>,
}

/// How behaviour points fade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    None,
    /// Positive points halve every this many days.
    HalfLife {
        days: f64,
    },
    /// Points drop to zero after this many days.
    Expires {
        days: f64,
    },
}

impl Decay {
    /// The factor applied to `points` awarded for an event `age` old.
    pub fn factor(&self, points: Points, age: Duration) -> f64 {
        let days = age.num_milliseconds().max(0) as f64 / 86_400_000.0;
        match *self {
            Decay::None => 1.0,
            Decay::HalfLife { .. } if points.is_negative() => 1.0,
            Decay::HalfLife { days: half_life } => 0.5_f64.powf(days / half_life),
            Decay::Expires { days: limit } => {
                if days <= limit {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// One scoring rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub label: String,
    /// Index into [`RuleSet::groups`].
    pub group: usize,
    pub points: Points,
    pub kind: RuleKind,
    pub max_band: Option<Band>,
    pub min_band: Option<Band>,
}

/// An attribute (fit) or behaviour (engagement) rule.
// Rules are built once per rule set and never moved on the scoring path; boxing the
// larger variant would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RuleKind {
    Attribute(Condition),
    Behaviour(Behaviour),
}

/// How a behaviour rule counts events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Once { at_least: u32 },
    Every,
}

/// The behaviour part of a rule.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub matcher: EventMatcher,
    pub count: Count,
    pub within: Option<Duration>,
    pub cap: Option<Points>,
    pub daily_cap: Option<Points>,
    pub decay: Decay,
}

/// An instant alert.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub id: String,
    pub label: String,
    pub matcher: EventMatcher,
    pub when: Option<Condition>,
    pub within: Duration,
    /// At most one alert of the rule per lead within this time (zero: every action).
    pub once_per: Duration,
}

/// A condition on attributes.
#[derive(Debug, Clone)]
pub enum Condition {
    Attribute {
        attribute: String,
        tests: Vec<AttributeTest>,
    },
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// One test on an attribute value. Text tests compare normalised values.
#[derive(Debug, Clone)]
pub enum AttributeTest {
    AtLeast(f64),
    Above(f64),
    AtMost(f64),
    Below(f64),
    OneOf(Vec<String>),
    /// A domain equal to, or a subdomain of, one of these.
    DomainIn(Vec<String>),
    Contains(Vec<String>),
    Matches(Regex),
    Present(bool),
}

impl AttributeTest {
    fn holds(&self, value: Option<&AttributeValue>) -> bool {
        let number = value.and_then(|v| v.number.as_ref());
        let text = value.map(|v| v.value.as_str());
        match self {
            AttributeTest::Present(wanted) => value.is_some() == *wanted,
            AttributeTest::AtLeast(t) => number.is_some_and(|n| n.all_at_least(*t)),
            AttributeTest::Above(t) => number.is_some_and(|n| n.all_above(*t)),
            AttributeTest::AtMost(t) => number.is_some_and(|n| n.all_at_most(*t)),
            AttributeTest::Below(t) => number.is_some_and(|n| n.all_below(*t)),
            AttributeTest::OneOf(options) => text.is_some_and(|t| options.iter().any(|o| o == t)),
            AttributeTest::DomainIn(domains) => text.is_some_and(|t| in_domains(domains, t)),
            AttributeTest::Contains(keywords) => {
                text.is_some_and(|t| keywords.iter().any(|k| t.contains(k.as_str())))
            }
            AttributeTest::Matches(regex) => text.is_some_and(|t| regex.is_match(t)),
        }
    }
}

/// Whether `domain` is one of `domains` or a subdomain of one.
fn in_domains(domains: &[String], domain: &str) -> bool {
    domains.iter().any(|d| {
        domain == d
            || (domain.len() > d.len()
                && domain.ends_with(d.as_str())
                && domain[..domain.len() - d.len()].ends_with('.'))
    })
}

impl Condition {
    /// Whether the condition holds for `lead` (as [`Condition::looked_at`] says, without
    /// collecting what it looked at).
    pub fn holds(&self, lead: &Lead) -> bool {
        match self {
            Condition::Attribute { attribute, tests } => {
                let value = lead.get(attribute);
                tests.iter().all(|test| test.holds(value))
            }
            Condition::All(conditions) => conditions.iter().all(|c| c.holds(lead)),
            Condition::Any(conditions) => conditions.iter().any(|c| c.holds(lead)),
            Condition::Not(condition) => !condition.holds(lead),
        }
    }

    /// Whether the condition holds for `lead`, as [`Condition::holds`]; `looked_at`
    /// collects the attributes it looked at, in order, once each, with their values:
    /// borrowed, for the scorer to copy only those it writes out.
    pub(crate) fn looked_at<'c, 'l>(
        &'c self,
        lead: &'l Lead,
        looked_at: &mut Vec<(&'c str, Option<&'l AttributeValue>)>,
    ) -> bool {
        match self {
            Condition::Attribute { attribute, tests } => {
                let value = lead.get(attribute);
                if !looked_at.iter().any(|(a, _)| a == attribute) {
                    looked_at.push((attribute, value));
                }
                tests.iter().all(|test| test.holds(value))
            }
            Condition::All(conditions) => conditions.iter().all(|c| c.looked_at(lead, looked_at)),
            Condition::Any(conditions) => conditions.iter().any(|c| c.looked_at(lead, looked_at)),
            Condition::Not(condition) => !condition.looked_at(lead, looked_at),
        }
    }
}

/// Glob patterns compiled into one regular expression: `*` matches anything, matching is
/// case-insensitive, any one pattern may match.
#[derive(Debug, Clone)]
pub struct Patterns(pub(crate) regex::bytes::Regex);

impl Patterns {
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text.as_bytes())
    }
}

/// A compiled event matcher: every given part must match.
#[derive(Debug, Clone, Default)]
pub struct EventMatcher {
    pub types: Option<Vec<EventType>>,
    pub name: Option<Patterns>,
    pub path: Option<Patterns>,
    pub referrer: Option<Patterns>,
    pub properties: Vec<(String, Patterns)>,
    /// utm_source, utm_medium, utm_campaign, utm_term, utm_content.
    pub utm: [Option<Patterns>; 5],
}

fn glob_matches(set: &Option<Patterns>, value: Option<&str>) -> bool {
    match set {
        None => true,
        Some(set) => value.is_some_and(|v| set.is_match(v)),
    }
}

impl EventMatcher {
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(types) = &self.types
            && !types.contains(&event.kind)
        {
            return false;
        }
        let campaign = &event.campaign;
        let utm = [
            &campaign.source,
            &campaign.medium,
            &campaign.name,
            &campaign.term,
            &campaign.content,
        ];
        glob_matches(&self.name, event.name.as_deref())
            && glob_matches(&self.path, event.path.as_deref())
            && glob_matches(&self.referrer, event.referrer.as_deref())
            && self
                .utm
                .iter()
                .zip(utm)
                .all(|(set, value)| glob_matches(set, value.as_deref()))
            && self.properties.iter().all(|(key, set)| {
                event
                    .property_text(key)
                    .is_some_and(|text| set.is_match(&text))
            })
    }
}

/// Built-in user-agent fragments of bots, crawlers, mail link scanners and HTTP libraries.
pub const BUILTIN_BOT_USER_AGENTS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "python-requests",
    "python-urllib",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "httpclient",
    "barracuda",
    "proofpoint",
    "mimecast",
    "safelinks",
    "trendmicro",
    "symantec",
    "forcepoint",
    "scanner",
    "preview",
];

/// Event and lead filters.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Lower-cased user-agent fragments.
    pub bot_user_agents: Vec<String>,
    /// The same fragments as one case-insensitive regular expression: one pass over a
    /// user agent instead of one search per fragment.
    pub(crate) bot_matcher: Option<regex::Regex>,
    pub internal_networks: Vec<Network>,
    pub internal_email_domains: Vec<String>,
}

/// Why an event was dropped before scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Bot,
    InternalNetwork,
}

impl Filters {
    pub fn drops(&self, event: &Event) -> Option<Dropped> {
        if event.user_agent.as_deref().is_some_and(|a| self.is_bot(a)) {
            return Some(Dropped::Bot);
        }
        self.is_internal(event).then_some(Dropped::InternalNetwork)
    }

    /// Whether a user agent is a bot's.
    pub fn is_bot(&self, user_agent: &str) -> bool {
        self.bot_matcher
            .as_ref()
            .is_some_and(|bots| bots.is_match(user_agent))
    }

    /// Whether the event came from an internal network.
    pub fn is_internal(&self, event: &Event) -> bool {
        event
            .ip
            .is_some_and(|ip| self.internal_networks.iter().any(|n| n.contains(ip)))
    }

    pub fn is_internal_email(&self, email_domain: &str) -> bool {
        in_domains(&self.internal_email_domains, email_domain)
    }
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) if self.address.is_ipv4() => (u32::from(v4) as u128, 32),
                    _ => (u128::from(v6), 128),
                },
            }
        };
        let (net, width) = bits(self.address);
        let (candidate, candidate_width) = bits(ip);
        if width != candidate_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        if shift >= 128 {
            return true;
        }
        (net >> shift) == (candidate >> shift)
    }
}

impl RuleSet {
    /// Reads and validates a rules file. `file` names the file in error messages.
    pub fn from_toml(file: &str, source: &str) -> Result<RuleSet, RulesError> {
        compile::compile(file, source)
    }

    pub fn group(&self, index: usize) -> &Group {
        &self.groups[index]
    }

    /// The texts of every rule, for a new rule set: shared by all its scores, and kept for
    /// the life of the process (within the bound of [`SharedText::keep_all`]).
    pub(crate) fn texts_of(rules: &[Rule], groups: &[Group]) -> Vec<RuleTexts> {
        SharedText::keep_all(|keep| {
            (rules.iter())
                .map(|rule| RuleTexts {
                    id: keep(&rule.id),
                    label: keep(&rule.label),
                    group: keep(&groups[rule.group].id),
                })
                .collect()
        })
    }

    /// The id, label and group id of rule `index`: those kept with the rule set, unless the
    /// rule (whose fields are public) was changed since. The check compares the texts
    /// inline: they are short, and every score makes it for every rule it counts.
    pub(crate) fn texts(&self, index: usize) -> RuleTexts {
        let rule = &self.rules[index];
        match self.texts.get(index) {
            Some(texts)
                if same_text(&texts.id, &rule.id)
                    && same_text(&texts.label, &rule.label)
                    && same_text(&texts.group, &self.group(rule.group).id) =>
            {
                texts.clone()
            }
            _ => RuleTexts::of(rule, &self.groups),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let net = Network::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one = Network::parse("203.0.113.9").unwrap();
        assert!(one.contains("203.0.113.9".parse().unwrap()));
        assert!(!one.contains("203.0.113.10".parse().unwrap()));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("nope"), None);
    }

    #[test]
    fn bands_have_hysteresis() {
        let bands = Bands {
            hot: Points::whole(80),
            hot_exit: Points::whole(70),
            warm: Points::whole(40),
            warm_exit: Points::whole(30),
        };
        assert_eq!(bands.band_for(Points::whole(80), None), Band::Hot);
        assert_eq!(bands.band_for(Points::whole(75), None), Band::Warm);
        assert_eq!(
            bands.band_for(Points::whole(75), Some(Band::Hot)),
            Band::Hot
        );
        assert_eq!(
            bands.band_for(Points::from_f64(69.99), Some(Band::Hot)),
            Band::Warm
        );
        assert_eq!(
            bands.band_for(Points::whole(35), Some(Band::Hot)),
            Band::Warm
        );
        assert_eq!(
            bands.band_for(Points::whole(35), Some(Band::Cold)),
            Band::Cold
        );
        assert_eq!(
            bands.band_for(Points::whole(29), Some(Band::Warm)),
            Band::Cold
        );
    }

    #[test]
    fn grades_combine_fit_letter_and_engagement_digit() {
        let grade = Grade {
            fit: vec![Points::whole(60), Points::whole(40), Points::whole(20)],
            engagement: vec![Points::whole(60), Points::whole(30), Points::whole(10)],
        };
        assert_eq!(grade.grade_for(Points::whole(60), Points::whole(60)), "A1");
        assert_eq!(grade.grade_for(Points::whole(45), Points::whole(10)), "B3");
        assert_eq!(grade.grade_for(Points::whole(-5), Points::ZERO), "D4");
    }

    #[test]
    fn half_life_decay_spares_penalties() {
        let decay = Decay::HalfLife { days: 30.0 };
        assert!((decay.factor(Points::whole(10), Duration::days(30)) - 0.5).abs() < 1e-12);
        assert_eq!(decay.factor(Points::whole(-10), Duration::days(30)), 1.0);
        let expiry = Decay::Expires { days: 7.0 };
        assert_eq!(expiry.factor(Points::whole(-10), Duration::days(8)), 0.0);
        assert_eq!(expiry.factor(Points::whole(10), Duration::days(7)), 1.0);
    }
}
