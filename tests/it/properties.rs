//! Properties of the scoring function, over generated rules and events.

use chrono::Duration;
use hotlead_core::score::Evidence;
use hotlead_core::{Event, Lead, Points, RuleSet, Score, score};
use hotlead_tests::{rules, segment, time};
use proptest::prelude::*;
use serde_json::json;

const MATCHERS: &[&str] = &[
    r#"{ type = "page", path = "/pricing*" }"#,
    r#"{ type = "page", path = "/docs/**" }"#,
    r#"{ type = "page" }"#,
    r#"{ type = "track", name = "Demo Requested" }"#,
    r#"{ type = "track", name = ["Document Downloaded", "Webinar*"] }"#,
    r#"{ utm_medium = "cpc" }"#,
];
const PATHS: &[&str] = &[
    "/pricing",
    "/pricing/enterprise",
    "/docs/api/intro",
    "/blog/post",
    "/careers",
];
const NAMES: &[&str] = &[
    "Demo Requested",
    "Document Downloaded",
    "Webinar Attended",
    "Signed Up",
];

/// One generated behaviour rule, as TOML.
#[derive(Debug, Clone)]
struct BehaviourRule {
    matcher: usize,
    points: i32,
    every: bool,
    at_least: u32,
    within_days: Option<u32>,
    cap: Option<u32>,
    daily_cap: Option<u32>,
    decay: u8,
    decay_days: u32,
    group: &'static str,
}

impl BehaviourRule {
    /// Keeps a penalty from fading or expiring, so that time alone can only lower a score.
    fn without_fading_penalties(mut self) -> Self {
        if self.points < 0 {
            self.within_days = None;
            if self.decay == 2 {
                self.decay = 0;
            }
        }
        self
    }

    fn toml(&self, index: usize) -> String {
        let mut text = format!(
            "[[rules]]\nid = \"b{index}\"\ngroup = \"{}\"\npoints = {}\nevent = {}\n",
            self.group, self.points, MATCHERS[self.matcher]
        );
        if self.every {
            text += "count = \"every\"\n";
            if let Some(cap) = self.cap {
                text += &format!("cap = {cap}\n");
            }
            if let Some(cap) = self.daily_cap {
                text += &format!("daily_cap = {cap}\n");
            }
        } else {
            text += &format!("at_least = {}\n", self.at_least);
        }
        if let Some(days) = self.within_days {
            text += &format!("within_days = {days}\n");
        }
        match self.decay {
            1 => text += &format!("decay = {{ half_life_days = {} }}\n", self.decay_days),
            2 => text += &format!("decay = {{ expires_after_days = {} }}\n", self.decay_days),
            _ => {}
        }
        text
    }
}

fn behaviour_rule() -> impl Strategy<Value = BehaviourRule> {
    (
        0..MATCHERS.len(),
        -20i32..=40,
        any::<bool>(),
        1u32..=4,
        proptest::option::of(1u32..=120),
        proptest::option::of(1u32..=60),
        proptest::option::of(1u32..=20),
        0u8..=2,
        1u32..=90,
        prop_oneof![Just("engagement"), Just("custom")],
    )
        .prop_map(
            |(
                matcher,
                points,
                every,
                at_least,
                within_days,
                cap,
                daily_cap,
                decay,
                decay_days,
                group,
            )| {
                BehaviourRule {
                    matcher,
                    points,
                    every,
                    at_least,
                    within_days,
                    cap,
                    daily_cap,
                    decay,
                    decay_days,
                    group,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct Groups {
    engagement_max: Option<u32>,
    engagement_min: Option<i32>,
    custom_max: Option<u32>,
    fit_max: Option<u32>,
}

fn groups() -> impl Strategy<Value = Groups> {
    (
        proptest::option::of(0u32..=80),
        proptest::option::of(-50i32..=0),
        proptest::option::of(0u32..=30),
        proptest::option::of(0u32..=40),
    )
        .prop_map(
            |(engagement_max, engagement_min, custom_max, fit_max)| Groups {
                engagement_max,
                engagement_min,
                custom_max,
                fit_max,
            },
        )
}

fn rule_set(groups: &Groups, behaviour: &[BehaviourRule]) -> RuleSet {
    let opt = |key: &str, value: Option<String>| {
        value.map(|v| format!("{key} = {v}\n")).unwrap_or_default()
    };
    let mut text = String::from(
        "name = \"generated\"\nversion = 1\nutc_offset = \"+09:00\"\n[bands]\nhot = 60\nhot_exit = 50\nwarm = 30\n",
    );
    text += &format!(
        "[groups.fit]\naxis = \"fit\"\n{}",
        opt("max", groups.fit_max.map(|v| v.to_string()))
    );
    text += &format!(
        "[groups.engagement]\naxis = \"engagement\"\n{}{}",
        opt("max", groups.engagement_max.map(|v| v.to_string())),
        opt("min", groups.engagement_min.map(|v| v.to_string()))
    );
    text += &format!(
        "[groups.custom]\naxis = \"none\"\n{}",
        opt("max", groups.custom_max.map(|v| v.to_string()))
    );
    text += "[[rules]]\nid = \"big\"\ngroup = \"fit\"\npoints = 25\nwhen = { attribute = \"employees\", gte = 1000 }\n";
    text += "[[rules]]\nid = \"free-mail\"\ngroup = \"fit\"\npoints = -10\nwhen = { attribute = \"email_domain\", one_of = [\"gmail.com\"] }\n";
    for (i, rule) in behaviour.iter().enumerate() {
        text += &rule.toml(i);
    }
    text += "[[alerts]]\nid = \"demo\"\nevent = { type = \"track\", name = \"Demo Requested\" }\nwithin_days = 30\n";
    rules(&text)
}

const BASE: &str = "2026-06-01T00:00:00Z";

/// Events: (page or track, which path/name, minutes after BASE, message id, cpc?).
fn events(max: usize) -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        (
            any::<bool>(),
            0usize..5,
            0i64..(200 * 24 * 60),
            any::<bool>(),
        ),
        0..max,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (is_page, which, minutes, cpc))| {
                event(&format!("m{i}"), is_page, which, minutes, cpc)
            })
            .collect()
    })
}

fn event(message_id: &str, is_page: bool, which: usize, minutes: i64, cpc: bool) -> Event {
    let at = (time(BASE) + Duration::minutes(minutes)).to_rfc3339();
    let campaign = if cpc {
        json!({"medium": "cpc"})
    } else {
        json!({})
    };
    if is_page {
        segment(
            json!({"type": "page", "messageId": message_id, "userId": "L", "timestamp": at,
            "context": {"page": {"path": PATHS[which]}, "campaign": campaign}}),
        )
    } else {
        segment(
            json!({"type": "track", "messageId": message_id, "userId": "L", "timestamp": at,
            "event": NAMES[which % NAMES.len()], "context": {"campaign": campaign}}),
        )
    }
}

fn lead() -> impl Strategy<Value = Lead> {
    (
        prop_oneof![Just("50"), Just("1,000名"), Just("100〜4,999名")],
        any::<bool>(),
    )
        .prop_map(|(employees, free)| {
            let email = if free {
                "a@gmail.com"
            } else {
                "a@corp.example"
            };
            Lead::from_raw("L", [("employees", employees), ("email", email)])
        })
}

/// When "now" is: somewhere in or after the events' span.
fn now() -> impl Strategy<Value = chrono::DateTime<chrono::Utc>> {
    (0i64..(260 * 24 * 60)).prop_map(|minutes| time(BASE) + Duration::minutes(minutes))
}

fn same_result(a: &Score, b: &Score) -> bool {
    a.score == b.score
        && a.band == b.band
        && a.grade == b.grade
        && a.contributions == b.contributions
        && a.groups == b.groups
        && a.alerts == b.alerts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_total_is_the_sum_of_contributions_after_caps_and_caps_hold(
        groups in groups(),
        behaviour in proptest::collection::vec(behaviour_rule(), 0..8),
        lead in lead(),
        events in events(60),
        now in now(),
    ) {
        let rules = rule_set(&groups, &behaviour);
        let result = score(&rules, &lead, &events, now, None);
        let from_contributions: Points = result.contributions.iter().map(|c| c.points).sum();
        let from_groups: Points = result.groups.iter().map(|g| g.points).sum();
        prop_assert_eq!(result.score, from_contributions);
        prop_assert_eq!(result.score, from_groups);
        for group in &result.groups {
            let of_group: Points = result.contributions.iter().filter(|c| c.group == group.group).map(|c| c.points).sum();
            prop_assert_eq!(of_group, group.points, "group {}", group.group);
            let compiled = rules.groups.iter().find(|g| g.id == group.group).unwrap();
            if let Some(max) = compiled.max { prop_assert!(group.points <= max); }
            if let Some(min) = compiled.min { prop_assert!(group.points >= min); }
        }
        for (i, rule) in behaviour.iter().enumerate() {
            let Some(c) = result.contributions.iter().find(|c| c.rule == format!("b{i}")) else { continue };
            prop_assert!(c.points.hundredths().abs() <= rule.points.unsigned_abs() as i64 * 100 * events.len().max(1) as i64);
            if let (true, Some(cap)) = (rule.every, rule.cap) {
                prop_assert!(c.points.hundredths().abs() <= cap as i64 * 100, "rule b{} gave {} over its cap {}", i, c.points, cap);
            }
            if !rule.every {
                prop_assert!(c.points.hundredths().abs() <= rule.points.unsigned_abs() as i64 * 100);
                let Evidence::Events { count, .. } = c.evidence else { panic!("event evidence") };
                prop_assert!(count >= rule.at_least as usize);
            }
        }
    }

    #[test]
    fn duplicate_message_ids_count_once(
        groups in groups(),
        behaviour in proptest::collection::vec(behaviour_rule(), 1..6),
        lead in lead(),
        events in events(40),
        repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        now in now(),
    ) {
        let rules = rule_set(&groups, &behaviour);
        let once = score(&rules, &lead, &events, now, None);
        let mut with_repeats = events.clone();
        if !events.is_empty() {
            with_repeats.extend(repeats.iter().map(|i| events[i.index(events.len())].clone()));
        }
        let repeated = score(&rules, &lead, &with_repeats, now, None);
        prop_assert!(same_result(&once, &repeated));
        prop_assert_eq!(repeated.events.duplicates, with_repeats.len() - events.len());
    }

    #[test]
    fn the_order_of_events_does_not_change_the_result(
        groups in groups(),
        behaviour in proptest::collection::vec(behaviour_rule(), 1..6),
        lead in lead(),
        (events, shuffled) in events(40)
            .prop_flat_map(|events| {
                // Some message ids shared by different events, too.
                let mut events = events;
                for i in (3..events.len()).step_by(7) {
                    events[i].message_id = events[i - 3].message_id.clone();
                }
                (Just(events.clone()), Just(events).prop_shuffle())
            }),
        now in now(),
    ) {
        let rules = rule_set(&groups, &behaviour);
        let a = score(&rules, &lead, &events, now, None);
        let b = score(&rules, &lead, &shuffled, now, None);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn with_no_new_events_decay_never_raises_a_score(
        groups in groups(),
        behaviour in proptest::collection::vec(behaviour_rule().prop_map(BehaviourRule::without_fading_penalties), 1..8),
        lead in lead(),
        events in events(40),
        later in 0i64..(400 * 24 * 60),
        steps in 1usize..4,
    ) {
        let rules = rule_set(&groups, &behaviour);
        let start = time(BASE) + Duration::days(200);
        let mut previous = score(&rules, &lead, &events, start, None).score;
        for step in 1..=steps {
            let at = start + Duration::minutes(later * step as i64 / steps as i64);
            let current = score(&rules, &lead, &events, at, None).score;
            prop_assert!(current <= previous, "score rose from {} to {} at {}", previous, current, at);
            previous = current;
        }
    }
}
