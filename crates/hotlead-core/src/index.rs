//! Which events each matcher of a rule set takes, worked out once per score.
//!
//! Matchers see an event's type and its value in each slot of the [`Plan`] (name, path,
//! UTM tags, properties the rules look at). Each distinct value of a slot is matched once
//! against all the slot's patterns (one [`regex::bytes::RegexSet`] pass); the events are
//! then bits: per type, per value the events that hold it, and per pattern the events of
//! the values it matches (a value's bits are combined into a pattern's once, not an event
//! at a time). A matcher's events are the bits of its types and of its patterns combined,
//! over the events in time order, worked out once for matchers that rules repeat. Scoring
//! then reads bits: no pattern is run per event and rule, and nothing is allocated per
//! event.

use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::RandomState;

use crate::event::Event;
use crate::rules::{EventMatcher, Field, Plan, Slot, Value};

/// Numbers distinct items 0, 1, 2, ... in the order they are first seen, given a hash of
/// each and a test of equality: open addressing with linear probing over a table at most
/// half full. Per item it costs one hash and, for a repeat, one equality test: less than a
/// map keyed by the items. The hash must be seeded per process, as `foldhash`'s
/// `RandomState` is: an event's fields are chosen by whoever sends it, so the hash must not
/// be predictable.
#[derive(Debug)]
pub(crate) struct Interner {
    /// An item's number + 1 in each slot of the table, 0 in an empty slot.
    table: Vec<u32>,
    /// The hash of each item, by number.
    hashes: Vec<u64>,
}

impl Interner {
    /// An interner with room for `items` items before it grows.
    pub(crate) fn with_capacity(items: usize) -> Interner {
        Interner {
            table: vec![0; (2 * items).next_power_of_two().max(16)],
            hashes: Vec::with_capacity(items),
        }
    }

    /// The number of the item with `hash` for which `same` holds, or else the next number
    /// (`same` is given numbers of earlier items).
    #[inline]
    pub(crate) fn intern(&mut self, hash: u64, same: impl Fn(usize) -> bool) -> usize {
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        while self.table[at] != 0 {
            let item = self.table[at] as usize - 1;
            if self.hashes[item] == hash && same(item) {
                return item;
            }
            at = (at + 1) & mask;
        }
        let item = self.hashes.len();
        self.hashes.push(hash);
        self.table[at] = item as u32 + 1;
        if 2 * self.hashes.len() > self.table.len() {
            self.grow();
        }
        item
    }

    /// Forgets every item, keeping the room.
    pub(crate) fn clear(&mut self) {
        self.table.fill(0);
        self.hashes.clear();
    }

    /// Doubles the table.
    fn grow(&mut self) {
        let mask = 2 * self.table.len() - 1;
        self.table = vec![0; mask + 1];
        for (item, &hash) in self.hashes.iter().enumerate() {
            let mut at = hash as usize & mask;
            while self.table[at] != 0 {
                at = (at + 1) & mask;
            }
            self.table[at] = item as u32 + 1;
        }
    }
}

/// `a == b`, compared inline a few bytes at a time: the texts compared while scoring
/// (message ids, pages, names, user agents, rule ids) are short, and for them a call to
/// `memcmp` costs more than the comparison itself.
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    // The first and the last chunk of a length, overlapping when the text is shorter
    // than two: together they cover every byte.
    match a.len() {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => a.first_chunk::<4>() == b.first_chunk() && a.last_chunk::<4>() == b.last_chunk(),
        8..=16 => a.first_chunk::<8>() == b.first_chunk() && a.last_chunk::<8>() == b.last_chunk(),
        17..=32 => {
            a.first_chunk::<16>() == b.first_chunk() && a.last_chunk::<16>() == b.last_chunk()
        }
        _ => a == b,
    }
}

/// A slot value as the matchers tell values apart: texts and property strings by their
/// text, numbers and booleans by their JSON value (and the sign of a zero, which prints
/// differently: `-0.0` and `0.0` may match different patterns).
#[derive(Clone, Copy, Eq, Hash)]
enum Key<'e> {
    Text(&'e str),
    Number(&'e serde_json::Number),
    Bool(bool),
}

/// For a text, a slot in [`Values`]' recent texts, from its length and its first and last
/// bytes.
#[inline]
fn fingerprint(text: &str) -> usize {
    let bytes = text.as_bytes();
    let first = usize::from(bytes.first().copied().unwrap_or(0));
    let last = usize::from(bytes.last().copied().unwrap_or(0));
    ((bytes.len() * 7) ^ first ^ (last * 3)) % RECENT
}

/// The hash of a text, from its bytes alone: one step less than `hash_one`, which also
/// writes an end mark (of use only when texts are hashed one after another).
#[inline]
pub(crate) fn hash_text(state: &RandomState, text: &str) -> u64 {
    let mut hasher = state.build_hasher();
    hasher.write(text.as_bytes());
    hasher.finish()
}

impl Key<'_> {
    /// The key's hash (a text's, the most common, as the text alone).
    #[inline]
    fn hash_with(self, state: &RandomState) -> u64 {
        match self {
            Key::Text(text) => hash_text(state, text),
            key => state.hash_one(key),
        }
    }
}

impl PartialEq for Key<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let negative = |n: &serde_json::Number| n.as_f64().map(f64::is_sign_negative);
        match (self, other) {
            (Key::Text(a), Key::Text(b)) => same_text(a, b),
            (Key::Number(a), Key::Number(b)) => a == b && negative(a) == negative(b),
            (Key::Bool(a), Key::Bool(b)) => a == b,
            _ => false,
        }
    }
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

/// The event types a matcher can name: a bit each in its `kinds`.
const KINDS: usize = 8;

/// One slot's distinct values, numbered in the order they are first seen: each with the
/// slot's patterns it matches and the positions of the events that hold it.
struct Values<'e> {
    words: usize,
    distinct: Interner,
    keys: Vec<Key<'e>>,
    /// Per value, its range of `patterns`.
    ranges: Vec<(u32, u32)>,
    /// The numbers (in the slot) of the patterns each value matches.
    patterns: Vec<u32>,
    /// Per value among the first [`ROWS`], `words` words: the positions of its events.
    bits: Vec<u64>,
    /// The events of the values past the first [`ROWS`]: (value, position) each. A row
    /// per value would take memory and time in the square of the events when most
    /// values are distinct (a page path per product, say).
    rest: Vec<(u32, u32)>,
    /// The last text seen per [`fingerprint`], with its number + 1 (0 for none yet): a
    /// lead's events repeat a few pages and names, and a repeat of a recent one is found
    /// without hashing it (a miss costs one comparison, whatever the texts).
    recent: [(&'e str, u32); RECENT],
}

/// How many recent texts [`Values`] remembers per slot.
const RECENT: usize = 64;

/// How many values of a slot [`Values`] has room for before it grows.
const VALUES: usize = 16;

/// How many values of a slot get a row of their events' positions; the events of the
/// others are listed one by one.
const ROWS: usize = 256;

impl<'e> Values<'e> {
    /// Room for a few values (a lead's events repeat a few pages and names) over `words`
    /// words of positions; [`Values::clear`] keeps it for the next slot.
    fn new(words: usize) -> Self {
        Values {
            words,
            distinct: Interner::with_capacity(VALUES),
            keys: Vec::with_capacity(VALUES),
            ranges: Vec::with_capacity(VALUES),
            patterns: Vec::with_capacity(2 * VALUES),
            bits: Vec::with_capacity(VALUES * words),
            rest: Vec::new(),
            recent: [("", 0); RECENT],
        }
    }

    /// Forgets the values, keeping the room.
    fn clear(&mut self) {
        self.distinct.clear();
        self.keys.clear();
        self.ranges.clear();
        self.patterns.clear();
        self.bits.clear();
        self.rest.clear();
        self.recent = [("", 0); RECENT];
    }

    /// Adds the event at `position`, which holds `value`: a repeat of a recent text (the
    /// usual case) costs one comparison, inline in the loop over the events.
    #[inline(always)]
    fn add(&mut self, slot: &Slot, value: Value<'e>, position: usize, state: &RandomState) {
        let v = match value {
            Value::Text(text) | Value::Raw(text) => {
                let recent = fingerprint(text);
                match self.recent[recent] {
                    (seen, last @ 1..) if same_text(seen, text) => last as usize - 1,
                    _ => {
                        let v = self.number(slot, Key::Text(text), value, state);
                        self.recent[recent] = (text, v as u32 + 1);
                        v
                    }
                }
            }
            Value::Other(_) => self.number(slot, Key::from(value), value, state),
        };
        if v < ROWS {
            self.bits[v * self.words + position / 64] |= 1 << (position % 64);
        } else {
            // Fewer events than 2^32 (positions) and so fewer values.
            self.rest.push((v as u32, position as u32));
        }
    }

    /// The number of the value `key`, found by its hash; a value seen for the first time
    /// is matched against the slot's patterns.
    #[inline(never)]
    fn number(
        &mut self,
        slot: &Slot,
        key: Key<'e>,
        value: Value<'e>,
        state: &RandomState,
    ) -> usize {
        let keys = &self.keys;
        let v = self
            .distinct
            .intern(key.hash_with(state), |v| keys[v] == key);
        if v == self.keys.len() {
            self.keys.push(key);
            let start = self.patterns.len() as u32;
            let matches = slot.set.matches(value.text().as_bytes());
            self.patterns.extend(matches.iter().map(|p| p as u32));
            self.ranges.push((start, self.patterns.len() as u32));
            if v < ROWS {
                self.bits.resize(self.bits.len() + self.words, 0);
            }
        }
        v
    }

    /// Sets the events of each value in the rows (of `words` words, one per pattern of
    /// the slot) of the patterns it matches.
    fn set_rows(&self, rows: &mut [u64]) {
        let words = self.words;
        for (v, &(start, end)) in self.ranges.iter().take(ROWS).enumerate() {
            let events = &self.bits[v * words..(v + 1) * words];
            for &p in &self.patterns[start as usize..end as usize] {
                let row = &mut rows[p as usize * words..(p as usize + 1) * words];
                row.iter_mut().zip(events).for_each(|(a, b)| *a |= b);
            }
        }
        for &(v, position) in &self.rest {
            let (start, end) = self.ranges[v as usize];
            let (word, bit) = (position as usize / 64, 1 << (position % 64));
            for &p in &self.patterns[start as usize..end as usize] {
                rows[p as usize * words + word] |= bit;
            }
        }
    }
}

/// One slot's pattern bits (`rows`: a row of `words` words per pattern of the slot, in
/// order): the value `read` from each event of `taken` is numbered among the slot's
/// `values` (room kept from one slot to the next), each distinct value matched once
/// against the slot's patterns; the events of a value are then set, all at once, in the
/// rows of the patterns it matches.
fn scan<'e>(
    slot: &Slot,
    events: &[&'e Event],
    taken: Bits<'_>,
    rows: &mut [u64],
    values: &mut Values<'e>,
    state: &RandomState,
    read: impl Fn(&'e Event) -> Option<Value<'e>>,
) {
    values.clear();
    taken.each_from(0, |position| {
        if let Some(value) = read(events[position]) {
            values.add(slot, value, position, state);
        }
    });
    values.set_rows(rows);
}

/// For every matcher of a plan, the events it takes, as bits over event positions.
#[derive(Debug)]
pub(crate) struct Index {
    words: usize,
    /// A row of `words` words per distinct matcher.
    bits: Vec<u64>,
    /// Each matcher's row.
    rows: Vec<usize>,
}

impl Index {
    /// As [`Index::of`], for events given one by one.
    #[cfg(test)]
    pub(crate) fn new<'e>(plan: &Plan, events: impl ExactSizeIterator<Item = &'e Event>) -> Index {
        Index::of(plan, &events.collect::<Vec<_>>())
    }

    /// Matches `events` (by position, in the order their positions will be read) against
    /// every matcher of `plan`.
    pub(crate) fn of(plan: &Plan, events: &[&Event]) -> Index {
        let words = events.len().div_ceil(64);
        let state = RandomState::default();

        // Bits over the events: per event type, and per pattern of each slot (a row each,
        // the slot's patterns in order), the events whose value it matches.
        let mut kind_bits = vec![0u64; KINDS * words];
        for (w, chunk) in events.chunks(64).enumerate() {
            // A word per type, for the 64 events of the chunk.
            let mut kinds = [0u64; KINDS];
            for (bit, event) in chunk.iter().enumerate() {
                kinds[event.kind as usize] |= 1 << bit;
            }
            for (kind, bits) in kinds.into_iter().enumerate() {
                kind_bits[kind * words + w] = bits;
            }
        }
        let mut first = Vec::with_capacity(plan.slots.len());
        let mut patterns = 0;
        for slot in &plan.slots {
            first.push(patterns);
            patterns += slot.sources.len();
        }
        let mut pattern_bits = vec![0u64; patterns * words];
        let mut read = vec![0u64; words];
        let mut values = Values::new(words);
        for (slot, &first) in plan.slots.iter().zip(&first) {
            let rows = &mut pattern_bits[first * words..(first + slot.sources.len()) * words];
            // Only the events of the types that some matcher testing the slot takes.
            read.fill(0);
            for kind in (0..KINDS).filter(|kind| slot.kinds & (1 << kind) != 0) {
                let kind = &kind_bits[kind * words..(kind + 1) * words];
                read.iter_mut().zip(kind).for_each(|(a, b)| *a |= b);
            }
            let read = Bits(&read);
            // The field a slot reads is decided once, outside the loop over its events (a
            // property's through `Field::read`).
            let values = &mut values;
            match &slot.field {
                Field::Name => scan(slot, events, read, rows, values, &state, |e| {
                    e.name.as_deref().map(Value::Text)
                }),
                Field::Path => scan(slot, events, read, rows, values, &state, |e| {
                    e.path.as_deref().map(Value::Text)
                }),
                Field::Referrer => scan(slot, events, read, rows, values, &state, |e| {
                    e.referrer.as_deref().map(Value::Text)
                }),
                Field::Utm(0) => scan(slot, events, read, rows, values, &state, |e| {
                    e.campaign.source.as_deref().map(Value::Text)
                }),
                Field::Utm(1) => scan(slot, events, read, rows, values, &state, |e| {
                    e.campaign.medium.as_deref().map(Value::Text)
                }),
                Field::Utm(2) => scan(slot, events, read, rows, values, &state, |e| {
                    e.campaign.name.as_deref().map(Value::Text)
                }),
                Field::Utm(3) => scan(slot, events, read, rows, values, &state, |e| {
                    e.campaign.term.as_deref().map(Value::Text)
                }),
                Field::Utm(4) => scan(slot, events, read, rows, values, &state, |e| {
                    e.campaign.content.as_deref().map(Value::Text)
                }),
                field => scan(slot, events, read, rows, values, &state, |e| field.read(e)),
            }
        }

        // Each matcher: the events of its types, less those failing one of its tests; a
        // matcher equal to an earlier one shares its row.
        let distinct = (plan.same_as.iter().enumerate()).filter(|&(m, &same)| m == same);
        let mut bits = Vec::with_capacity(distinct.count() * words);
        let mut rows = Vec::with_capacity(plan.matchers.len());
        for (m, matcher) in plan.matchers.iter().enumerate() {
            let same = plan.same_as[m];
            if same != m {
                rows.push(rows[same]);
                continue;
            }
            rows.push(bits.len() / words.max(1));
            let at = bits.len();
            bits.resize(at + words, 0);
            let set = &mut bits[at..];
            for kind in 0..KINDS {
                if matcher.kinds & (1 << kind) != 0 {
                    let kind = &kind_bits[kind * words..(kind + 1) * words];
                    set.iter_mut().zip(kind).for_each(|(a, b)| *a |= b);
                }
            }
            for &(s, p) in &matcher.tests {
                let at = first[s] + p;
                let hits = &pattern_bits[at * words..(at + 1) * words];
                set.iter_mut().zip(hits).for_each(|(a, b)| *a &= b);
            }
        }
        Index { words, bits, rows }
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
        let rows = (0..matchers.len()).collect();
        Index { words, bits, rows }
    }

    /// The events `matcher` takes.
    pub(crate) fn events(&self, matcher: usize) -> Bits<'_> {
        let row = self.row(matcher);
        Bits(&self.bits[row * self.words..(row + 1) * self.words])
    }

    /// The row of `matcher`'s events: matchers that take the same events for the same
    /// reasons (equal matchers) share one, and each row is below the number of matchers.
    pub(crate) fn row(&self, matcher: usize) -> usize {
        self.rows[matcher]
    }
}

/// A set of event positions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bits<'a>(&'a [u64]);

impl<'a> Bits<'a> {
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

    /// The positions from `start` on, in increasing order, as an iterator (the scorer
    /// calls [`Bits::each_from`], a loop of its own).
    #[cfg(test)]
    pub(crate) fn iter_from(self, start: usize) -> IterFrom<'a> {
        IterFrom {
            bits: self,
            start,
            next_word: start / 64,
            word: 0,
        }
    }

    /// The first position from `start` on.
    pub(crate) fn first_from(self, start: usize) -> Option<usize> {
        (start / 64..self.0.len()).find_map(|w| {
            let word = self.word(w, start);
            (word != 0).then(|| w * 64 + word.trailing_zeros() as usize)
        })
    }

    /// The last position from `start` on.
    pub(crate) fn last_from(self, start: usize) -> Option<usize> {
        (start / 64..self.0.len()).rev().find_map(|w| {
            let word = self.word(w, start);
            (word != 0).then(|| w * 64 + 63 - word.leading_zeros() as usize)
        })
    }

    /// Calls `each` with up to `limit` positions from `start` on, the last first.
    pub(crate) fn each_last_from(
        self,
        start: usize,
        mut limit: usize,
        mut each: impl FnMut(usize),
    ) {
        for w in (start / 64..self.0.len()).rev() {
            let mut word = self.word(w, start);
            while word != 0 {
                if limit == 0 {
                    return;
                }
                let bit = 63 - word.leading_zeros() as usize;
                each(w * 64 + bit);
                word ^= 1 << bit;
                limit -= 1;
            }
        }
    }

    /// How many positions from `start` on.
    pub(crate) fn count_from(self, start: usize) -> usize {
        (start / 64..self.0.len())
            .map(|w| self.word(w, start).count_ones() as usize)
            .sum()
    }
}

/// The iterator of [`Bits::iter_from`]: the words from the first, one bit at a time.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct IterFrom<'a> {
    bits: Bits<'a>,
    start: usize,
    /// The word after the one being read.
    next_word: usize,
    /// What is left of the word being read.
    word: u64,
}

#[cfg(test)]
impl Iterator for IterFrom<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.word == 0 {
            if self.next_word >= self.bits.0.len() {
                return None;
            }
            self.word = self.bits.word(self.next_word, self.start);
            self.next_word += 1;
        }
        let bit = self.word.trailing_zeros() as usize;
        self.word &= self.word - 1;
        Some((self.next_word - 1) * 64 + bit)
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

    /// Repeated matchers share their bits; a value seen again after others is found again;
    /// `-0.0` and `0.0`, equal as numbers, print (and match) differently.
    #[test]
    fn repeated_matchers_and_values_take_what_each_matcher_takes() {
        let rules = RuleSet::from_toml(
            "t.toml",
            r#"name = "t"
version = 1
[bands]
hot = 50
warm = 20
[groups.e]
axis = "engagement"
[[rules]]
id = "a"
group = "e"
points = 1
event = { path = "/a*" }
[[rules]]
id = "negative"
group = "e"
points = 1
event = { properties = { x = "-*" } }
[[rules]]
id = "a_again"
group = "e"
points = 2
event = { path = "/a*" }
[[rules]]
id = "zero"
group = "e"
points = 1
event = { properties = { x = "0*" } }
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let paths = ["/a", "/b", "/ab", "/c", "/a", "/d", "/e", "/ab"];
        let xs = [json!(0.0), json!(-0.0), json!(-1), json!("0"), json!(0)];
        let events: Vec<Event> = (0..300usize)
            .map(|i| {
                let path = paths[(i * 7) % paths.len()];
                Event::from_segment(&json!({"type": "page", "messageId": format!("m{i}"),
                    "userId": "L", "timestamp": "2026-01-01T00:00:00Z",
                    "properties": {"path": path, "x": xs[(i / 3) % xs.len()]}}))
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let matchers: Vec<&EventMatcher> = rules
            .rules
            .iter()
            .filter_map(|r| match &r.kind {
                crate::rules::RuleKind::Behaviour(b) => Some(&b.matcher),
                crate::rules::RuleKind::Attribute(_) => None,
            })
            .collect();
        let planned = Index::new(&rules.plan, events.iter());
        let each = Index::each(&matchers, events.iter());
        for m in 0..matchers.len() {
            assert_eq!(planned.events(m).0, each.events(m).0, "matcher {m}");
        }
        assert_eq!(rules.plan.same_as, [0, 1, 0, 3]);
        assert_eq!(planned.bits.len(), 3 * 5);
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
        assert_eq!(bits.last_from(0), Some(192));
        assert_eq!(bits.last_from(193), None);
        let last = |start, limit| {
            let mut last = Vec::new();
            bits.each_last_from(start, limit, |p| last.push(p));
            last
        };
        assert_eq!(last(0, 3), [192, 191, 3]);
        assert_eq!(last(192, 5), [192]);
        assert!(last(256, 5).is_empty());
        assert!(last(0, 0).is_empty());
    }

    #[test]
    fn bits_give_the_last_positions_as_the_first_ones_reversed() {
        let words = [0b1011u64, 0, 1 << 63, 1, u64::MAX];
        let bits = Bits(&words);
        for start in [0, 1, 4, 63, 64, 191, 192, 200, 256, 320] {
            let mut all = Vec::new();
            bits.each_from(start, |p| all.push(p));
            all.reverse();
            assert_eq!(bits.last_from(start), all.first().copied(), "from {start}");
            for limit in [0, 1, 3, 20, 100] {
                let mut each = Vec::new();
                bits.each_last_from(start, limit, |p| each.push(p));
                let expected: Vec<usize> = all.iter().copied().take(limit).collect();
                assert_eq!(each, expected, "from {start}, {limit}");
            }
        }
    }

    /// `same_text` is `==`, for every length it compares by chunks and past them.
    #[test]
    fn texts_compare_as_with_eq() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_text(a, a), "{a}");
            for at in 0..len {
                let mut b = a.to_string().into_bytes();
                b[at] = b'_';
                let b = String::from_utf8(b).unwrap_or_default();
                assert!(!same_text(a, &b), "{a} {b}");
            }
            assert!(!same_text(a, &text[..len + 1]));
        }
    }

    #[test]
    fn bits_iterate_from_a_start() {
        let words = [0b1011u64, 0, 1 << 63, 1];
        let bits = Bits(&words);
        assert_eq!(bits.iter_from(1).collect::<Vec<_>>(), [1, 3, 191, 192]);
        assert_eq!(bits.iter_from(192).collect::<Vec<_>>(), [192]);
        assert_eq!(bits.iter_from(256).count(), 0);
    }
}
