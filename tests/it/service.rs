//! The scorer and notifier services with an injected clock: alerts per crossing, retries,
//! and the demo.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use hotlead_app::ingest::FormSubmission;
use hotlead_app::scorer::{ManualClock, SequentialIds};
use hotlead_app::{Config, Ingest, Notifier, NotifyError, Scorer};
use hotlead_core::alert::AlertMessage;
use hotlead_embedded::SqliteStore;
use hotlead_tests::{rules, time};
use serde_json::json;
use tokio::sync::Notify;

/// Fails its first `failures` deliveries, then records what it delivers.
#[derive(Default)]
struct FlakyNotifier {
    failures: AtomicUsize,
    delivered: Mutex<Vec<AlertMessage>>,
}

#[async_trait]
impl Notifier for FlakyNotifier {
    async fn deliver(&self, alert: &AlertMessage) -> Result<(), NotifyError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(NotifyError::transient("mail server unavailable"));
        }
        self.delivered.lock().unwrap().push(alert.clone());
        Ok(())
    }
}

const RULES: &str = r#"
name = "t"
version = 1
[bands]
hot = 50
hot_exit = 40
warm = 20
[groups.engagement]
axis = "engagement"
[[rules]]
id = "pricing"
label = "Pricing views"
group = "engagement"
points = 25
event = { type = "page", path = "/pricing" }
count = "every"
decay = { expires_after_days = 10 }
[[alerts]]
id = "demo"
label = "Demo requested"
event = { type = "track", name = "Demo Requested" }
"#;

struct World {
    clock: Arc<ManualClock>,
    notifier: Arc<FlakyNotifier>,
    ingest: Ingest,
    scorer: Scorer,
}

fn world(failures: usize, config: Config) -> World {
    world_with(failures, config, RULES)
}

fn world_with(failures: usize, config: Config, rules_text: &str) -> World {
    world_on(
        Arc::new(SqliteStore::in_memory().unwrap()),
        failures,
        config,
        rules_text,
    )
}

fn world_on(store: Arc<SqliteStore>, failures: usize, config: Config, rules_text: &str) -> World {
    let clock = Arc::new(ManualClock::at(time("2026-11-01T00:00:00Z")));
    let notifier = Arc::new(FlakyNotifier {
        failures: AtomicUsize::new(failures),
        ..FlakyNotifier::default()
    });
    let config = Arc::new(config);
    let scorer = Scorer::new(
        store.clone(),
        notifier.clone(),
        clock.clone(),
        Arc::new(rules(rules_text)),
        config.clone(),
    );
    let ingest = Ingest::new(
        store,
        clock.clone(),
        Arc::new(SequentialIds::default()),
        config,
        Arc::new(Notify::new()),
    );
    World {
        clock,
        notifier,
        ingest,
        scorer,
    }
}

impl World {
    async fn form(&self) {
        self.submit(vec![
            ("email".into(), "a@b.jp".into()),
            ("anonymousId".into(), "x".into()),
            ("name".into(), "Taro Yamada".into()),
        ])
        .await;
    }

    /// Submits form `f` with `fields`.
    async fn submit(&self, fields: Vec<(String, String)>) {
        self.ingest
            .form(FormSubmission {
                form_id: "f".into(),
                fields,
                ..FormSubmission::default()
            })
            .await
            .unwrap();
    }

    async fn page(&self, id: &str) {
        let call = json!({"type": "page", "messageId": id, "anonymousId": "x", "timestamp": self.clock_now(), "context": {"page": {"path": "/pricing"}}});
        self.ingest.call(&call, None).await.unwrap();
    }

    fn clock_now(&self) -> String {
        use hotlead_app::Clock;
        self.clock.now().to_rfc3339()
    }

    fn advance(&self, days: i64) {
        use hotlead_app::Clock;
        self.clock.set(self.clock.now() + Duration::days(days));
    }

    fn delivered(&self) -> Vec<String> {
        self.notifier
            .delivered
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.reason.clone())
            .collect()
    }
}

/// A call that may raise an alert at once with the scorer's rules (a form, an identify,
/// an event an instant alert takes, a page view included) tells the scorer not to wait
/// out its gap; other views and actions only wake it for its next round. A repeated
/// call, which stores nothing, tells it nothing.
#[tokio::test]
async fn calls_that_may_alert_at_once_are_urgent_and_others_are_not() {
    let rules = format!(
        "{RULES}[[alerts]]\nid = \"pricing_now\"\nlabel = \"Pricing, enterprise\"\n\
         event = {{ type = \"page\", path = \"/pricing/enterprise\" }}\n"
    );
    let world = world_with(0, Config::default(), &rules);
    let urgent = Arc::new(Notify::new());
    let ingest = world
        .ingest
        .clone()
        .with_urgent(urgent.clone(), world.scorer.clone());
    // Whether `urgent` was notified since it was last asked (without waiting).
    let told = || async {
        tokio::time::timeout(std::time::Duration::ZERO, urgent.notified())
            .await
            .is_ok()
    };
    let now = world.clock_now();
    let call = |kind: &str, id: &str, what: &str| {
        let mut call = json!({"type": kind, "messageId": id, "anonymousId": "x", "timestamp": now});
        match kind {
            "track" => call["event"] = json!(what),
            "identify" => call["traits"] = json!({"title": what}),
            _ => call["context"] = json!({"page": {"path": what}}),
        }
        call
    };
    // The form makes the lead the anonymous id's calls then go to (an anonymous id's
    // calls before any lead has it wake nothing: there is no lead to score).
    ingest
        .form(FormSubmission {
            form_id: "f".into(),
            fields: vec![
                ("email".into(), "a@b.jp".into()),
                ("anonymousId".into(), "x".into()),
            ],
            ..FormSubmission::default()
        })
        .await
        .unwrap();
    assert!(told().await, "a form is urgent");
    // Stores `call`; whether it told the scorer not to wait.
    let (ingest, told) = (&ingest, &told);
    let sent = |call: serde_json::Value| async move {
        ingest.call(&call, None).await.unwrap();
        told().await
    };
    assert!(
        !sent(call("page", "p1", "/pricing")).await,
        "a view no alert takes"
    );
    assert!(
        !sent(call("screen", "s1", "/pricing")).await,
        "a screen view"
    );
    assert!(
        !sent(call("track", "t0", "Button Clicked")).await,
        "an action no alert takes"
    );
    assert!(
        sent(call("page", "p2", "/pricing/enterprise")).await,
        "a page view an alert takes"
    );
    assert!(
        sent(call("track", "t1", "Demo Requested")).await,
        "an action an alert takes"
    );
    assert!(sent(call("identify", "i1", "部長")).await, "an identify");
    assert!(
        !sent(call("track", "t1", "Demo Requested")).await,
        "a repeated call stores nothing"
    );
}

/// A form sent twice within the hour (a double click, a reload) is one event; the same
/// values from the same browser an hour or months later are a new submission, which
/// counts.
#[tokio::test]
async fn the_same_form_sent_again_later_is_a_new_submission() {
    use hotlead_app::FormOutcome;
    let w = world(0, Config::default());
    let send = async || {
        let submission = FormSubmission {
            form_id: "contact".into(),
            fields: vec![
                ("email".into(), "a@b.jp".into()),
                ("company".into(), "Example KK".into()),
            ],
            cookie_anonymous_id: Some("browser-1".into()),
            ..FormSubmission::default()
        };
        match w.ingest.form(submission).await.unwrap() {
            FormOutcome::Stored { duplicate, .. } => duplicate,
            other => panic!("not stored: {other:?}"),
        }
    };
    let start = time("2026-11-01T00:00:00Z");
    assert!(!send().await, "the first submission");
    w.clock.set(start + Duration::minutes(20));
    assert!(send().await, "sent again within the hour: a duplicate");
    w.clock.set(start + Duration::minutes(61));
    assert!(!send().await, "an hour later: a new submission");
    w.clock.set(start + Duration::days(120));
    assert!(!send().await, "months later: a new submission");
    let lead = w.ingest.store().lead("L-0001").await.unwrap().unwrap();
    let forms = w.ingest.store().events(&lead.id).await.unwrap();
    assert_eq!(forms.len(), 3, "three submissions are stored: {forms:?}");
}

#[tokio::test]
async fn a_lead_alerts_once_per_hot_crossing_not_once_ever_nor_every_event() {
    let w = world(0, Config::default());
    w.form().await;
    w.page("p1").await;
    w.page("p2").await;
    w.scorer.run_once().await.unwrap();
    assert_eq!(w.delivered(), ["hot"]);
    w.page("p3").await;
    w.scorer.run_once().await.unwrap();
    assert_eq!(w.delivered(), ["hot"], "still hot: no new alert");
    // The views expire: the lead cools down, then heats up again: a second crossing.
    w.advance(11);
    w.scorer.rescore_marked().await.unwrap();
    w.page("p4").await;
    w.scorer.run_once().await.unwrap();
    w.page("p5").await;
    w.scorer.run_once().await.unwrap();
    assert_eq!(w.delivered(), ["hot", "hot"]);
}

/// The follow-up deadline: 2 business hours (Monday to Friday, 09:00 to 18:00 UTC). A
/// hot alert on a Sunday is due on Monday at 11:00; with no rep's action by then, the
/// manager is re-alerted once; a lead a rep acted on in time is not.
#[tokio::test]
async fn a_hot_lead_nobody_acts_on_re_alerts_the_manager_once_at_its_business_deadline() {
    use hotlead_app::Clock;
    let sla_rules = format!(
        "{RULES}[follow_up]\nrespond_within_hours = 2\nescalate_to = \"manager@example.com\"\n"
    );
    for acted in [false, true] {
        let w = world_with(0, Config::default(), &sla_rules);
        w.form().await;
        w.page("p1").await;
        w.page("p2").await;
        w.scorer.scheduled_round().await;
        assert_eq!(w.delivered(), ["hot"]);
        let store = w.ingest.store();
        let lead = store.lead("L-0001").await.unwrap().unwrap();
        let records = store
            .follow_ups(
                time("2026-10-31T00:00:00Z"),
                time("2026-11-02T00:00:00Z"),
                10,
            )
            .await
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].due_at,
            Some(time("2026-11-02T11:00:00Z")),
            "Sunday's alert is due Monday 11:00"
        );
        if acted {
            w.clock.set(time("2026-11-02T10:30:00Z"));
            store
                .record_action(&hotlead_app::ports::ActionRecord {
                    lead_id: lead.id.clone(),
                    token: "token-0123456789abcdef".into(),
                    read_rev: lead.history_rev,
                    entries: vec![hotlead_app::ports::HistoryEntry {
                        lead_id: lead.id.clone(),
                        rev: lead.history_rev + 1,
                        at: w.clock.now(),
                        by: "Sato".into(),
                        change: hotlead_core::stage::Change::Action {
                            action: hotlead_core::stage::RepAction::Contacted,
                            reason: None,
                        },
                    }],
                    stage: None,
                    crossing: lead.hot_crossings,
                })
                .await
                .unwrap();
        }
        w.clock.set(time("2026-11-02T10:59:00Z"));
        assert_eq!(w.scorer.scheduled_round().await.realerted, 0);
        w.clock.set(time("2026-11-02T11:01:00Z"));
        let round = w.scorer.scheduled_round().await;
        w.clock.set(time("2026-11-02T12:00:00Z"));
        let again = w.scorer.scheduled_round().await;
        assert_eq!(again.realerted, 0, "once");
        if acted {
            assert_eq!(round.realerted, 0);
            assert_eq!(w.delivered(), ["hot"]);
            continue;
        }
        assert_eq!(round.realerted, 1);
        assert_eq!(w.delivered(), ["hot", "sla"]);
        let realert = w.notifier.delivered.lock().unwrap()[1].clone();
        assert_eq!(
            realert.routing.owner.as_deref(),
            Some("manager@example.com")
        );
        assert!(
            realert.subject.starts_with("[未対応のホットリード]"),
            "{}",
            realert.subject
        );
        let records = store
            .follow_ups(
                time("2026-10-01T00:00:00Z"),
                time("2026-11-03T00:00:00Z"),
                10,
            )
            .await
            .unwrap();
        assert_eq!(records[0].escalated_at, Some(time("2026-11-02T11:01:00Z")));
        let figures = hotlead_app::follow_up::figures(
            &records,
            time("2026-10-01T00:00:00Z"),
            time("2026-11-03T00:00:00Z"),
            None,
            w.clock.now(),
            false,
        );
        assert_eq!(
            (
                figures.total.alerts,
                figures.total.breaches,
                figures.total.realerted
            ),
            (1, 1, 1)
        );
    }
}

/// The team lead's daily digest: from its time on, once a day (whichever round runs
/// first), Monday to Friday; it counts hot and warm leads, names none, and links the
/// signed ranking page.
#[tokio::test]
async fn the_daily_digest_goes_out_once_a_working_day_from_its_time() {
    use hotlead_app::Clock;
    let config = Config::from_toml(
        "c.toml",
        "language = \"en\"\n[digest]\nsend_at = \"08:30\"\nowner = \"team-lead@example.com\"\n",
    )
    .unwrap();
    let w = world(0, config.clone());
    let links = Arc::new(hotlead_app::links::Links::new(
        hotlead_app::links::LinkKey::new(&[6u8; 32]).unwrap(),
        "https://api.example.com",
        14,
    ));
    let scorer = Scorer::new(
        w.ingest.store().clone(),
        w.notifier.clone(),
        w.clock.clone(),
        Arc::new(rules(RULES)),
        Arc::new(config),
    )
    .with_links(links.clone());
    w.form().await;
    w.page("p1").await;
    w.page("p2").await;
    // 2026-11-02 is a Monday (the rules' time zone is UTC).
    w.clock.set(time("2026-11-02T08:29:00Z"));
    scorer.scheduled_round().await;
    assert_eq!(w.delivered(), ["hot"], "not before its time");
    w.clock.set(time("2026-11-02T08:31:00Z"));
    let round = scorer.scheduled_round().await;
    assert_eq!(round.outages, 0, "{round:?}");
    w.clock.set(time("2026-11-02T17:00:00Z"));
    scorer.scheduled_round().await;
    let again = Scorer::new(
        w.ingest.store().clone(),
        w.notifier.clone(),
        w.clock.clone(),
        Arc::new(rules(RULES)),
        Arc::new(Config::from_toml("c.toml", "[digest]\nsend_at = \"08:30\"\n").unwrap()),
    )
    .with_links(links.clone());
    again.scheduled_round().await;
    assert_eq!(
        w.delivered(),
        ["hot", "digest"],
        "once a day, whichever copy runs"
    );
    let digest = w.notifier.delivered.lock().unwrap()[1].clone();
    assert_eq!(digest.subject, "[hotlead] Today's leads: 1 hot, 0 warm");
    assert_eq!(
        digest.routing.owner.as_deref(),
        Some("team-lead@example.com")
    );
    assert!(
        !digest.body.contains("Taro") && !digest.body.contains("a@b.jp"),
        "{}",
        digest.body
    );
    let url = digest.lead_url.clone();
    assert!(digest.body.contains(&url));
    let (_, query) = url.split_once('?').unwrap();
    let (e, s) = query.split_once('&').unwrap();
    assert_eq!(
        links.check_ranking(e.strip_prefix("e="), s.strip_prefix("s="), w.clock.now()),
        Ok(())
    );
    // Saturday: none; Monday again: the next one.
    w.clock.set(time("2026-11-07T09:00:00Z"));
    scorer.scheduled_round().await;
    assert_eq!(w.delivered().len(), 2);
    w.clock.set(time("2026-11-09T09:00:00Z"));
    scorer.scheduled_round().await;
    assert_eq!(w.delivered(), ["hot", "digest", "digest"]);
}

#[tokio::test]
async fn a_quiet_lead_cools_down_as_its_score_ages_without_new_events() {
    let w = world(0, Config::default());
    w.form().await;
    w.page("p1").await;
    w.page("p2").await;
    w.scorer.run_once().await.unwrap();
    assert_eq!(w.delivered(), ["hot"]);
    assert_eq!(
        w.scorer.rescore_aged(Duration::hours(1)).await.unwrap(),
        0,
        "fresh scores are left alone"
    );
    w.advance(11);
    assert_eq!(w.scorer.rescore_aged(Duration::hours(1)).await.unwrap(), 1);
    let lead = w
        .ingest
        .store()
        .ranking(None, 10, None)
        .await
        .unwrap()
        .leads
        .remove(0);
    assert_eq!(
        lead.band(),
        Some(hotlead_core::Band::Cold),
        "the expired views no longer count"
    );
}

/// A scorer that keeps leads' events between rescores and reads only new ones saves,
/// rescore after rescore, the very score a scorer that reads everything each time saves:
/// through events stored out of time order, a browser's earlier visits adopted when the
/// person signs in on it, expiry, and a cache too small for the lead.
#[tokio::test]
async fn keeping_events_between_rescores_scores_as_reading_them_all() {
    let dir = tempfile::tempdir().unwrap();
    use hotlead_app::event_cache::{DEFAULT_BYTES, EventCache};
    let caches = [
        || EventCache::new(0),
        || EventCache::new(2),
        || EventCache::of_bytes(DEFAULT_BYTES),
    ];
    let worlds = [0, 1, 2].map(|n| {
        let store = SqliteStore::open(&dir.path().join(format!("{n}.db"))).unwrap();
        let mut world = world_on(Arc::new(store), 0, Config::default(), RULES);
        world.scorer = world.scorer.with_event_cache(caches[n]());
        world
    });
    let page = |id: &str, anonymous: &str, minutes_ago: i64, w: &World| {
        use hotlead_app::Clock;
        let at = w.clock.now() - Duration::minutes(minutes_ago);
        json!({"type": "page", "messageId": id, "anonymousId": anonymous,
            "timestamp": at.to_rfc3339(), "context": {"page": {"path": "/pricing"}}})
    };
    let mut steps = 0;
    for step in 0..8 {
        for w in &worlds {
            match step {
                0 => w.form().await,
                1 => {
                    w.ingest.call(&page("p1", "x", 0, w), None).await.unwrap();
                    w.ingest.call(&page("p0", "x", 90, w), None).await.unwrap();
                }
                2 => {
                    // Another browser's visit (not the lead's yet), then one of the lead's.
                    w.ingest.call(&page("y1", "y", 30, w), None).await.unwrap();
                    w.ingest.call(&page("p1b", "x", 20, w), None).await.unwrap();
                }
                3 => {
                    let fields = vec![
                        ("email".into(), "a@b.jp".into()),
                        ("anonymousId".into(), "y".into()),
                    ];
                    w.ingest
                        .form(FormSubmission {
                            form_id: "f".into(),
                            fields,
                            ..FormSubmission::default()
                        })
                        .await
                        .unwrap();
                }
                4 => w.advance(11),
                5 => {
                    w.ingest.call(&page("p2", "x", 0, w), None).await.unwrap();
                }
                6 => {
                    w.ingest.call(&page("p3", "y", 5, w), None).await.unwrap();
                }
                _ => w.advance(1),
            };
            w.scorer.run_once().await.unwrap();
            w.scorer.rescore_aged(Duration::minutes(1)).await.unwrap();
        }
        let mut scores = Vec::new();
        for w in &worlds {
            let lead = w.ingest.store().lead("L-0001").await.unwrap().unwrap();
            assert!(lead.score.is_some());
            scores.push(serde_json::to_string(&lead.score).unwrap());
        }
        assert_eq!(
            scores[0], scores[1],
            "step {step}: a cache too small for the lead"
        );
        assert_eq!(scores[0], scores[2], "step {step}");
        steps += 1;
    }
    assert_eq!(steps, 8);
    let events = worlds[2].ingest.store().events("L-0001").await.unwrap();
    assert_eq!(events.len(), 8, "every page and both forms are the lead's");
}

/// Submits a form for `person` (an e-mail and the browser's anonymous id `person`), then
/// `calls` Segment calls from that browser, made by `call` from their number; the lead's id.
async fn person_with(
    w: &World,
    person: &str,
    calls: usize,
    call: impl Fn(usize) -> serde_json::Value,
) -> String {
    w.submit(vec![
        ("email".into(), format!("{person}@b.jp")),
        ("anonymousId".into(), person.to_string()),
    ])
    .await;
    let mut lead = None;
    for n in 0..calls {
        let recorded = w.ingest.call(&call(n), None).await.unwrap();
        lead = lead.or(recorded.lead_id);
    }
    lead.expect("the calls name the lead")
}

/// The events kept between rescores stay within their budget (the least recently used
/// leads not in use go first; when all are in use, the lead put back is not kept), a
/// lead too big for it is not kept, an idle lead is forgotten, and so is a lead that is
/// gone.
#[tokio::test]
async fn kept_events_stay_within_their_budget_and_idle_leads_are_forgotten() {
    use hotlead_app::event_cache::{EventCache, IDLE, IN_USE};
    let w = world(0, Config::default());
    let store = w.ingest.store().clone();
    let mut leads = Vec::new();
    for (person, pages) in [("a", 2), ("b", 3), ("c", 1), ("d", 6)] {
        leads.push(
            person_with(&w, person, pages, |n| {
                json!({"type": "page", "messageId": format!("{person}{n}"), "anonymousId": person,
                    "context": {"page": {"path": "/pricing"}}})
            })
            .await,
        );
    }
    // The four leads hold 3, 4, 2 and 7 events.
    let [l1, l2, l3, l4] = [0, 1, 2, 3].map(|i| leads[i].as_str());
    let cache = EventCache::new(6);
    // Reads the lead's events through the cache and puts them back at `at`: how many.
    async fn put(
        cache: &EventCache,
        store: &dyn hotlead_app::ports::Store,
        lead: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> usize {
        let (_, held) = cache.read(store, lead).await.unwrap().unwrap();
        let len = held.events.len();
        cache.put_back(held, at);
        len
    }
    let put = |lead, at| put(&cache, &*store, lead, at);
    let now = time("2026-11-01T00:00:00Z");
    let later = now + IN_USE + Duration::seconds(1);
    put(l1, now).await;
    put(l2, now).await;
    assert_eq!(
        cache.size(),
        (1, 3),
        "over budget with every lead in use: the lead put back is not kept"
    );
    assert_eq!(put(l2, later).await, 4);
    assert_eq!(
        cache.size(),
        (1, 4),
        "over budget: the least recently used lead not in use goes, down to three quarters"
    );
    assert_eq!(put(l1, later).await, 3);
    assert_eq!(cache.size(), (1, 4), "the other lead is in use");
    assert_eq!(put(l1, later + IN_USE + Duration::seconds(1)).await, 3);
    assert_eq!(
        cache.size(),
        (1, 3),
        "the second lead is no longer in use and was used least recently"
    );
    assert_eq!(put(l4, later + IN_USE + Duration::seconds(2)).await, 7);
    assert_eq!(
        cache.size(),
        (1, 3),
        "a lead bigger than the budget is not kept"
    );
    let (_, held) = cache.read(&*store, l3).await.unwrap().unwrap();
    let last = later + IN_USE + IDLE + Duration::seconds(2);
    cache.put_back(held, last);
    cache.prune(last + Duration::seconds(1));
    assert_eq!(cache.size(), (1, 2), "the first lead was idle too long");
    store
        .erase(&hotlead_app::ports::EraseSubject::Lead(l3.to_string()), now)
        .await
        .unwrap();
    assert!(cache.read(&*store, l3).await.unwrap().is_none());
    assert_eq!(cache.size(), (0, 0), "a lead that is gone is forgotten");
}

/// A cache counted in bytes counts each event for the memory it takes: a lead whose few
/// events carry large properties is not kept where a lead of many small events is, and
/// what the cache holds is what its events take.
#[tokio::test]
async fn kept_events_count_for_the_memory_they_take() {
    use hotlead_app::event_cache::EventCache;
    let w = world(0, Config::default());
    let store = w.ingest.store().clone();
    let mut leads = Vec::new();
    for (person, calls, wide) in [("small", 20, 0), ("large", 3, 25)] {
        // Up to 25 properties of 1,800 characters each.
        let properties: serde_json::Map<String, serde_json::Value> = (0..wide)
            .map(|i| (format!("p{i}"), json!("x".repeat(1_800))))
            .collect();
        leads.push(
            person_with(&w, person, calls, |n| {
                json!({"type": "track", "event": "Viewed", "messageId": format!("{person}{n}"),
                    "anonymousId": person, "properties": properties})
            })
            .await,
        );
    }
    let footprint = |events: &[hotlead_core::Event]| -> usize {
        events.iter().map(hotlead_core::Event::footprint).sum()
    };
    let small = footprint(&store.events(&leads[0]).await.unwrap());
    let large = footprint(&store.events(&leads[1]).await.unwrap());
    assert!(
        large > 100_000 && small < 100_000,
        "{small} and {large} bytes"
    );
    let cache = EventCache::of_bytes(100_000);
    let now = time("2026-11-01T00:00:00Z");
    for lead in &leads {
        let (_, held) = cache.read(&*store, lead).await.unwrap().unwrap();
        cache.put_back(held, now);
    }
    let (leads_kept, held) = cache.size();
    assert_eq!(
        leads_kept, 1,
        "the lead of 3 large events is not kept; the one of 21 small events is"
    );
    // The entry counts for itself and its list's room beside its events: leads of one
    // small event each, many of them, count for what they take.
    assert!(
        held >= small + size_of::<String>() + 2 * leads[0].len(),
        "{held} held for events of {small} bytes"
    );
    assert!(
        held < small + 64 * 1024,
        "{held} held for events of {small} bytes"
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_later_and_sent_once() {
    let w = world(2, Config::default());
    w.form().await;
    w.page("p1").await;
    w.page("p2").await;
    let first = w.scorer.run_once().await.unwrap();
    assert_eq!((first.delivered, first.failed), (0, 1));
    let too_soon = w.scorer.run_once().await.unwrap();
    assert_eq!(
        (too_soon.delivered, too_soon.failed),
        (0, 0),
        "not retried before its time"
    );
    w.advance(1);
    let second = w.scorer.run_once().await.unwrap();
    assert_eq!((second.delivered, second.failed), (0, 1));
    w.advance(1);
    let third = w.scorer.run_once().await.unwrap();
    assert_eq!((third.delivered, third.failed), (1, 0));
    w.advance(1);
    w.scorer.run_once().await.unwrap();
    assert_eq!(w.delivered(), ["hot"]);
}

#[tokio::test]
async fn instant_alerts_go_out_once_per_action_whatever_the_score_in_english_too() {
    let config = Config::from_toml(
        "c",
        "language = \"en\"\n[routing]\nowners = { unassigned = \"rep@example.com\" }\n",
    )
    .unwrap();
    let w = world(0, config);
    w.form().await;
    let demo = json!({"type": "track", "event": "Demo Requested", "messageId": "d1", "anonymousId": "x", "timestamp": w.clock_now()});
    w.ingest.call(&demo, None).await.unwrap();
    w.scorer.run_once().await.unwrap();
    w.page("p1").await;
    w.scorer.run_once().await.unwrap();
    assert_eq!(w.delivered(), ["instant:demo"]);
    let alert = w.notifier.delivered.lock().unwrap()[0].clone();
    assert!(
        alert.subject.starts_with("[Instant alert] Demo requested"),
        "{}",
        alert.subject
    );
    assert!(
        alert.body.contains("Taro Yamada")
            && alert.body.contains("Why:")
            && alert.body.contains("Recent activity:"),
        "{}",
        alert.body
    );
    assert_eq!(alert.routing.owner.as_deref(), Some("rep@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_replays_the_sample_and_shows_hot_leads_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    hotlead::demo::run(&dir.path().join("demo"), &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Hot leads, highest score first:"), "{text}");
    assert!(text.contains("  1. 80  A1  L-"), "{text}");
    assert!(
        text.contains("[ホットリード]") && text.contains("[即時アラート]"),
        "{text}"
    );
    assert!(text.contains("1 repeated, 1 bot form ignored"), "{text}");
    let outbox = std::fs::read_to_string(dir.path().join("demo/alerts.jsonl")).unwrap();
    assert!(outbox.lines().count() >= 5);
    let again = hotlead::demo::run(&dir.path().join("demo"), &mut Vec::new()).await;
    assert!(again.is_err(), "the demo never reuses a database");
}
