//! The shipped example rules say what the domain definitions say.

use hotlead_core::score::Evidence;
use hotlead_core::{Band, Lead, Points, score};
use hotlead_tests::{example_rules, page, time, track};

const NOW: &str = "2026-11-20T09:00:00+09:00";

fn enterprise(employees: &str, capital: &str) -> Lead {
    Lead::from_raw(
        "L1",
        [
            ("email", "taro@sample.example"),
            ("employees", employees),
            ("capital", capital),
            ("company", "株式会社サンプル"),
        ],
    )
}

fn pricing_views(days_ago: &[i64]) -> Vec<hotlead_core::Event> {
    days_ago
        .iter()
        .enumerate()
        .map(|(i, days)| {
            let at = (time(NOW) - chrono::Duration::days(*days)).to_rfc3339();
            page(&format!("m{i}"), "L1", &at, "/pricing")
        })
        .collect()
}

#[test]
fn seed_size_capital_and_three_pricing_views_in_90_days_make_a_lead_hot() {
    let rules = example_rules("examples/rules/seed.toml");
    let result = score(
        &rules,
        &enterprise("１，０００名", "500億円"),
        &pricing_views(&[1, 30, 89]),
        time(NOW),
        None,
    );
    assert_eq!(result.score, Points::whole(80));
    assert_eq!(result.band, Band::Hot);
    let rules_hit: Vec<&str> = result
        .contributions
        .iter()
        .map(|c| c.rule.as_str())
        .collect();
    assert_eq!(
        rules_hit,
        [
            "employees-1000-plus",
            "pricing-page-3-times-90-days",
            "capital-50-billion-yen-plus"
        ]
    );
}

#[test]
fn seed_any_one_factor_missing_keeps_a_lead_below_hot() {
    let rules = example_rules("examples/rules/seed.toml");
    let cases = [
        ("999名", "500億円", vec![1, 2, 3]),
        ("1,000名", "499億円", vec![1, 2, 3]),
        ("1,000名", "500億円", vec![1, 2]),
        ("1,000名", "500億円", vec![1, 2, 91]),
        ("100〜999名", "1兆円", vec![1, 2, 3]),
    ];
    for (employees, capital, views) in cases {
        let result = score(
            &rules,
            &enterprise(employees, capital),
            &pricing_views(&views),
            time(NOW),
            None,
        );
        assert_ne!(
            result.band,
            Band::Hot,
            "{employees} / {capital} / {views:?}: {}",
            result.score
        );
    }
}

#[test]
fn seed_fewer_than_100_employees_stays_cold_whatever_it_does() {
    let rules = example_rules("examples/rules/seed.toml");
    let lead = enterprise("99名", "1兆円");
    let result = score(
        &rules,
        &lead,
        &pricing_views(&[1, 2, 3, 4, 5]),
        time(NOW),
        Some(Band::Hot),
    );
    assert_eq!(result.band, Band::Cold);
    let limit = result.band_limit.expect("the band limit is explained");
    assert_eq!(limit.rule, "employees-under-100");
    assert_eq!(limit.from, Band::Warm);
}

#[test]
fn seed_document_downloads_and_demo_requests_alert_whatever_the_score() {
    let rules = example_rules("examples/rules/seed.toml");
    let lead = Lead::from_raw("L1", [("employees", "10名")]);
    let events = vec![
        track(
            "d1",
            "L1",
            "2026-11-19T10:00:00+09:00",
            "Document Downloaded",
        ),
        track("d2", "L1", "2026-11-19T11:00:00+09:00", "Demo Requested"),
        track("d3", "L1", "2026-11-19T12:00:00+09:00", "Newsletter Opened"),
    ];
    let result = score(&rules, &lead, &events, time(NOW), None);
    assert_eq!(result.band, Band::Cold);
    let alerts: Vec<(&str, &str)> = result
        .alerts
        .iter()
        .map(|a| (a.alert.as_str(), a.message_id.as_str()))
        .collect();
    assert_eq!(
        alerts,
        [("document-downloaded", "d1"), ("demo-requested", "d2")]
    );
}

#[test]
fn seed_evidence_keeps_the_raw_form_value_beside_the_normalised_one() {
    let rules = example_rules("examples/rules/seed.toml");
    let result = score(
        &rules,
        &enterprise("１，２００名", "600億円"),
        &[],
        time(NOW),
        None,
    );
    let employees = result
        .contributions
        .iter()
        .find(|c| c.rule == "employees-1000-plus")
        .expect("matched");
    let Evidence::Attributes { attributes } = &employees.evidence else {
        panic!("attribute evidence")
    };
    assert_eq!(attributes[0].raw.as_deref(), Some("１，２００名"));
    assert_eq!(attributes[0].value.as_deref(), Some("1,200名"));
}

#[test]
fn saas_example_grades_fit_and_engagement_and_penalises_competitors() {
    let rules = example_rules("examples/rules/saas.toml");
    let vp = Lead::from_raw(
        "L1",
        [
            ("email", "ceo@bigco.example"),
            ("employees", "3,000名"),
            ("industry", "製造業"),
            ("title", "取締役 CTO"),
            ("budget", "500万円〜1,000万円"),
            ("authority", "決裁者"),
            ("timeframe", "3ヶ月以内"),
        ],
    );
    let events = vec![
        track("t1", "L1", "2026-11-19T10:00:00+09:00", "Demo Requested"),
        page("p1", "L1", "2026-11-19T10:01:00+09:00", "/pricing"),
        page("p2", "L1", "2026-11-19T10:02:00+09:00", "/pricing"),
        page("p3", "L1", "2026-11-19T10:03:00+09:00", "/pricing"),
    ];
    let result = score(&rules, &vp, &events, time(NOW), None);
    assert_eq!(result.band, Band::Hot, "{:#?}", result.contributions);
    assert_eq!(result.grade, "A1");
    let pricing = result
        .contributions
        .iter()
        .find(|c| c.rule == "pricing-views")
        .expect("pricing views count");
    assert!(
        pricing.points <= Points::whole(10),
        "daily cap of 10 holds: {}",
        pricing.points
    );
    assert!(result.alerts.iter().any(|a| a.alert == "demo-requested"));

    let rival = Lead::from_raw(
        "L1",
        [
            ("email", "spy@jp.rival-crm.example"),
            ("employees", "3,000名"),
        ],
    );
    let result = score(&rules, &rival, &events, time(NOW), None);
    assert_eq!(result.band, Band::Cold);
    assert!(result.contributions.iter().any(|c| c.rule == "competitor"));
}

#[test]
fn saas_example_drops_internal_people_and_networks() {
    let rules = example_rules("examples/rules/saas.toml");
    let staff = Lead::from_raw(
        "L1",
        [("email", "me@saas-crm.example"), ("employees", "3,000名")],
    );
    let result = score(&rules, &staff, &[], time(NOW), None);
    assert_eq!(result.score, Points::ZERO);
    assert!(result.excluded.is_some());
    assert!(result.contributions.is_empty());

    let lead = Lead::from_raw("L2", [("employees", "3,000名")]);
    let from_office = hotlead_tests::segment(serde_json::json!({
        "type": "track", "messageId": "x", "userId": "L2", "event": "Demo Requested",
        "timestamp": "2026-11-19T10:00:00+09:00", "context": {"ip": "203.0.113.20"}
    }));
    let result = score(&rules, &lead, &[from_office], time(NOW), None);
    assert_eq!(result.events.internal_network, 1);
    assert!(result.alerts.is_empty());
}
