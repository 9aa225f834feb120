//! The event matchers of a rule set, laid out for matching many events at once.
//!
//! Every behaviour rule and alert has an [`EventMatcher`]: glob patterns on event fields
//! (name, path, referrer, the five UTM tags, properties). Rules share fields and often
//! patterns, so the plan lists, per field ("slot"), the distinct patterns used on it,
//! compiled into one [`RegexSet`]; each matcher becomes a set of event types and a list of
//! (slot, pattern) tests. The scorer then matches each distinct value of a slot once
//! against every pattern of that slot (see `crate::score`), instead of every event
//! against every rule.

use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::event::{Event, EventType};
use crate::normalize;

use super::{AlertRule, EventMatcher, MAX_REGEX_SIZE, Rule, RuleKind};

/// Which event field a slot reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field {
    Name,
    Path,
    Referrer,
    /// utm_source, utm_medium, utm_campaign, utm_term, utm_content.
    Utm(usize),
    /// A property, read as text (see [`Event::property_text`]).
    Property(String),
}

/// What an event holds in a slot, before property text is normalised.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'e> {
    /// Text matched as it is.
    Text(&'e str),
    /// A property string, matched after [`normalize::text`].
    Raw(&'e str),
    /// A number or boolean property, matched as its JSON text.
    Other(&'e serde_json::Value),
}

impl<'e> Value<'e> {
    /// The text the patterns are matched against.
    pub(crate) fn text(self) -> std::borrow::Cow<'e, str> {
        match self {
            Value::Text(text) => text.into(),
            Value::Raw(raw) => normalize::text(raw).into(),
            Value::Other(value) => match value {
                serde_json::Value::Number(n) => n.to_string().into(),
                serde_json::Value::Bool(b) => b.to_string().into(),
                _ => "".into(),
            },
        }
    }
}

impl Field {
    /// The event's value in this field, if it has one.
    #[inline]
    pub(crate) fn read<'e>(&self, event: &'e Event) -> Option<Value<'e>> {
        let text = |v: &'e Option<String>| v.as_deref().map(Value::Text);
        match self {
            Field::Name => text(&event.name),
            Field::Path => text(&event.path),
            Field::Referrer => text(&event.referrer),
            Field::Utm(i) => {
                let c = &event.campaign;
                text([&c.source, &c.medium, &c.name, &c.term, &c.content][*i])
            }
            Field::Property(key) => match event.properties.get(key)? {
                serde_json::Value::String(s) => Some(Value::Raw(s)),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                    Some(Value::Other(v))
                }
                _ => None,
            },
        }
    }
}

/// One field and the distinct patterns rules use on it.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub field: Field,
    /// The distinct patterns, by their regular expression, in first-use order.
    pub sources: Vec<String>,
    /// The same patterns as one set: one pass over a value says which of them match.
    pub set: RegexSet,
    /// The event types (a bit each, as in [`Planned::kinds`]) that some matcher testing
    /// this slot takes: the only events whose value in it is read.
    pub kinds: u8,
}

/// One matcher: the event types it takes (a bit per [`EventType`], all set for any) and
/// the (slot, pattern) tests that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Planned {
    pub kinds: u8,
    pub tests: Vec<(usize, usize)>,
}

/// The matchers of a rule set: behaviour rules first, then alerts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub slots: Vec<Slot>,
    pub matchers: Vec<Planned>,
    /// For each rule, its matcher (behaviour rules) or `None` (attribute rules).
    pub rule_matcher: Vec<Option<usize>>,
    /// For each alert, its matcher.
    pub alert_matcher: Vec<usize>,
    /// For each matcher, the first matcher equal to it (itself when none is before it):
    /// rules often repeat a matcher, which takes the same events every time.
    pub same_as: Vec<usize>,
}

/// The bit of an event type in [`Planned::kinds`].
pub(crate) fn kind_bit(kind: EventType) -> u8 {
    1 << (kind as u8)
}

impl Plan {
    /// The plan of `rules` and `alerts`. Fails only when a set of patterns, each of which
    /// compiled alone, is too large together.
    pub(crate) fn new(rules: &[Rule], alerts: &[AlertRule]) -> Result<Plan, regex::Error> {
        let mut builder = Builder::default();
        let mut plan = Plan::default();
        for rule in rules {
            plan.rule_matcher.push(match &rule.kind {
                RuleKind::Behaviour(b) => Some(builder.matcher(&b.matcher)),
                RuleKind::Attribute(_) => None,
            });
        }
        for alert in alerts {
            plan.alert_matcher.push(builder.matcher(&alert.matcher));
        }
        plan.matchers = builder.matchers;
        for (field, sources) in builder.slots {
            let set = RegexSetBuilder::new(&sources)
                .dot_matches_new_line(true)
                .size_limit(MAX_REGEX_SIZE * sources.len().max(1))
                .build()?;
            plan.slots.push(Slot {
                field,
                sources,
                set,
                kinds: 0,
            });
        }
        for matcher in &plan.matchers {
            for &(slot, _) in &matcher.tests {
                plan.slots[slot].kinds |= matcher.kinds;
            }
        }
        let mut first = std::collections::HashMap::new();
        plan.same_as = (0..plan.matchers.len())
            .map(|m| *first.entry(&plan.matchers[m]).or_insert(m))
            .collect();
        Ok(plan)
    }

    /// Whether the plan was made for this many rules and alerts (the rule set's fields
    /// are public, so a caller may have changed them since).
    pub(crate) fn fits(&self, rules: usize, alerts: usize) -> bool {
        self.rule_matcher.len() == rules && self.alert_matcher.len() == alerts
    }
}

#[derive(Default)]
struct Builder {
    slots: Vec<(Field, Vec<String>)>,
    matchers: Vec<Planned>,
}

impl Builder {
    fn test(&mut self, field: Field, source: &str) -> (usize, usize) {
        let slot = match self.slots.iter().position(|(f, _)| *f == field) {
            Some(slot) => slot,
            None => {
                self.slots.push((field, Vec::new()));
                self.slots.len() - 1
            }
        };
        let sources = &mut self.slots[slot].1;
        let pattern = match sources.iter().position(|s| s == source) {
            Some(pattern) => pattern,
            None => {
                sources.push(source.to_string());
                sources.len() - 1
            }
        };
        (slot, pattern)
    }

    fn matcher(&mut self, matcher: &EventMatcher) -> usize {
        let kinds = match &matcher.types {
            None => u8::MAX,
            Some(types) => types.iter().fold(0, |bits, k| bits | kind_bit(*k)),
        };
        let mut tests = Vec::new();
        let fields = [
            (Field::Name, &matcher.name),
            (Field::Path, &matcher.path),
            (Field::Referrer, &matcher.referrer),
        ]
        .into_iter()
        .chain(
            matcher
                .utm
                .iter()
                .enumerate()
                .map(|(i, p)| (Field::Utm(i), p)),
        );
        for (field, patterns) in fields {
            if let Some(patterns) = patterns {
                tests.push(self.test(field, patterns.0.as_str()));
            }
        }
        for (key, patterns) in &matcher.properties {
            tests.push(self.test(Field::Property(key.clone()), patterns.0.as_str()));
        }
        self.matchers.push(Planned { kinds, tests });
        self.matchers.len() - 1
    }
}
