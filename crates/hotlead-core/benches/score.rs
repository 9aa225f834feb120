//! Scoring speed: one lead with 1,000 events against 100 rules, beside two peers
//! measured in the same run: the same lead against 10 rules, and the floor any scorer
//! pays to put 1,000 events in time order. `scripts/bench` prints the ratios.

use std::hint::black_box;

/// The allocator of the programs that score (`hotlead`, the score function).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group};
use hotlead_core::{Event, Lead, RuleSet, score};
use serde_json::json;

const PATHS: [&str; 10] = [
    "/pricing",
    "/pricing/enterprise",
    "/docs/api",
    "/docs/guide/start",
    "/blog/lead-scoring",
    "/customers/maker",
    "/careers",
    "/features/alerts",
    "/",
    "/contact",
];
const NAMES: [&str; 5] = [
    "Document Downloaded",
    "Demo Requested",
    "Webinar Attended",
    "Trial Started",
    "Newsletter Opened",
];

fn rules(count: usize) -> RuleSet {
    let mut text = String::from(
        "name = \"bench\"\nversion = 1\nutc_offset = \"+09:00\"\n[bands]\nhot = 100\nhot_exit = 85\nwarm = 50\n\
         [groups.fit]\naxis = \"fit\"\nmax = 80\n[groups.engagement]\naxis = \"engagement\"\nmax = 120\ndecay = { half_life_days = 30 }\n\
         [lists]\ntitles = [\"部長\", \"取締役\", \"director\", \"vp\", \"head of\"]\n",
    );
    for i in 0..count {
        let points = if i % 10 == 9 { -5 } else { 1 + i as i64 % 9 };
        text += &format!("[[rules]]\nid = \"r{i}\"\npoints = {points}\n");
        text += match i % 10 {
            0 => "group = \"fit\"\nwhen = { attribute = \"employees\", gte = 1000 }\n".to_string(),
            1 => "group = \"fit\"\nwhen = { attribute = \"title\", contains_list = \"titles\" }\n".to_string(),
            2 => "group = \"fit\"\nwhen = { any = [{ attribute = \"industry\", one_of = [\"製造業\", \"it\"] }, { attribute = \"capital\", gte = 1e9 }] }\n".to_string(),
            3 => format!("group = \"engagement\"\nevent = {{ type = \"page\", path = \"{}*\" }}\ncount = \"every\"\ndaily_cap = 10\ncap = 40\n", PATHS[i % PATHS.len()]),
            4 => format!("group = \"engagement\"\nevent = {{ type = \"page\", path = \"{}\" }}\nat_least = 3\nwithin_days = 90\n", PATHS[(i / 10) % PATHS.len()]),
            5 => format!("group = \"engagement\"\nevent = {{ type = \"track\", name = \"{}\" }}\n", NAMES[i % NAMES.len()]),
            6 => "group = \"engagement\"\nevent = { type = \"track\", name = \"Document*\", properties = { category = \"white*\" } }\ncount = \"every\"\ncap = 30\n".to_string(),
            7 => "group = \"engagement\"\nevent = { utm_medium = [\"cpc\", \"paid*\"] }\nwithin_days = 30\n".to_string(),
            8 => format!("group = \"engagement\"\nevent = {{ type = \"page\", path = \"/docs/**\" }}\ncount = \"every\"\ndecay = {{ expires_after_days = {} }}\n", 30 + i),
            _ => "group = \"engagement\"\nevent = { type = \"page\", path = \"/careers*\" }\ndecay = { none = true }\n".to_string(),
        }
        .as_str();
    }
    RuleSet::from_toml("bench.toml", &text).expect("bench rules are valid")
}

fn events(count: usize, now: DateTime<Utc>) -> Vec<Event> {
    (0..count)
        .map(|i| {
            let at = (now - Duration::minutes((i as i64 * 7919) % (180 * 24 * 60))).to_rfc3339();
            let value = if i % 4 == 3 {
                json!({"type": "track", "messageId": format!("m{i}"), "userId": "L", "timestamp": at,
                    "event": NAMES[i % NAMES.len()], "properties": {"category": if i % 3 == 0 { "whitepaper" } else { "case" }}})
            } else {
                json!({"type": "page", "messageId": format!("m{}", if i % 50 == 0 { i - i % 100 } else { i }), "userId": "L", "timestamp": at,
                    "context": {"page": {"path": PATHS[i % PATHS.len()]}, "userAgent": "Mozilla/5.0",
                                "campaign": {"medium": if i % 5 == 0 { "cpc" } else { "email" }}}})
            };
            Event::from_segment(&value).expect("bench events are valid")
        })
        .collect()
}

/// The scoring time of every case.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// The floor: the events in time order (then by message id), as any scorer orders them.
fn sorted(events: &[Event]) -> Vec<&Event> {
    let mut refs: Vec<&Event> = events.iter().collect();
    refs.sort_by(|a, b| (a.timestamp, &a.message_id).cmp(&(b.timestamp, &b.message_id)));
    refs
}

fn lead() -> Lead {
    Lead::from_raw(
        "L",
        [
            ("employees", "１，２００名"),
            ("title", "営業本部 部長"),
            ("industry", "製造業"),
            ("capital", "500億円"),
            ("email", "a@b.example"),
        ],
    )
}

fn bench(c: &mut Criterion) {
    let now = now();
    let lead = lead();
    let events = events(1000, now);
    let (rules_100, rules_10) = (rules(100), rules(10));
    let mut group = c.benchmark_group("score");
    group.bench_function("100_rules_1000_events", |b| {
        b.iter(|| {
            score(
                black_box(&rules_100),
                black_box(&lead),
                black_box(&events),
                now,
                None,
            )
        })
    });
    group.bench_function("10_rules_1000_events", |b| {
        b.iter(|| {
            score(
                black_box(&rules_10),
                black_box(&lead),
                black_box(&events),
                now,
                None,
            )
        })
    });
    group.bench_function("sort_1000_events_floor", |b| {
        b.iter(|| sorted(black_box(&events)).len())
    });
    group.finish();
}

criterion_group!(benches, bench);

/// Criterion's runs; or, with `SCORE_BENCH_RUNS=N`, only N runs of one of the three
/// (`SCORE_BENCH_ONE` = `100` rules, the default, `10` rules or `sort`) and nothing else:
/// a fixed amount of work for `valgrind --tool=cachegrind`, whose counts of instructions
/// and cache misses do not vary with the machine's load as times do.
///
/// With `SCORE_BENCH_ALTERNATE=N`, N rounds that each time the 100-rule score and the sort
/// one after the other, about 50 ms each, in this one process: the ratio of each round is
/// taken while the machine runs at one speed (criterion measures each case for seconds,
/// one after the other, and a shared machine's speed drifts between them). Prints the
/// median ratio, the lowest and the highest, and the median time of each case.
fn main() {
    if let Ok(rounds) = std::env::var("SCORE_BENCH_ALTERNATE") {
        alternate(rounds.parse().expect("SCORE_BENCH_ALTERNATE is a count"));
        return;
    }
    let Ok(runs) = std::env::var("SCORE_BENCH_RUNS") else {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    };
    let runs: usize = runs.parse().expect("SCORE_BENCH_RUNS is a count");
    let one = std::env::var("SCORE_BENCH_ONE").unwrap_or_else(|_| "100".into());
    let now = now();
    let (lead, events) = (lead(), events(1000, now));
    let mut total = 0;
    if one == "sort" {
        for _ in 0..runs {
            total += one_sort(&events);
        }
    } else {
        let rules = rules(one.parse().expect("SCORE_BENCH_ONE is 100, 10 or sort"));
        for _ in 0..runs {
            total += one_score(&rules, &lead, &events, now);
        }
    }
    println!("{runs} runs of {one}: {total}");
}

/// One score, its points as a number (for the runs outside criterion).
fn one_score(rules: &RuleSet, lead: &Lead, events: &[Event], now: DateTime<Utc>) -> i64 {
    score(
        black_box(rules),
        black_box(lead),
        black_box(events),
        now,
        None,
    )
    .score
    .hundredths()
}

/// One sort of the events, a number from it (for the runs outside criterion).
fn one_sort(events: &[Event]) -> i64 {
    black_box(sorted(black_box(events)))[0].message_id.len() as i64
}

/// Rounds of the 100-rule score against the sort, alternating (see [`main`]): each round
/// times them in the other order than the round before, so that what one case leaves
/// (the caches, the machine's speed a moment later) weighs on both alike.
fn alternate(rounds: usize) {
    let rounds = rounds.max(1);
    let now = now();
    let (lead, events, rules) = (lead(), events(1000, now), rules(100));
    let each = |runs: usize, work: &dyn Fn() -> i64| {
        let started = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..runs {
            total += work();
        }
        black_box(total);
        started.elapsed().as_secs_f64() / runs as f64
    };
    let scored = || one_score(&rules, &lead, &events, now);
    let sort = || one_sort(&events);
    // Warm, about half a second: the allocator's pages, the caches, the rule texts kept,
    // the processor's clock.
    for _ in 0..4 {
        each(1_000, &scored);
        each(3_000, &sort);
    }
    let (mut ratios, mut scores, mut sorts) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = each(1_000, &scored);
            (a, each(3_000, &sort))
        } else {
            let b = each(3_000, &sort);
            (each(1_000, &scored), b)
        };
        ratios.push(a / b);
        scores.push(a);
        sorts.push(b);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let (low, high) = (values[(values.len() - 1) / 2], values[values.len() / 2]);
        ((low + high) / 2.0, values[0], values[values.len() - 1])
    };
    let (ratio, lowest, highest) = median(ratios);
    println!(
        "alternating {rounds} rounds: 100 rules {:.1} us, sort {:.1} us, ratio {ratio:.2} (lowest {lowest:.2}, highest {highest:.2})",
        median(scores).0 * 1e6,
        median(sorts).0 * 1e6,
    );
}
