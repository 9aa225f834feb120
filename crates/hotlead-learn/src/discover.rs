//! Candidate rules generated from the training rows (`--discover`): a rule per frequent
//! categorical level, per numeric quantile bin, per event name and per URL path. Each is
//! written in the rules language, so that the learned file scores exactly as the model saw.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use hotlead_core::{AttributeValue, Event, EventType};

use crate::Example;

/// Attributes never turned into rules: they identify a person or a lead.
const IDENTIFYING: &[&str] = &[
    "lead_id",
    "id",
    "email",
    "name",
    "first_name",
    "last_name",
    "phone",
    "company",
    "user_id",
    "anonymous_id",
];

/// How far discovery goes.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// Quantile bins per numeric attribute.
    pub bins: usize,
    /// Levels kept per categorical attribute (the most frequent).
    pub max_levels: usize,
    /// A candidate must hold for at least this share of the training rows...
    pub min_share: f64,
    /// ...and at least this many rows.
    pub min_rows: usize,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            bins: 10,
            max_levels: 40,
            min_share: 0.005,
            min_rows: 10,
        }
    }
}

/// Which axis a candidate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Fit,
    Engagement,
}

/// A candidate rule: its id, label and the TOML of its test (`when = …` or `event = …`,
/// with any counting keys).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub label: String,
    pub axis: Axis,
    pub body: Vec<(String, toml_edit::Value)>,
    /// For counted behaviour: the most counted events per rule.
    pub count_cap: Option<u32>,
    /// The attribute whose levels (or bins) this candidate is one of: the levels of one
    /// attribute never overlap, so one of them is the reference the others are weighed
    /// against (one fact, one rule).
    pub family: Option<String>,
}

/// Events counted per candidate behaviour rule, at most.
pub const EVENT_COUNT_CAP: u32 = 5;

pub(crate) fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(40).collect()
}

/// A number for quantiles: the value, or the middle of a range.
fn point(value: &AttributeValue) -> Option<f64> {
    let number = value.number.as_ref()?;
    match (number.low, number.high) {
        (Some(low), Some(high)) => Some((low.value + high.value) / 2.0),
        (Some(b), None) | (None, Some(b)) => Some(b.value),
        (None, None) => None,
    }
}

pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn inline(pairs: &[(&str, toml_edit::Value)]) -> toml_edit::Value {
    let mut table = toml_edit::InlineTable::new();
    for (key, value) in pairs {
        table.insert(*key, value.clone());
    }
    toml_edit::Value::InlineTable(table)
}

/// Generates candidates from the training examples (never from the hold-out).
pub fn discover(train: &[&Example], options: &DiscoverOptions) -> Vec<Candidate> {
    let n = train.len();
    let min_rows = options
        .min_rows
        .max((options.min_share * n as f64).ceil() as usize);
    let mut candidates = Vec::new();
    let mut used_ids = BTreeSet::new();
    let mut unique = |id: String| {
        let mut candidate = id.clone();
        let mut k = 2;
        while !used_ids.insert(candidate.clone()) {
            candidate = format!("{id}-{k}");
            k += 1;
        }
        candidate
    };

    // Each attribute's candidates (on the cores: they depend on the attribute alone),
    // then their ids made unique in order.
    let by_attribute = values_by_attribute(train);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let proposed = crate::sparse::parallel(&by_attribute, workers, |(attribute, present)| {
        attribute_candidates(attribute, present, n, min_rows, options)
    });
    for mut candidate in proposed.into_iter().flatten() {
        candidate.id = unique(candidate.id);
        candidates.push(candidate);
    }

    // Behaviour: event names and page paths that enough leads have, before the decision.
    let mut names: BTreeMap<(EventType, String), usize> = BTreeMap::new();
    for example in train {
        let mut seen = BTreeSet::new();
        for event in example
            .events
            .iter()
            .filter(|e| e.timestamp < example.decided_at)
        {
            if let Some(key) = event_key(event) {
                seen.insert(key);
            }
        }
        for key in seen {
            *names.entry(key).or_default() += 1;
        }
    }
    for ((kind, value), leads) in names {
        if leads < min_rows {
            continue;
        }
        let (matcher, label) = match kind {
            EventType::Page => (
                inline(&[("type", "page".into()), ("path", value.as_str().into())]),
                format!("viewed {value}"),
            ),
            _ => (
                inline(&[
                    ("type", kind.as_str().into()),
                    ("name", value.as_str().into()),
                ]),
                value.to_string(),
            ),
        };
        candidates.push(Candidate {
            id: unique(format!(
                "learned-{}-{}",
                kind.as_str(),
                match slug(&value) {
                    s if s.is_empty() => "event".to_string(),
                    s => s,
                }
            )),
            label: format!("{label} (each time, up to {EVENT_COUNT_CAP})"),
            axis: Axis::Engagement,
            body: vec![("event".into(), matcher), ("count".into(), "every".into())],
            count_cap: Some(EVENT_COUNT_CAP),
            family: None,
        });
    }
    candidates
}

/// The candidates of one attribute, from the training leads that have it (`present`, of
/// `n`): its levels or quantile bins, and "not given". Their ids may repeat another's.
fn attribute_candidates(
    attribute: &str,
    present: &[Present<'_>],
    n: usize,
    min_rows: usize,
    options: &DiscoverOptions,
) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    let missing = n - present.len();
    let numbers: Vec<f64> = present.iter().filter_map(|(_, v)| point(v)).collect();
    let mut levels: HashMap<&str, usize> = HashMap::default();
    for (_, v) in present {
        *levels.entry(v.value.as_str()).or_default() += 1;
    }
    // Identifiers and free text: almost every value is different.
    let numeric = !present.is_empty() && numbers.len() * 10 >= present.len() * 9;
    if !numeric && levels.len() * 2 > present.len().max(1) && levels.len() > options.max_levels {
        return candidates;
    }
    let attr_slug = slug(attribute);
    if numeric && levels.len() > 2 {
        let mut sorted = numbers.clone();
        sorted.sort_by(f64::total_cmp);
        let mut cuts: Vec<f64> = (1..options.bins)
            .map(|b| sorted[b * sorted.len() / options.bins])
            .collect();
        cuts.dedup();
        cuts.retain(|&c| c > sorted[0]);
        let mut edges: Vec<(Option<f64>, Option<f64>)> = Vec::new();
        let mut low = None;
        for &cut in &cuts {
            edges.push((low, Some(cut)));
            low = Some(cut);
        }
        edges.push((low, None));
        let labelled: Vec<(f64, bool)> = present
            .iter()
            .filter_map(|(e, v)| point(v).map(|v| (v, e.won)))
            .collect();
        for (low, high) in merge_bins(&edges, &labelled, min_rows) {
            let mut test: Vec<(&str, toml_edit::Value)> = vec![("attribute", attribute.into())];
            let label = match (low, high) {
                (Some(l), Some(h)) => {
                    test.push(("gte", l.into()));
                    test.push(("lt", h.into()));
                    format!("{attribute} {} – {}", format_number(l), format_number(h))
                }
                (Some(l), None) => {
                    test.push(("gte", l.into()));
                    format!("{attribute} ≥ {}", format_number(l))
                }
                (None, Some(h)) => {
                    test.push(("lt", h.into()));
                    format!("{attribute} < {}", format_number(h))
                }
                (None, None) => continue,
            };
            let id = format!(
                "learned-{attr_slug}-{}",
                slug(&format!(
                    "{}-{}",
                    low.map_or("min".into(), format_number),
                    high.map_or("max".into(), format_number)
                ))
            );
            candidates.push(Candidate {
                id,
                label,
                axis: Axis::Fit,
                body: vec![("when".into(), inline(&test))],
                count_cap: None,
                family: Some(attribute.to_string()),
            });
        }
    } else {
        let mut frequent: Vec<(&str, usize)> = levels
            .into_iter()
            .filter(|(_, count)| *count >= min_rows)
            .collect();
        frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        frequent.truncate(options.max_levels);
        let listed: usize = frequent.iter().map(|(_, count)| count).sum();
        let mut raws = Vec::with_capacity(frequent.len());
        for (value, _) in frequent {
            let raw = present
                .iter()
                .find_map(|(_, v)| (v.value == value).then_some(v.raw.as_str()))
                .unwrap_or(value);
            raws.push(raw);
            let value_slug = match slug(value) {
                s if s.is_empty() => format!("level-{}", value.chars().count()),
                s => s,
            };
            let id = format!("learned-{attr_slug}-{value_slug}");
            candidates.push(Candidate {
                id,
                label: format!("{attribute} = {raw}"),
                axis: Axis::Fit,
                body: vec![(
                    "when".into(),
                    inline(&[("attribute", attribute.into()), ("equals", raw.into())]),
                )],
                count_cap: None,
                family: Some(attribute.to_string()),
            });
        }
        // The rarer values together, so that the levels cover every lead that has
        // the attribute and any of them can be the reference.
        let others = present.len() - listed;
        if !raws.is_empty() && others >= min_rows {
            let listed_values: toml_edit::Array = raws.iter().copied().collect();
            let mut all = toml_edit::Array::new();
            all.push(inline(&[
                ("attribute", attribute.into()),
                ("present", true.into()),
            ]));
            all.push(inline(&[(
                "not",
                inline(&[
                    ("attribute", attribute.into()),
                    ("one_of", toml_edit::Value::Array(listed_values)),
                ]),
            )]));
            candidates.push(Candidate {
                id: format!("learned-{attr_slug}-other"),
                label: format!("{attribute}: any other value"),
                axis: Axis::Fit,
                body: vec![(
                    "when".into(),
                    inline(&[("all", toml_edit::Value::Array(all))]),
                )],
                count_cap: None,
                family: Some(attribute.to_string()),
            });
        }
    }
    if missing >= min_rows && missing < n {
        candidates.push(Candidate {
            id: format!("learned-{attr_slug}-missing"),
            label: format!("{attribute} not given"),
            axis: Axis::Fit,
            body: vec![(
                "when".into(),
                inline(&[("attribute", attribute.into()), ("missing", true.into())]),
            )],
            count_cap: None,
            family: Some(attribute.to_string()),
        });
    }
    candidates
}

/// Each attribute (by name, leaving out the identifying ones) with the leads that have it
/// and their values, in the leads' order: one pass over every lead's attributes (in
/// parts, on the cores).
fn values_by_attribute<'a>(train: &[&'a Example]) -> Vec<(&'a str, Vec<Present<'a>>)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = train.len().div_ceil(workers * 2).max(1_024);
    let parts: Vec<&[&Example]> = train.chunks(size).collect();
    let gathered = crate::sparse::parallel(&parts, workers, |part| gather(part));
    // Each attribute's values part after part: in the leads' order.
    let mut slot: HashMap<&str, usize> = HashMap::default();
    let mut out: Vec<(&str, Vec<Present<'a>>)> = Vec::new();
    for part in gathered {
        for (name, values) in part {
            match slot.get(name) {
                Some(&k) => out[k].1.extend(values),
                None => {
                    slot.insert(name, out.len());
                    out.push((name, values));
                }
            }
        }
    }
    out.retain(|(name, _)| !IDENTIFYING.contains(name) && *name != "email_domain");
    out.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out
}

/// The attributes of `train`'s leads, each with the leads that have it and its values,
/// in the leads' order (attributes in the order first seen).
fn gather<'a>(train: &[&'a Example]) -> Vec<(&'a str, Vec<Present<'a>>)> {
    let mut slot: HashMap<&str, usize> = HashMap::default();
    let mut out: Vec<(&str, Vec<Present<'a>>)> = Vec::new();
    // The slot of each position's attribute for the previous lead: leads of one export
    // mostly have the same attributes, so one comparison usually finds it.
    let mut previous: Vec<usize> = Vec::new();
    for &example in train {
        for (position, (name, value)) in example.lead.attributes.iter().enumerate() {
            let name = name.as_str();
            let k = match previous.get(position) {
                Some(&k) if out[k].0 == name => k,
                _ => {
                    let k = *slot.entry(name).or_insert_with(|| {
                        out.push((name, Vec::new()));
                        out.len() - 1
                    });
                    if position < previous.len() {
                        previous[position] = k;
                    } else {
                        previous.push(k);
                    }
                    k
                }
            };
            out[k].1.push((example, value));
        }
    }
    out
}

/// A lead that has an attribute, and its value.
type Present<'a> = (&'a Example, &'a AttributeValue);

/// A bin that holds too few leads joins the neighbour nearer to it in win rate (the
/// chi-square of their 2×2 table is the smaller). Bins of the same effect stay apart:
/// the fit leaves them at 0 together (merging them beforehand lost accuracy on later
/// leads, see docs/benchmarks.md).
fn merge_bins(
    edges: &[(Option<f64>, Option<f64>)],
    labelled: &[(f64, bool)],
    min_rows: usize,
) -> Vec<(Option<f64>, Option<f64>)> {
    // (edges, won, lost) per bin.
    type Bin = ((Option<f64>, Option<f64>), f64, f64);
    let mut bins: Vec<Bin> = edges
        .iter()
        .map(|&(low, high)| {
            let (mut won, mut lost) = (0.0, 0.0);
            for &(v, w) in labelled {
                if low.is_none_or(|l| v >= l) && high.is_none_or(|h| v < h) {
                    if w {
                        won += 1.0;
                    } else {
                        lost += 1.0;
                    }
                }
            }
            ((low, high), won, lost)
        })
        .collect();
    let chi2 = |a: &(_, f64, f64), b: &(_, f64, f64)| {
        let (w1, l1, w2, l2) = (a.1, a.2, b.1, b.2);
        let n = w1 + l1 + w2 + l2;
        let (r1, r2, c1, c2) = (w1 + l1, w2 + l2, w1 + w2, l1 + l2);
        if r1 == 0.0 || r2 == 0.0 || c1 == 0.0 || c2 == 0.0 {
            return 0.0;
        }
        n * (w1 * l2 - l1 * w2).powi(2) / (r1 * r2 * c1 * c2)
    };
    while bins.len() > 1 {
        let small = bins.iter().position(|b| ((b.1 + b.2) as usize) < min_rows);
        let pick = match small {
            // A bin too small joins the neighbour nearer in win rate.
            Some(0) => 0,
            Some(i) if i == bins.len() - 1 => i - 1,
            Some(i) => {
                if chi2(&bins[i - 1], &bins[i]) <= chi2(&bins[i], &bins[i + 1]) {
                    i - 1
                } else {
                    i
                }
            }
            None => break,
        };
        let next = bins.remove(pick + 1);
        let bin = &mut bins[pick];
        bin.0 = (bin.0.0, next.0.1);
        bin.1 += next.1;
        bin.2 += next.2;
    }
    bins.into_iter().map(|(edges, _, _)| edges).collect()
}

/// The name or path a behaviour candidate keys on; paths with glob characters are left
/// out (a rule's path is a glob).
fn event_key(event: &Event) -> Option<(EventType, String)> {
    match event.kind {
        EventType::Page => event
            .path
            .as_ref()
            .filter(|p| !p.contains(['*', '?', '[', ']', '{', '}', '\\']))
            .map(|p| (EventType::Page, p.clone())),
        EventType::Track => event.name.clone().map(|n| (EventType::Track, n)),
        _ => None,
    }
}
