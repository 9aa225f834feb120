//! Alerts are never lost, never sent twice, never stalled: the scorer and the outbox
//! under injected faults, on SQLite and on DynamoDB (moto).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use hotlead_app::ingest::FormSubmission;
use hotlead_app::ports::Store;
use hotlead_app::scorer::{LeadChange, ManualClock, SequentialIds};
use hotlead_app::{Clock, Config, Ingest, Scorer};
use hotlead_tests::faults::{FaultyNotifier, FaultyStore};
use hotlead_tests::{rules, time};
use serde_json::json;
use tokio::sync::Notify;

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
[[alerts]]
id = "demo"
label = "Demo requested"
event = { type = "track", name = "Demo Requested" }
"#;

struct World {
    clock: Arc<ManualClock>,
    store: Arc<FaultyStore>,
    notifier: Arc<FaultyNotifier>,
    ingest: Ingest,
    scorer: Scorer,
}

fn world(store: Arc<dyn Store>, notifier: Arc<FaultyNotifier>, config: Config) -> World {
    let store = Arc::new(FaultyStore::new(store));
    let clock = Arc::new(ManualClock::at(time("2026-11-02T00:00:00Z")));
    let config = Arc::new(config);
    let scorer = Scorer::new(
        store.clone(),
        notifier.clone(),
        clock.clone(),
        Arc::new(rules(RULES)),
        config.clone(),
    );
    let ingest = Ingest::new(
        store.clone(),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        config,
        Arc::new(Notify::new()),
    );
    World {
        clock,
        store,
        notifier,
        ingest,
        scorer,
    }
}

/// A world with a notifier that works and the default configuration.
fn plain_world(store: Arc<dyn Store>) -> World {
    world(
        store,
        Arc::new(FaultyNotifier::default()),
        Config::default(),
    )
}

impl World {
    fn now(&self) -> String {
        self.clock.now().to_rfc3339()
    }

    fn advance(&self, minutes: i64) {
        self.clock
            .set(self.clock.now() + Duration::minutes(minutes));
    }

    /// A second scorer on the same store and notifier: another Lambda instance, or a
    /// restarted process.
    fn another_scorer(&self) -> Scorer {
        Scorer::new(
            self.store.clone(),
            self.notifier.clone(),
            self.clock.clone(),
            Arc::new(rules(RULES)),
            Arc::new(Config::default()),
        )
    }

    /// Delivered alerts (lead, reason), checked to hold no alert twice.
    fn delivered_once(&self) -> Vec<(String, String)> {
        let delivered = self.notifier.delivered.lock().unwrap().clone();
        let mut unique: Vec<_> = delivered
            .iter()
            .map(|a| (&a.lead_id, &a.reason, &a.subject, &a.body))
            .collect();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            delivered.len(),
            "an alert was delivered twice: {delivered:#?}"
        );
        self.notifier.delivered()
    }

    fn hot_alerts(&self) -> usize {
        self.delivered_once()
            .iter()
            .filter(|(_, reason)| reason == "hot")
            .count()
    }

    /// A form from `email` (browser `anon`) with extra fields; returns the lead id.
    async fn form(&self, email: &str, anon: &str, extra: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("email".to_string(), email.to_string()),
            ("anonymousId".to_string(), anon.to_string()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let outcome = self
            .ingest
            .form(FormSubmission {
                form_id: "contact".into(),
                fields,
                ..FormSubmission::default()
            })
            .await
            .unwrap();
        match outcome {
            hotlead_app::ingest::FormOutcome::Stored { lead_id, .. } => lead_id,
            other => panic!("the form was not stored: {other:?}"),
        }
    }

    async fn page(&self, message_id: &str, anon: &str) {
        let call = json!({"type": "page", "messageId": message_id, "anonymousId": anon,
            "timestamp": self.now(), "context": {"page": {"path": "/pricing"}}});
        self.ingest.call(&call, None).await.unwrap();
    }

    async fn track(&self, message_id: &str, anon: &str, name: &str) {
        let call = json!({"type": "track", "messageId": message_id, "anonymousId": anon,
            "timestamp": self.now(), "event": name});
        self.ingest.call(&call, None).await.unwrap();
    }

    /// A lead that turns hot: a form and two pricing views.
    async fn hot_lead(&self, n: usize) -> String {
        let anon = format!("browser-{n}");
        let id = self
            .form(&format!("lead{n}@example.co.jp"), &anon, &[])
            .await;
        self.page(&format!("p-{n}-1"), &anon).await;
        self.page(&format!("p-{n}-2"), &anon).await;
        id
    }

    async fn scored(&self, id: &str) -> bool {
        let lead = self.store.lead(id).await.unwrap().unwrap();
        lead.score.is_some()
    }
}

async fn sqlite() -> Arc<dyn Store> {
    Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap())
}

async fn dynamo() -> Arc<dyn Store> {
    Arc::new(hotlead_tests::aws::fresh_table().await)
}

async fn one_bad_lead_is_set_aside_and_the_others_are_scored(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let bad = w.hot_lead(0).await;
    let good = [w.hot_lead(1).await, w.hot_lead(2).await];
    w.store.corrupt(&bad);
    let round = w.scorer.scheduled_round().await;
    assert_eq!((round.rescored, round.set_aside, round.outages), (2, 1, 0));
    assert_eq!(round.waiting_aside, 1);
    for id in &good {
        assert!(
            w.scored(id).await,
            "{id} was not scored because {bad} fails"
        );
    }
    assert_eq!(w.hot_alerts(), 2, "the other leads alerted");
    let aside = w.store.set_aside_leads(10).await.unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        (aside[0].lead_id.as_str(), aside[0].failures),
        (bad.as_str(), 1)
    );
    assert!(aside[0].reason.contains("injected"), "{}", aside[0].reason);
    assert_eq!(aside[0].retry_at, w.clock.now() + Duration::minutes(1));
    // Not due yet: the next rounds leave it alone.
    let round = w.scorer.scheduled_round().await;
    assert_eq!((round.set_aside, round.waiting_aside), (0, 1));
    // Due: retried, fails again, waits twice as long.
    w.advance(1);
    let round = w.scorer.scheduled_round().await;
    assert_eq!(round.set_aside, 1);
    let aside = w.store.set_aside_leads(10).await.unwrap();
    assert_eq!(aside[0].failures, 2);
    assert_eq!(aside[0].retry_at, w.clock.now() + Duration::minutes(2));
    // Aged-score rounds do not pick it up either.
    w.advance(61);
    w.store.faults.corrupt_leads.lock().unwrap().clear();
    let round = w.scorer.scheduled_round().await;
    assert_eq!(
        round.waiting_aside, 0,
        "fixed: scored and no longer set aside"
    );
    assert!(w.scored(&bad).await);
    assert!(w.store.set_aside_leads(10).await.unwrap().is_empty());
    assert_eq!(w.hot_alerts(), 3);
}

/// A lead whose rescore panics (a defect met on its data) fails alone: it is set aside
/// with a reason that says so, the other leads are scored and alert, later rounds run,
/// and a change feed's batch naming it is not retried for ever.
async fn a_lead_whose_rescore_panics_is_set_aside_and_the_others_are_scored(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let bad = w.hot_lead(0).await;
    let good = w.hot_lead(1).await;
    w.store
        .faults
        .panicking_leads
        .lock()
        .unwrap()
        .insert(bad.clone());
    let round = w.scorer.scheduled_round().await;
    assert_eq!((round.rescored, round.set_aside, round.outages), (1, 1, 0));
    assert!(w.scored(&good).await);
    assert_eq!(w.hot_alerts(), 1, "the other lead alerted");
    let aside = w.store.set_aside_leads(10).await.unwrap();
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].lead_id, bad);
    assert!(aside[0].reason.contains("panicked"), "{}", aside[0].reason);
    // The next rounds run (the scorer is still there).
    w.page("p-1-3", "browser-1").await;
    let round = w.scorer.scheduled_round().await;
    assert_eq!(round.rescored, 1);
    // Through a change feed: the lead is set aside, nothing is left to retry.
    w.advance(1);
    let change = hotlead_app::LeadChange {
        sequence: "s-1".into(),
        lead_id: bad.clone(),
        dirty_seq: 99,
        scored_seq: 0,
        merged: false,
        set_aside: false,
        failures: 1,
    };
    let outcome = w.scorer.on_changes(std::slice::from_ref(&change)).await;
    assert!(outcome.retry.is_empty(), "{:?}", outcome.retry);
    assert_eq!(outcome.round.set_aside, 1);
    // Mended: scored again when due.
    w.store.faults.panicking_leads.lock().unwrap().clear();
    w.advance(5);
    w.scorer.scheduled_round().await;
    assert!(w.scored(&bad).await);
    assert_eq!(w.hot_alerts(), 2);
}

/// A scorer that is stopped (its task aborted, as `serve` stops) stops its rescores
/// too: none of them goes on to save a score or queue an alert afterwards.
async fn a_stopped_scorer_leaves_no_rescore_running(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let id = w.hot_lead(0).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *w.store.faults.read_gate.lock().unwrap() = Some(gate.clone());
    let waiting = || {
        w.store
            .faults
            .reads_waiting
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let scorer = w.scorer.clone();
    let round = tokio::spawn(async move { scorer.scheduled_round().await });
    while waiting() == 0 {
        tokio::task::yield_now().await;
    }
    round.abort();
    assert!(round.await.unwrap_err().is_cancelled());
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while waiting() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the rescore still waits to read its lead after the scorer stopped");
    *w.store.faults.read_gate.lock().unwrap() = None;
    gate.add_permits(100);
    assert!(!w.scored(&id).await);
    assert_eq!(w.hot_alerts(), 0);
}

async fn a_set_aside_lead_is_tried_again_on_its_next_event(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let bad = w.hot_lead(0).await;
    w.store.corrupt(&bad);
    w.scorer.scheduled_round().await;
    assert_eq!(w.store.set_aside_leads(10).await.unwrap().len(), 1);
    w.store.faults.corrupt_leads.lock().unwrap().clear();
    w.page("p-0-3", "browser-0").await;
    let round = w.scorer.scheduled_round().await;
    assert_eq!(round.rescored, 1, "a new event makes it due at once");
    assert!(w.scored(&bad).await);
}

async fn a_store_outage_stops_the_round_and_blames_no_lead(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let id = w.hot_lead(0).await;
    w.store
        .faults
        .dirty_outages
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let round = w.scorer.scheduled_round().await;
    assert_eq!((round.rescored, round.set_aside, round.outages), (0, 0, 1));
    assert!(w.store.set_aside_leads(10).await.unwrap().is_empty());
    let round = w.scorer.scheduled_round().await;
    assert_eq!(round.rescored, 1);
    assert!(w.scored(&id).await);
}

async fn two_deliverers_publish_each_alert_once(store: Arc<dyn Store>) {
    let notifier = FaultyNotifier::slow(StdDuration::from_millis(30));
    let w = world(store, notifier.clone(), Config::default());
    for n in 0..4 {
        w.hot_lead(n).await;
    }
    w.scorer.rescore_marked().await.unwrap();
    let other = w.another_scorer();
    let (a, b) = tokio::join!(w.scorer.deliver_pending(), other.deliver_pending());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.delivered + b.delivered, 4, "{a:?} {b:?}");
    assert_eq!(w.hot_alerts(), 4);
    // Nothing is left pending, nothing goes out again.
    w.advance(10);
    assert_eq!(w.scorer.deliver_pending().await.unwrap().delivered, 0);
    assert_eq!(w.hot_alerts(), 4);
}

async fn a_claimed_alert_waits_for_its_claim_to_expire(store: Arc<dyn Store>) {
    let w = plain_world(store);
    w.hot_lead(0).await;
    w.scorer.rescore_marked().await.unwrap();
    let pending = w.store.pending_alerts(w.clock.now(), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let key = &pending[0].entry.key;
    // A deliverer claims it, then dies before publishing.
    let now = w.clock.now();
    assert!(
        w.store
            .claim_alert(key, now, now + hotlead_app::scorer::CLAIM_LEASE)
            .await
            .unwrap()
    );
    assert!(
        !w.store
            .claim_alert(key, now, now + Duration::minutes(5))
            .await
            .unwrap()
    );
    assert_eq!(w.scorer.deliver_pending().await.unwrap().delivered, 0);
    w.advance(3);
    assert_eq!(w.scorer.deliver_pending().await.unwrap().delivered, 1);
    assert_eq!(w.hot_alerts(), 1);
}

async fn a_notifier_outage_delays_alerts_and_loses_none(store: Arc<dyn Store>) {
    let notifier = FaultyNotifier::down_for(7);
    let w = world(store, notifier.clone(), Config::default());
    for n in 0..3 {
        w.hot_lead(n).await;
    }
    let mut rounds = 0;
    while w.hot_alerts() < 3 {
        rounds += 1;
        assert!(
            rounds < 100,
            "alerts never went out: {:?}",
            w.delivered_once()
        );
        w.scorer.scheduled_round().await;
        w.advance(5);
    }
    assert!(rounds > 2, "the outage delayed them");
    for _ in 0..5 {
        w.advance(60);
        w.scorer.scheduled_round().await;
    }
    assert_eq!(w.hot_alerts(), 3, "each once");
}

async fn an_alert_the_notifier_refuses_is_marked_failed_not_retried(store: Arc<dyn Store>) {
    let notifier = Arc::new(FaultyNotifier::default());
    *notifier.refuse_subjects_with.lock().unwrap() = Some("Refused".into());
    let w = world(store, notifier.clone(), Config::default());
    w.form(
        "refused@example.co.jp",
        "browser-r",
        &[("company", "Refused Inc.")],
    )
    .await;
    w.page("r1", "browser-r").await;
    w.page("r2", "browser-r").await;
    w.hot_lead(1).await;
    let round = w.scorer.scheduled_round().await;
    assert_eq!((round.delivery.delivered, round.delivery.abandoned), (1, 1));
    let failed = w.store.failed_alerts(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].error.contains("InvalidParameter"), "{failed:?}");
    assert_eq!(failed[0].attempts, 1);
    for _ in 0..5 {
        w.advance(60);
        let round = w.scorer.scheduled_round().await;
        assert_eq!(
            round.delivery.abandoned + round.delivery.failed,
            0,
            "not retried"
        );
    }
    assert_eq!(w.hot_alerts(), 1);
}

async fn instant_alerts_are_limited_per_lead_and_rule(store: Arc<dyn Store>) {
    let notifier = Arc::new(FaultyNotifier::default());
    let w = world(store, notifier.clone(), Config::default());
    let id = w.form("demo@example.co.jp", "b", &[]).await;
    for i in 0..30 {
        w.track(&format!("demo-{i}"), "b", "Demo Requested").await;
        w.scorer.run_once().await.unwrap();
    }
    let instant = || {
        notifier
            .delivered()
            .into_iter()
            .filter(|(_, reason)| reason.starts_with("instant:"))
            .count()
    };
    assert_eq!(
        instant(),
        1,
        "30 demo requests within a minute flood the rep"
    );
    let lead = w.store.lead(&id).await.unwrap().unwrap();
    let score = lead.score.unwrap();
    assert_eq!(score.instant["demo"].held_back, 29, "held back, counted");
    assert_eq!(score.events.scored, 31, "every request still counts");
    // A day later, a new request alerts again.
    w.advance(24 * 60 + 1);
    w.track("demo-next-day", "b", "Demo Requested").await;
    w.scorer.run_once().await.unwrap();
    assert_eq!(instant(), 2);
    w.delivered_once();
}

async fn a_crash_between_storing_and_scoring_is_made_good_by_the_next_round(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let id = w.hot_lead(0).await;
    // The process that stored the events died before scoring: a new one starts.
    let restarted = w.another_scorer();
    let round = restarted.scheduled_round().await;
    assert_eq!((round.rescored, round.delivery.delivered), (1, 1));
    assert!(w.scored(&id).await);
    assert_eq!(w.hot_alerts(), 1);
}

async fn a_change_batch_delivered_three_times_alerts_once(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let id = w.hot_lead(0).await;
    let seq = w.store.dirty(w.clock.now(), 10).await.unwrap()[0].seq;
    let change = LeadChange {
        sequence: "100".into(),
        lead_id: id.clone(),
        dirty_seq: seq,
        scored_seq: 0,
        merged: false,
        set_aside: false,
        failures: 0,
    };
    for _ in 0..3 {
        let outcome = w.scorer.on_changes(std::slice::from_ref(&change)).await;
        assert!(outcome.retry.is_empty());
        w.advance(1);
    }
    assert_eq!(w.hot_alerts(), 1);
}

async fn many_leads_with_interleaved_events_give_exact_scores_and_one_alert_each(
    store: Arc<dyn Store>,
    leads: usize,
) {
    let w = Arc::new(plain_world(store));
    let mut ids = Vec::new();
    for n in 0..leads {
        ids.push(
            w.form(&format!("many{n}@example.co.jp"), &format!("m-{n}"), &[])
                .await,
        );
    }
    // Interleaved: page views of every lead, eight writers at once; a scorer running
    // beside them.
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let w = w.clone();
            tokio::spawn(async move {
                for n in (writer..leads).step_by(8) {
                    w.page(&format!("v-{n}-1"), &format!("m-{n}")).await;
                }
                for n in (writer..leads).step_by(8) {
                    w.page(&format!("v-{n}-2"), &format!("m-{n}")).await;
                }
            })
        })
        .collect();
    let scorer = {
        let w = w.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                w.scorer.scheduled_round().await;
                tokio::task::yield_now().await;
            }
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    scorer.await.unwrap();
    // The schedule's round scores what is left; a step stopped by the store (the emulator
    // under the whole suite's load) is retried by the next round, as on AWS.
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let round = w.scorer.scheduled_round().await;
        let done = round.outages == 0;
        rounds.push(round);
        if done {
            break;
        }
    }
    for id in &ids {
        let lead = w.store.lead(id).await.unwrap().unwrap();
        let score = lead
            .score
            .unwrap_or_else(|| panic!("{id} unscored after {rounds:?}"));
        assert_eq!(score.score.as_f64(), 50.0, "{id}");
    }
    assert_eq!(w.hot_alerts(), leads, "exactly one alert per crossing");
}

async fn a_hundred_concurrent_events_for_one_lead_give_its_exact_score(store: Arc<dyn Store>) {
    let w = Arc::new(plain_world(store));
    let id = w.form("burst@example.co.jp", "burst", &[]).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move { w.page(&format!("burst-{i}"), "burst").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    w.scorer.scheduled_round().await;
    let score = w.store.lead(&id).await.unwrap().unwrap().score.unwrap();
    assert_eq!(score.events.received, 101, "every event stored once");
    assert_eq!(score.score.as_f64(), 2_500.0, "100 views of 25 points");
    assert_eq!(w.hot_alerts(), 1);
}

/// The public API over the world's (faulty) store, on a port of its own.
async fn serve_public(w: &World) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = hotlead_api::public_router(w.ingest.clone(), hotlead_api::Auth::default());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn track_call(message_id: &str) -> serde_json::Value {
    json!({"type": "track", "messageId": message_id, "anonymousId": "api-browser",
        "timestamp": "2026-11-02T00:00:00Z", "event": "Pricing Viewed"})
}

async fn a_store_outage_during_ingestion_answers_503_and_loses_nothing(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let id = w.form("api@example.co.jp", "api-browser", &[]).await;
    let url = serve_public(&w).await;
    let client = reqwest::Client::new();
    let send = |call: serde_json::Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .post(format!("{url}/v1/track"))
                .json(&call)
                .send()
                .await
                .unwrap()
        }
    };
    // The store is out: 503, Retry-After, nothing stored.
    w.store
        .faults
        .record_outages
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let response = send(track_call("t-1")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
    assert!(
        !body["message"].as_str().unwrap().contains("injected"),
        "no internals: {body}"
    );
    assert_eq!(
        w.store.events(&id).await.unwrap().len(),
        1,
        "nothing was stored"
    );
    // The retry stores it.
    let retried: serde_json::Value = send(track_call("t-1")).await.json().await.unwrap();
    assert_eq!(retried["duplicate"], false);
    // Stored, but the answer was lost on the way: the client retries, and the retry is
    // known as the same call.
    w.store
        .faults
        .record_lost_answers
        .store(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(send(track_call("t-2")).await.status(), 503);
    let retried: serde_json::Value = send(track_call("t-2")).await.json().await.unwrap();
    assert_eq!(retried["duplicate"], true);
    assert_eq!(retried["lead_id"], json!(id));
    assert_eq!(
        w.store.events(&id).await.unwrap().len(),
        3,
        "each call stored once"
    );
}

async fn a_batch_that_stops_part_way_says_what_was_stored(store: Arc<dyn Store>) {
    let w = plain_world(store);
    let id = w.form("batch@example.co.jp", "api-browser", &[]).await;
    let url = serve_public(&w).await;
    let client = reqwest::Client::new();
    let batch = json!({"batch": (0..5).map(|i| track_call(&format!("b-{i}"))).collect::<Vec<_>>()});
    *w.store.faults.record_outage_after.lock().unwrap() = Some(2);
    let response = client
        .post(format!("{url}/v1/batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["stored"], 2, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(w.store.events(&id).await.unwrap().len(), 3);
    // The retry of the whole batch stores the rest and repeats nothing.
    let response = client
        .post(format!("{url}/v1/batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let duplicates: Vec<bool> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["duplicate"].as_bool().unwrap())
        .collect();
    assert_eq!(duplicates, [true, true, false, false, false]);
    assert_eq!(w.store.events(&id).await.unwrap().len(), 6);
    // A batch of more calls than accepted is refused whole, saying the limit.
    let big = json!({"batch": (0..=hotlead_app::ingest::MAX_BATCH_CALLS).map(|i| track_call(&format!("big-{i}"))).collect::<Vec<_>>()});
    let response = client
        .post(format!("{url}/v1/batch"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("100"), "{body}");
    assert_eq!(w.store.events(&id).await.unwrap().len(), 6);
}

on_both_stores!(
    one_bad_lead_is_set_aside_and_the_others_are_scored,
    a_lead_whose_rescore_panics_is_set_aside_and_the_others_are_scored,
    a_stopped_scorer_leaves_no_rescore_running,
    a_set_aside_lead_is_tried_again_on_its_next_event,
    a_store_outage_stops_the_round_and_blames_no_lead,
    two_deliverers_publish_each_alert_once,
    a_claimed_alert_waits_for_its_claim_to_expire,
    a_notifier_outage_delays_alerts_and_loses_none,
    an_alert_the_notifier_refuses_is_marked_failed_not_retried,
    instant_alerts_are_limited_per_lead_and_rule,
    a_crash_between_storing_and_scoring_is_made_good_by_the_next_round,
    a_change_batch_delivered_three_times_alerts_once,
    a_hundred_concurrent_events_for_one_lead_give_its_exact_score,
    a_store_outage_during_ingestion_answers_503_and_loses_nothing,
    a_batch_that_stops_part_way_says_what_was_stored,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_leads_with_interleaved_events_on_sqlite() {
    many_leads_with_interleaved_events_give_exact_scores_and_one_alert_each(sqlite().await, 1_000)
        .await;
}

/// On the emulator, which serves one request at a time, fewer leads make the same point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_leads_with_interleaved_events_on_dynamodb() {
    many_leads_with_interleaved_events_give_exact_scores_and_one_alert_each(dynamo().await, 100)
        .await;
}

#[tokio::test]
async fn the_schedule_scores_a_lead_whose_stream_records_were_lost() {
    let w = plain_world(sqlite().await);
    let id = w.hot_lead(0).await;
    // No stream batch ever reaches the function: only the schedule runs.
    let schedule = serde_json::from_str(include_str!(
        "../../functions/score/fixtures/eventbridge-schedule.json"
    ))
    .unwrap();
    let answer = score::handle_invocation(&w.scorer, score::Invocation::parse(schedule).unwrap())
        .await
        .unwrap();
    assert!(
        w.scored(&id).await,
        "the schedule left a marked lead unscored"
    );
    assert_eq!(answer.round().1.delivery.delivered, 1);
}

fn example_config() -> Config {
    let text =
        std::fs::read_to_string(hotlead_tests::repo_file("examples/config/hotlead.toml")).unwrap();
    Config::from_toml("hotlead.toml", &text).unwrap()
}

#[tokio::test]
async fn a_form_cannot_choose_where_its_alerts_go() {
    let lead = hotlead_core::Lead::from_raw(
        "L-1",
        [
            ("prefecture", "東京都"),
            ("territory", "attacker"),
            ("owner", "evil@example.com"),
        ],
    );
    let routing = example_config().routing_for(&lead);
    assert_eq!(routing.territory, "east");
    assert_eq!(routing.owner.as_deref(), Some("east-team@example.co.jp"));
}

#[tokio::test]
async fn a_form_cannot_reroute_an_existing_lead_and_a_crm_import_can() {
    let mut config = example_config();
    config.routing.trusted.territory = Some("crm_territory".into());
    config.routing.trusted.owner = Some("crm_owner".into());
    let notifier = Arc::new(FaultyNotifier::default());
    let w = world(sqlite().await, notifier.clone(), config.clone());
    let w = World {
        scorer: Scorer::new(
            w.store.clone(),
            notifier.clone(),
            w.clock.clone(),
            Arc::new(rules(RULES)),
            Arc::new(config),
        ),
        ..w
    };
    let id = w
        .form("tokyo@example.co.jp", "t", &[("prefecture", "東京都")])
        .await;
    // A later form (anyone can post one) names a territory and an owner.
    w.form(
        "tokyo@example.co.jp",
        "t",
        &[
            ("crm_territory", "attacker"),
            ("crm_owner", "evil@example.com"),
            ("territory", "attacker"),
        ],
    )
    .await;
    w.page("t1", "t").await;
    w.page("t2", "t").await;
    w.scorer.scheduled_round().await;
    let lead = w.store.lead(&id).await.unwrap().unwrap();
    assert!(
        !lead.attributes.contains_key("crm_territory"),
        "a public form set a trusted attribute"
    );
    let delivered = notifier.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].routing.territory, "east");
    assert_eq!(
        delivered[0].routing.owner.as_deref(),
        Some("east-team@example.co.jp")
    );
    // The CRM import, a trusted channel, may route it.
    w.ingest
        .import(
            "tokyo@example.co.jp",
            &[
                ("crm_territory".into(), "west".into()),
                ("crm_owner".into(), "sato@example.co.jp".into()),
            ],
        )
        .await
        .unwrap();
    let lead = w.store.lead(&id).await.unwrap().unwrap();
    let routing = w.ingest.config().routing_for(&lead.to_lead());
    assert_eq!(routing.territory, "west");
    assert_eq!(routing.owner.as_deref(), Some("sato@example.co.jp"));
}

async fn http_page(app: Arc<hotlead_tests::TestApp>, message_id: String, anon: String) {
    let call = json!({"type": "page", "messageId": message_id, "anonymousId": anon,
        "timestamp": chrono::Utc::now().to_rfc3339(), "context": {"page": {"path": "/pricing"}}});
    let response = app
        .client
        .post(format!("{}/v1/page", app.url))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Over HTTP against `hotlead serve` (its own scorer task running): a burst of 100 events
/// for one lead, and 1,000 leads with interleaved events from 16 clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_http_bursts_and_many_leads_give_exact_scores_and_one_alert_per_crossing() {
    use hotlead_tests::{AppSettings, spawn_app};
    let app = Arc::new(
        spawn_app(AppSettings {
            rules: Some(RULES.into()),
            // Thousands of requests from one address: past the per-client limits.
            config: Some("[client_limits]\ncalls_per_minute = 0\nforms_per_minute = 0\n".into()),
            ..AppSettings::default()
        })
        .await,
    );
    let form = |n: usize| {
        let app = app.clone();
        async move {
            let email = format!("http{n}@example.co.jp");
            let anon = format!("h-{n}");
            let response = app
                .client
                .post(format!("{}/v1/forms/contact", app.url))
                .form(&[("email", email.as_str()), ("anonymousId", anon.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            body["lead_id"].as_str().unwrap().to_string()
        }
    };
    // 100 concurrent events for one lead.
    let burst = form(0).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| tokio::spawn(http_page(app.clone(), format!("burst-{i}"), "h-0".into())))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let lead = app
        .wait_for_lead(&burst, |l| l["explanation"]["events"]["received"] == 101)
        .await;
    assert_eq!(lead["score"], 2500, "{:#}", lead["explanation"]);
    // 1,000 leads, their events interleaved across 16 clients.
    let mut ids = Vec::new();
    for n in 1..=1_000 {
        ids.push(form(n).await);
    }
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let app = app.clone();
            tokio::spawn(async move {
                for round in 1..=2 {
                    for n in (1 + client..=1_000).step_by(16) {
                        http_page(app.clone(), format!("v-{n}-{round}"), format!("h-{n}")).await;
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    for id in &ids {
        let lead = app
            .wait_for_lead(id, |l| l["explanation"]["events"]["received"] == 3)
            .await;
        assert_eq!(lead["score"], 50, "{id}");
    }
    let alerts = app.wait_for_alerts(1_001).await;
    let mut hot: Vec<&str> = alerts
        .iter()
        .filter(|a| a["reason"] == "hot")
        .map(|a| a["lead_id"].as_str().unwrap())
        .collect();
    assert_eq!(hot.len(), 1_001);
    hot.sort();
    hot.dedup();
    assert_eq!(hot.len(), 1_001, "one alert per lead");
}

/// Over HTTP with the example configuration: a form that names a territory and an owner
/// for an existing lead does not change where its alerts go.
#[tokio::test]
async fn over_http_a_form_naming_a_territory_does_not_reroute_an_existing_lead() {
    use hotlead_tests::{AppSettings, spawn_app};
    let config =
        std::fs::read_to_string(hotlead_tests::repo_file("examples/config/hotlead.toml")).unwrap();
    let app = spawn_app(AppSettings {
        rules: Some(RULES.into()),
        config: Some(config),
        ..AppSettings::default()
    })
    .await;
    let post_form = |fields: Vec<(&'static str, &'static str)>| {
        app.client
            .post(format!("{}/v1/forms/contact", app.url))
            .header("accept", "application/json")
            .form(&fields)
            .send()
    };
    let first = post_form(vec![
        ("メールアドレス", "tokyo@example.co.jp"),
        ("都道府県", "東京都"),
        ("anonymousId", "tk"),
    ])
    .await
    .unwrap();
    assert!(first.status().is_success());
    let again = post_form(vec![
        ("メールアドレス", "tokyo@example.co.jp"),
        ("territory", "attacker"),
        ("owner", "evil@example.com"),
        ("anonymousId", "tk"),
    ])
    .await
    .unwrap();
    assert!(again.status().is_success());
    for i in 0..2 {
        let call = json!({"type": "page", "messageId": format!("tk-{i}"), "anonymousId": "tk",
            "timestamp": chrono::Utc::now().to_rfc3339(), "context": {"page": {"path": "/pricing"}}});
        app.client
            .post(format!("{}/v1/page", app.url))
            .json(&call)
            .send()
            .await
            .unwrap();
    }
    let alerts = app.wait_for_alerts(1).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["territory"], "east");
    assert_eq!(alerts[0]["owner"], "east-team@example.co.jp");
}

/// Over HTTP against `hotlead serve --backend aws` (DynamoDB on the emulator, its stream
/// poller scoring): 100 concurrent page views of one lead are stored once each and score
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_http_on_dynamodb_a_burst_for_one_lead_gives_its_exact_score() {
    let config = hotlead_tests::aws::config().await;
    let made = hotlead_aws::provision(
        &config,
        &hotlead_tests::aws::unique("burst"),
        &hotlead_tests::aws::unique("alerts"),
        &hotlead_tests::aws::unique("analysts"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("rules.toml");
    std::fs::write(&rules_file, RULES).unwrap();
    let running = hotlead::serve::start(hotlead::serve::ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        backend: hotlead::serve::Backend::Aws(Box::new(hotlead::serve::AwsBackend {
            config: config.clone(),
            table: made.table.clone(),
            alerts_topic_arn: made.alerts_topic_arn.clone(),
        })),
        rules: Some(rules_file),
        config: None,
        auth: hotlead_api::Auth::default(),
        tick: StdDuration::from_millis(100),
        open_admin: false,
        event_cache_bytes: hotlead_app::event_cache::DEFAULT_BYTES,
    })
    .await
    .unwrap();
    let url = running.url();
    let client = reqwest::Client::new();
    let stored: serde_json::Value = client
        .post(format!("{url}/v1/forms/contact"))
        .form(&[
            ("email", "burst@example.co.jp"),
            ("anonymousId", "aws-burst"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lead_id = stored["lead_id"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let call = json!({"type": "page", "messageId": format!("aws-burst-{i}"), "anonymousId": "aws-burst",
                    "timestamp": chrono::Utc::now().to_rfc3339(), "context": {"page": {"path": "/pricing"}}});
                client
                    .post(format!("{url}/v1/page"))
                    .json(&call)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200, "no call lost a race for good");
    }
    let deadline = std::time::Instant::now() + StdDuration::from_secs(240);
    loop {
        let lead: serde_json::Value = client
            .get(format!("{url}/v1/leads/{lead_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if lead["explanation"]["events"]["received"] == 101 {
            assert_eq!(lead["score"], 2500, "{:#}", lead["explanation"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never scored all 101: {lead:#}"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    running.stop();
}
