//! Every lead's rule terms, as [`hotlead_core::score::rule_terms`] gives them, kept as the
//! non-zero ones. Most candidate rules test one attribute, and a lead's term for such a
//! rule depends on that attribute's value alone: each attribute is looked up once per lead
//! and each distinct value tested once against all of the attribute's rules. Rule sets
//! with behaviour rules, rules that test several attributes and leads the rules might
//! leave out (those with an e-mail domain) go through `rule_terms` itself.

use foldhash::HashMap;
use hotlead_core::normalize::{Bound, Interval};
use hotlead_core::rules::{Condition, RuleKind};
use hotlead_core::{AttributeValue, Lead, RuleSet};

use crate::Example;

/// A lead's terms: `(rule, term)` for the rules whose term is not 0, by increasing rule.
pub type SparseRow = Vec<(u32, f64)>;

/// How a rule set's terms are worked out.
#[derive(Debug)]
pub struct Terms<'a> {
    rules: &'a RuleSet,
    /// Whether any rule counts events: then every lead goes through `rule_terms`.
    behaviour: bool,
    /// By name: the attributes single-attribute rules test, with those rules.
    attributes: Vec<(&'a str, Vec<u32>)>,
    /// Attribute rules that test several attributes (or none).
    several: Vec<u32>,
}

/// What a test of one attribute can see of its value: the normalised text and the
/// quantity (bit patterns, for hashing).
type ValueKey<'v> = Option<(&'v str, Option<[(u64, bool); 2]>)>;

fn key(value: Option<&AttributeValue>) -> ValueKey<'_> {
    let bound =
        |b: Option<Bound>| b.map_or((u64::MAX, false), |b| (b.value.to_bits(), b.inclusive));
    value.map(|v| {
        (
            v.value.as_str(),
            v.number.map(|n: Interval| [bound(n.low), bound(n.high)]),
        )
    })
}

/// The one attribute every test of `condition` is on, if there is one.
fn single_attribute(condition: &Condition) -> Option<&str> {
    fn walk<'c>(condition: &'c Condition, seen: &mut Option<&'c str>) -> bool {
        match condition {
            Condition::Attribute { attribute, .. } => match seen {
                Some(name) => *name == attribute.as_str(),
                None => {
                    *seen = Some(attribute.as_str());
                    true
                }
            },
            Condition::All(conditions) | Condition::Any(conditions) => {
                conditions.iter().all(|c| walk(c, seen))
            }
            Condition::Not(inner) => walk(inner, seen),
        }
    }
    let mut seen = None;
    walk(condition, &mut seen).then_some(seen).flatten()
}

impl<'a> Terms<'a> {
    pub fn new(rules: &'a RuleSet) -> Terms<'a> {
        let mut behaviour = false;
        let mut attributes: Vec<(&str, Vec<u32>)> = Vec::new();
        let mut several = Vec::new();
        for (j, rule) in rules.rules.iter().enumerate() {
            match &rule.kind {
                RuleKind::Behaviour(_) => behaviour = true,
                RuleKind::Attribute(condition) => match single_attribute(condition) {
                    Some(name) => match attributes.iter_mut().find(|(a, _)| *a == name) {
                        Some((_, list)) => list.push(j as u32),
                        None => attributes.push((name, vec![j as u32])),
                    },
                    None => several.push(j as u32),
                },
            }
        }
        attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Terms {
            rules,
            behaviour,
            attributes,
            several,
        }
    }

    /// Each example's terms at its decision time, in order.
    pub fn rows(&self, examples: &[Example]) -> Vec<SparseRow> {
        // Per attribute: the rules (of its list, by position) each value makes hold.
        let mut memo: Vec<HashMap<ValueKey<'_>, Vec<u32>>> =
            vec![HashMap::default(); self.attributes.len()];
        examples
            .iter()
            .map(|example| self.row(example, &mut memo))
            .collect()
    }

    fn row<'e>(
        &self,
        example: &'e Example,
        memo: &mut [HashMap<ValueKey<'e>, Vec<u32>>],
    ) -> SparseRow {
        let lead = &example.lead;
        // A lead of an internal domain scores nothing: the scorer says so (as it does
        // for every lead once events count).
        let internal = (lead.get("email_domain"))
            .is_some_and(|domain| self.rules.filters.is_internal_email(&domain.value));
        if self.behaviour || internal {
            let terms = hotlead_core::score::rule_terms(
                self.rules,
                lead,
                &example.events,
                example.decided_at,
            );
            return terms
                .into_iter()
                .enumerate()
                .filter(|(_, t)| *t != 0.0)
                .map(|(j, t)| (j as u32, t))
                .collect();
        }
        let mut row: SparseRow = Vec::new();
        // The lead's attributes and the rules' are both by name: one walk through both.
        let mut values = lead.attributes.iter().peekable();
        for ((name, rules), memo) in self.attributes.iter().zip(memo.iter_mut()) {
            while values.next_if(|(a, _)| a.as_str() < *name).is_some() {}
            let value = values.next_if(|(a, _)| a.as_str() == *name).map(|(_, v)| v);
            let holding = memo.entry(key(value)).or_insert_with(|| {
                // The rules see only this attribute: a lead with only it is enough.
                let mut alone = Lead::new(lead.id.clone());
                if let Some(v) = value {
                    alone.attributes.insert(name.to_string(), v.clone());
                }
                rules
                    .iter()
                    .copied()
                    .filter(|&j| match &self.rules.rules[j as usize].kind {
                        RuleKind::Attribute(condition) => condition.holds(&alone),
                        RuleKind::Behaviour(_) => false,
                    })
                    .collect()
            });
            row.extend(holding.iter().map(|&j| (j, 1.0)));
        }
        for &j in &self.several {
            if let RuleKind::Attribute(condition) = &self.rules.rules[j as usize].kind
                && condition.holds(lead)
            {
                row.push((j, 1.0));
            }
        }
        row.sort_unstable_by_key(|&(j, _)| j);
        row
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use hotlead_core::{Event, Lead, RuleSet};

    use super::*;

    const RULES: &str = r#"
name = "t"
version = 1
[bands]
hot = 10
warm = 5
[groups.fit]
axis = "fit"
[groups.engagement]
axis = "engagement"
[filters]
internal_email_domains = ["example.com"]
[[rules]]
id = "pro"
group = "fit"
points = 2
when = { attribute = "plan", equals = "pro" }
[[rules]]
id = "big"
group = "fit"
points = 1
when = { attribute = "employees", gte = 100, lt = 1000 }
[[rules]]
id = "no-plan"
group = "fit"
points = 1
when = { attribute = "plan", missing = true }
[[rules]]
id = "plan-other"
group = "fit"
points = 1
when = { all = [{ attribute = "plan", present = true }, { not = { attribute = "plan", one_of = ["pro", "free"] } }] }
[[rules]]
id = "pro-and-big"
group = "fit"
points = 3
when = { all = [{ attribute = "plan", equals = "pro" }, { attribute = "employees", gte = 500 }] }
[[rules]]
id = "title"
group = "fit"
points = 1
when = { attribute = "title", contains = ["head"] }
"#;

    fn example(i: usize, attributes: &[(&str, &str)]) -> Example {
        Example {
            id: format!("l{i}"),
            line: i as u64,
            lead: Lead::from_raw(format!("l{i}"), attributes.iter().copied()),
            events: Vec::new(),
            won: false,
            decided_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            created_at: None,
        }
    }

    fn examples() -> Vec<Example> {
        let plans = ["pro", "free", "PRO ", "team", ""];
        let sizes = [
            "50",
            "100",
            "999",
            "1,000",
            "500名",
            "100〜499名",
            "many",
            "",
        ];
        let titles = ["Head of Sales", "engineer", ""];
        let mut out = Vec::new();
        for (a, plan) in plans.iter().enumerate() {
            for (b, size) in sizes.iter().enumerate() {
                for (c, title) in titles.iter().enumerate() {
                    let i = out.len();
                    let email = if (a + b + c) % 4 == 0 {
                        "someone@example.com"
                    } else {
                        "someone@customer.jp"
                    };
                    out.push(example(
                        i,
                        &[
                            ("plan", plan),
                            ("employees", size),
                            ("title", title),
                            ("email", if i % 3 == 0 { "" } else { email }),
                        ],
                    ));
                }
            }
        }
        out
    }

    fn core_rows(rules: &RuleSet, examples: &[Example]) -> Vec<SparseRow> {
        examples
            .iter()
            .map(|e| {
                hotlead_core::score::rule_terms(rules, &e.lead, &e.events, e.decided_at)
                    .into_iter()
                    .enumerate()
                    .filter(|(_, t)| *t != 0.0)
                    .map(|(j, t)| (j as u32, t))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn terms_are_the_scorers_terms() {
        let rules = RuleSet::from_toml("t.toml", RULES).unwrap();
        let examples = examples();
        let rows = Terms::new(&rules).rows(&examples);
        assert_eq!(rows, core_rows(&rules, &examples));
        // Some of each: rules that hold, leads the filter leaves out.
        assert!(rows.iter().any(|r| r.len() >= 3));
        assert!(rows.iter().any(|r| r.is_empty()));
    }

    #[test]
    fn with_a_behaviour_rule_terms_are_still_the_scorers_terms() {
        let text = format!(
            "{RULES}\n[[rules]]\nid = \"pricing\"\ngroup = \"engagement\"\npoints = 2\nevent = {{ type = \"page\", path = \"/pricing\" }}\ncount = \"every\"\ncap = 3\n"
        );
        let rules = RuleSet::from_toml("t.toml", &text).unwrap();
        let mut examples = examples();
        for (i, example) in examples.iter_mut().enumerate() {
            for k in 0..i % 5 {
                let when = example.decided_at - chrono::Duration::days(k as i64 + 1);
                example.events.push(
                    Event::from_segment(&serde_json::json!({
                        "type": "page",
                        "messageId": format!("m-{i}-{k}"),
                        "userId": example.id,
                        "timestamp": when.to_rfc3339(),
                        "properties": { "path": "/pricing" },
                    }))
                    .unwrap(),
                );
            }
        }
        let rows = Terms::new(&rules).rows(&examples);
        assert_eq!(rows, core_rows(&rules, &examples));
        assert!(
            rows.iter()
                .any(|r| r.iter().any(|&(j, t)| j == 6 && t > 1.0))
        );
    }
}
