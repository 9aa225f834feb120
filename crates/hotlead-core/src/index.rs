//! Which events each matcher of a rule set takes, worked out once per score.
//!
//! Events are grouped by what the matchers can see of them: their type and their value in
//! each slot of the [`Plan`] (name, path, UTM tags, properties the rules look at). Each
//! distinct value of a slot is matched once against all the slot's patterns (one
//! [`regex::bytes::RegexSet`] pass), each group once against every matcher, and each
//! matcher ends with a bit set over the events in time order. Scoring then reads bits:
//! no pattern is run per event and rule, and nothing is allocated per event.

use std::collections::HashMap;
use std::hash::Hash;

use foldhash::fast::RandomState;

use crate::event::Event;
use crate::rules::{EventMatcher, Plan, Value, kind_bit};

/// A map with a fast hash, seeded per process (an event's fields are chosen by whoever
/// sends it, so the hash must not be predictable).
pub(crate) type FastMap<K, V> = HashMap<K, V, RandomState>;

pub(crate) fn fast_map<K: Hash + Eq, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, RandomState::default())
}

/// An interned slot value: texts and property strings by their text, numbers and booleans
/// by their JSON value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'e> {
    Text(&'e str),
    Number(&'e serde_json::Number),
    Bool(bool),
}

impl<'e> From<Value<'e>> for Key<'e> {
    fn from(value: Value<'e>) -> Self {
        match value {
            Value::Text(text) | Value::Raw(text) => Key::Text(text),
            Value::Other(serde_json::Value::Number(n)) => Key::Number(n),
            Value::Other(serde_json::Value::Bool(b)) => Key::Bool(*b),
            Value::Other(_) => Key::Text(""),
        }
    }
}

/// Trie nodes below this are the roots, one per event type.
const ROOTS: u32 = 8;

/// For every matcher of a plan, the events it takes, as bits over event positions.
#[derive(Debug)]
pub(crate) struct Index {
    words: usize,
    bits: Vec<u64>,
}

impl Index {
    /// Matches `events` (in the order their positions will be read) against every matcher
    /// of `plan`.
    pub(crate) fn new<'e>(plan: &Plan, events: impl ExactSizeIterator<Item = &'e Event>) -> Index {
        let n = events.len();
        let words = n.div_ceil(64);
        let slots = plan.slots.len();

        // Group the events: a trie over (slot, value) steps, from a root per event type;
        // absent values take no step. A node made by a step knows which of the slot's
        // patterns its value matches: each value is matched once per distinct prefix.
        let mut trie: FastMap<(u32, u32, Key<'e>), u32> = fast_map(64);
        let mut hits: Vec<bool> = Vec::new();
        let mut hits_at: Vec<usize> = vec![0; ROOTS as usize];
        let mut node_group: Vec<u32> = Vec::new();
        let mut rows: Vec<u32> = Vec::new();
        let mut kinds: Vec<u8> = Vec::new();
        let mut group_of: Vec<u32> = Vec::with_capacity(n);
        let mut row = vec![0u32; slots];
        for event in events {
            let mut node = event.kind as u32;
            for (s, slot) in plan.slots.iter().enumerate() {
                row[s] = 0;
                let Some(value) = slot.field.read(event) else {
                    continue;
                };
                node = *trie
                    .entry((node, s as u32, Key::from(value)))
                    .or_insert_with(|| {
                        hits_at.push(hits.len());
                        let at = hits.len();
                        hits.resize(at + slot.sources.len(), false);
                        for p in slot.set.matches(value.text().as_bytes()).iter() {
                            hits[at + p] = true;
                        }
                        (hits_at.len() - 1) as u32
                    });
                row[s] = node;
            }
            let node = node as usize;
            if node_group.len() <= node {
                node_group.resize(node + 1, u32::MAX);
            }
            if node_group[node] == u32::MAX {
                node_group[node] = kinds.len() as u32;
                kinds.push(kind_bit(event.kind));
                rows.extend_from_slice(&row);
            }
            group_of.push(node_group[node]);
        }
        let groups = kinds.len();

        // The events of each group, in position order.
        let mut starts = vec![0usize; groups + 1];
        for &g in &group_of {
            starts[g as usize + 1] += 1;
        }
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let mut fill = starts.clone();
        let mut members = vec![0u32; n];
        for (position, &g) in group_of.iter().enumerate() {
            members[fill[g as usize]] = position as u32;
            fill[g as usize] += 1;
        }

        // Each group against every matcher, then the matcher's bits.
        let mut bits = vec![0u64; plan.matchers.len() * words];
        for (m, matcher) in plan.matchers.iter().enumerate() {
            let set = &mut bits[m * words..(m + 1) * words];
            for g in 0..groups {
                if matcher.kinds & kinds[g] == 0 {
                    continue;
                }
                let row = &rows[g * slots..(g + 1) * slots];
                let takes = matcher.tests.iter().all(|&(s, p)| {
                    let node = row[s] as usize;
                    node != 0 && hits[hits_at[node] + p]
                });
                if takes {
                    for &position in &members[starts[g]..starts[g + 1]] {
                        set[position as usize / 64] |= 1 << (position % 64);
                    }
                }
            }
        }
        Index { words, bits }
    }

    /// The same bits, worked out by running every matcher on every event: for a rule set
    /// whose plan cannot be made, and as the reference the tests compare with.
    pub(crate) fn each<'e>(
        matchers: &[&EventMatcher],
        events: impl ExactSizeIterator<Item = &'e Event>,
    ) -> Index {
        let words = events.len().div_ceil(64);
        let mut bits = vec![0u64; matchers.len() * words];
        for (position, event) in events.enumerate() {
            for (m, matcher) in matchers.iter().enumerate() {
                if matcher.matches(event) {
                    bits[m * words + position / 64] |= 1 << (position % 64);
                }
            }
        }
        Index { words, bits }
    }

    /// The events `matcher` takes.
    pub(crate) fn events(&self, matcher: usize) -> Bits<'_> {
        Bits(&self.bits[matcher * self.words..(matcher + 1) * self.words])
    }
}

/// A set of event positions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bits<'a>(&'a [u64]);

impl Bits<'_> {
    /// The word `w` without the positions before `start`.
    fn word(self, w: usize, start: usize) -> u64 {
        let word = self.0[w];
        if w == start / 64 {
            word & (u64::MAX << (start % 64))
        } else {
            word
        }
    }

    /// Calls `each` with the positions from `start` on, in increasing order.
    pub(crate) fn each_from(self, start: usize, mut each: impl FnMut(usize)) {
        for w in start / 64..self.0.len() {
            let mut word = self.word(w, start);
            while word != 0 {
                each(w * 64 + word.trailing_zeros() as usize);
                word &= word - 1;
            }
        }
    }

    /// The first position from `start` on.
    pub(crate) fn first_from(self, start: usize) -> Option<usize> {
        (start / 64..self.0.len()).find_map(|w| {
            let word = self.word(w, start);
            (word != 0).then(|| w * 64 + word.trailing_zeros() as usize)
        })
    }

    /// Up to `limit` positions from `start` on, the last first.
    pub(crate) fn last_from(self, start: usize, limit: usize) -> impl Iterator<Item = usize> {
        (start / 64..self.0.len())
            .rev()
            .flat_map(move |w| {
                let mut word = self.word(w, start);
                std::iter::from_fn(move || {
                    (word != 0).then(|| {
                        let bit = 63 - word.leading_zeros() as usize;
                        word &= !(1 << bit);
                        w * 64 + bit
                    })
                })
            })
            .take(limit)
    }

    /// How many positions from `start` on.
    pub(crate) fn count_from(self, start: usize) -> usize {
        (start / 64..self.0.len())
            .map(|w| self.word(w, start).count_ones() as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::RuleSet;

    /// Every matcher's bits from the plan equal those of running the matcher on every
    /// event, over events that vary every field the patterns read.
    #[test]
    fn the_plan_takes_exactly_the_events_each_matcher_takes() {
        let rules = RuleSet::from_toml(
            "t.toml",
            r#"name = "t"
version = 1
[bands]
hot = 50
hot_exit = 40
warm = 20
[groups.e]
axis = "engagement"
[[rules]]
id = "pricing"
group = "e"
points = 1
event = { type = "page", path = "/pricing*" }
[[rules]]
id = "pricing_any_type"
group = "e"
points = 1
event = { path = ["/PRICING", "/docs/**"] }
[[rules]]
id = "download"
group = "e"
points = 1
event = { type = ["track", "screen"], name = "Document*", properties = { category = "white*" } }
[[rules]]
id = "numbers"
group = "e"
points = 1
event = { properties = { seats = "1?", trial = "true" } }
[[rules]]
id = "paid"
group = "e"
points = 1
event = { utm_medium = ["cpc", "paid*"], utm_source = "google" }
[[rules]]
id = "from_search"
group = "e"
points = 1
event = { referrer = "*google*" }
[[rules]]
id = "anything"
group = "e"
points = 1
event = {}
[[alerts]]
id = "demo"
event = { type = "track", name = "Demo Requested" }
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let paths = [
            "/pricing",
            "/Pricing/Enterprise",
            "/docs/api",
            "/blog",
            "/pricing",
        ];
        let names = [
            "Document Downloaded",
            "document viewed",
            "Demo Requested",
            "Signup",
        ];
        let categories = [
            json!("Whitepaper"),
            json!("ＷＨＩＴＥ paper"),
            json!("case"),
            json!(12),
        ];
        let seats = [json!(12), json!("13"), json!(1), json!(true)];
        let trials = [json!(true), json!("TRUE"), json!(false)];
        let mediums = [None, Some("cpc"), Some("Paid-Social"), Some("email")];
        let sources = [None, Some("google"), Some("bing")];
        let mut events = Vec::new();
        for i in 0..400usize {
            let mut url = format!("https://x.example{}", paths[i % paths.len()]);
            let mut query = Vec::new();
            if let Some(m) = mediums[i % mediums.len()] {
                query.push(format!("utm_medium={m}"));
            }
            if let Some(s) = sources[(i / 3) % sources.len()] {
                query.push(format!("utm_source={s}"));
            }
            if !query.is_empty() {
                url += &format!("?{}", query.join("&"));
            }
            let value = match i % 3 {
                0 => json!({"type": "page", "messageId": format!("m{i}"), "userId": "L",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "context": {"page": {"url": url, "referrer": if i % 5 == 0 { "https://www.google.com/" } else { "" }}}}),
                1 => json!({"type": "track", "messageId": format!("m{i}"), "userId": "L",
                    "timestamp": "2026-01-01T00:00:00Z", "event": names[i % names.len()],
                    "properties": {"category": categories[(i / 2) % categories.len()],
                                   "seats": seats[i % seats.len()], "trial": trials[i % trials.len()]},
                    "context": {"page": {"url": url}}}),
                _ => json!({"type": "screen", "messageId": format!("m{i}"), "userId": "L",
                    "timestamp": "2026-01-01T00:00:00Z", "name": names[(i / 3) % names.len()],
                    "properties": {"category": categories[i % categories.len()]}}),
            };
            events.push(Event::from_segment(&value).unwrap_or_else(|e| panic!("{e}")));
        }
        let matchers: Vec<&EventMatcher> = rules
            .rules
            .iter()
            .filter_map(|r| match &r.kind {
                crate::rules::RuleKind::Behaviour(b) => Some(&b.matcher),
                crate::rules::RuleKind::Attribute(_) => None,
            })
            .chain(rules.alerts.iter().map(|a| &a.matcher))
            .collect();
        let planned = Index::new(&rules.plan, events.iter());
        let each = Index::each(&matchers, events.iter());
        assert_eq!(planned.bits, each.bits);
        // Every matcher takes some events and leaves some: the comparison is not vacuous.
        for m in 0..matchers.len() {
            let taken = planned.events(m).count_from(0);
            assert!(
                taken > 0 && (taken < events.len() || m == 6),
                "matcher {m} takes {taken}"
            );
        }
    }

    #[test]
    fn bits_read_from_a_start() {
        let words = [0b1011u64, 0, 1 << 63, 1];
        let bits = Bits(&words);
        let mut all = Vec::new();
        bits.each_from(1, |p| all.push(p));
        assert_eq!(all, [1, 3, 191, 192]);
        assert_eq!(bits.count_from(2), 3);
        assert_eq!(bits.first_from(4), Some(191));
        assert_eq!(bits.first_from(193), None);
        assert_eq!(bits.last_from(0, 3).collect::<Vec<_>>(), [192, 191, 3]);
        assert_eq!(bits.last_from(192, 5).collect::<Vec<_>>(), [192]);
    }
}
