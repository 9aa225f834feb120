//! Erasing a person, and the retention of what belongs to no lead, on both stores. The
//! proof that nothing of an erased person remains reads the store as an attacker with the
//! disk would: every item of the DynamoDB table (a scan), and for SQLite the raw database
//! and write-ahead-log files.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hotlead_app::erase::{AlertArchive, EraseTarget};
use hotlead_app::ports::{
    DealOutcome, EraseSubject, OutboxEntry, Record, Retention, ScoreUpdate, Store, content_digest,
};
use hotlead_app::review::{Review, Storage};
use hotlead_app::scorer::ManualClock;
use hotlead_app::{Notifier, ports::SaveOutcome};
use hotlead_core::alert::{AlertMessage, Routing};
use hotlead_core::identity::IdentityKey;
use hotlead_core::{Lead, score};
use hotlead_embedded::FileOutbox;
use hotlead_tests::{rules, segment, time};
use serde_json::{Value, json};

const T0: &str = "2026-11-01T00:00:00Z";

/// What identifies the person to erase: none of it may remain.
const TRACES: &[&str] = &[
    "taro.erase@example.co.jp",
    "山田 太郎",
    "03-5555-0199",
    "Erase Trading",
    "anon-erase-1",
    "anon-erase-2",
    "crm-erase-77",
    "L-ERASE-A",
    "L-ERASE-B",
    "msg-erase-",
];

fn at(minutes: i64) -> DateTime<Utc> {
    time(T0) + Duration::minutes(minutes)
}

fn record(
    call: Value,
    keys: Vec<IdentityKey>,
    attributes: &[(&str, &str)],
    minutes: i64,
    new_id: &str,
) -> Record {
    let mut call = call;
    call["timestamp"] = json!(at(minutes).to_rfc3339());
    let event = segment(call);
    let extra: Vec<(&str, &str)> = attributes.to_vec();
    Record {
        digest: content_digest(&event, &extra),
        event,
        keys,
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        received_at: at(minutes),
        new_lead_id: new_id.into(),
        retention: Retention::default(),
    }
}

fn anon(id: &str) -> IdentityKey {
    IdentityKey::Anonymous(id.into())
}

/// An alert about `lead`, naming the person it is about.
fn alert_for(lead: &str, key: &str) -> OutboxEntry {
    let (name, contact) = if lead == "L-OTHER" {
        ("佐藤 花子", "hanako@example.com")
    } else {
        (
            "山田 太郎 (Erase Trading)",
            "taro.erase@example.co.jp 03-5555-0199",
        )
    };
    OutboxEntry {
        key: key.into(),
        created_at: at(30),
        message: AlertMessage {
            lead_id: lead.into(),
            reason: "hot".into(),
            subject: format!("HOT: {name} {lead}"),
            body: contact.into(),
            score: 90.0,
            band: "hot".into(),
            grade: "A1".into(),
            routing: Routing {
                territory: "east".into(),
                owner: None,
                product: None,
            },
            lead_url: format!("http://x/v1/leads/{lead}"),
        },
    }
}

/// The person: two browsers, anonymous browsing, a form, a CRM user id on a lead of its
/// own merged into the first, a score with alerts (one delivered to the outbox file), and
/// a closed deal. Beside them another person, who must be left whole.
async fn a_person_and_a_bystander(store: &dyn Storage, outbox: &FileOutbox) {
    let steps = [
        record(
            json!({"type": "page", "messageId": "msg-erase-1", "anonymousId": "anon-erase-1",
                   "context": {"page": {"url": "https://www.example.co.jp/pricing?ref=taro"}, "ip": "198.51.100.23"}}),
            vec![anon("anon-erase-1")],
            &[],
            0,
            "L-unused-1",
        ),
        record(
            json!({"type": "identify", "messageId": "msg-erase-2", "anonymousId": "anon-erase-1",
                   "traits": {"email": "taro.erase@example.co.jp"}}),
            vec![
                IdentityKey::email("taro.erase@example.co.jp").unwrap(),
                anon("anon-erase-1"),
            ],
            &[
                ("email", "taro.erase@example.co.jp"),
                ("name", "山田 太郎"),
                ("phone", "03-5555-0199"),
                ("company", "Erase Trading"),
            ],
            5,
            "L-ERASE-A",
        ),
        record(
            json!({"type": "page", "messageId": "msg-erase-3", "anonymousId": "anon-erase-2",
                   "context": {"page": {"path": "/demo"}}}),
            vec![anon("anon-erase-2")],
            &[],
            6,
            "L-unused-2",
        ),
        record(
            json!({"type": "identify", "messageId": "msg-erase-4", "anonymousId": "anon-erase-2", "userId": "crm-erase-77"}),
            vec![
                IdentityKey::User("crm-erase-77".into()),
                anon("anon-erase-2"),
            ],
            &[("title", "部長")],
            7,
            "L-ERASE-B",
        ),
        record(
            json!({"type": "track", "messageId": "msg-erase-5", "userId": "crm-erase-77", "event": "Demo Requested",
                   "properties": {"email": "taro.erase@example.co.jp"}}),
            vec![
                IdentityKey::User("crm-erase-77".into()),
                IdentityKey::email("taro.erase@example.co.jp").unwrap(),
            ],
            &[],
            8,
            "L-unused-3",
        ),
        record(
            json!({"type": "identify", "messageId": "other-1", "anonymousId": "anon-other",
                   "traits": {"email": "hanako@example.com"}}),
            vec![
                IdentityKey::email("hanako@example.com").unwrap(),
                anon("anon-other"),
            ],
            &[("email", "hanako@example.com"), ("name", "佐藤 花子")],
            9,
            "L-OTHER",
        ),
    ];
    let scoring = rules(
        "name = \"e\"\nversion = 1\n[bands]\nhot = 80\nwarm = 40\n[groups.fit]\naxis = \"fit\"\n\
         [[rules]]\nid = \"p\"\ngroup = \"fit\"\npoints = 90\nwhen = { attribute = \"email\", present = true }\n",
    );
    // Scores a lead with one alert; `deliver` also appends it to the outbox file.
    let score_with_alert = async |lead: &str, key: &str, deliver: bool| {
        let stored = store.lead(lead).await.unwrap().unwrap();
        let dirty = store.dirty(at(20), 10).await.unwrap();
        let seq = dirty.iter().find(|d| d.lead_id == lead).unwrap().seq;
        let update = ScoreUpdate {
            history: Default::default(),
            follow_up: None,
            lead_id: lead.into(),
            seen_seq: seq,
            score: score(
                &scoring,
                &Lead::from_raw(
                    lead,
                    stored
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
                &[],
                at(20),
                None,
            ),
            hot_crossings: 1,
            alerts: vec![alert_for(lead, key)],
        };
        assert_eq!(store.save_score(update).await.unwrap(), SaveOutcome::Saved);
        if deliver {
            outbox.deliver(&alert_for(lead, key).message).await.unwrap();
            store.alert_delivered(key, at(31)).await.unwrap();
        }
    };
    let mut steps = steps.into_iter();
    for step in steps.by_ref().take(4) {
        store.record(step).await.unwrap();
    }
    // The CRM user's lead has an alert of its own (pending) before it merges.
    score_with_alert("L-ERASE-B", "hot:L-ERASE-B:1", false).await;
    for step in steps {
        store.record(step).await.unwrap();
    }
    let merged = store.lead("L-ERASE-B").await.unwrap().unwrap();
    assert_eq!(
        merged.id, "L-ERASE-A",
        "the CRM user's lead merged into the first"
    );
    score_with_alert("L-ERASE-A", "hot:L-ERASE-A:1", true).await;
    score_with_alert("L-OTHER", "hot:L-OTHER:1", true).await;
    store
        .put_outcomes(&[DealOutcome {
            lead_id: "L-ERASE-A".into(),
            won: true,
            closed_at: at(60),
            amount: Some(1_200_000.0),
            received_at: at(61),
        }])
        .await
        .unwrap();
}

/// Erases the person and checks what the services see.
async fn erase_and_check(store: Arc<dyn Storage>, outbox: Arc<FileOutbox>) {
    a_person_and_a_bystander(store.as_ref(), &outbox).await;
    let review = Review::new(store.clone(), Arc::new(ManualClock::at(at(100))))
        .with_alert_archive(outbox.clone() as Arc<dyn AlertArchive>);

    // By a merged lead's id: the person is erased whole.
    let erasure = review
        .erase(&EraseTarget::Id("L-ERASE-B".into()))
        .await
        .unwrap()
        .expect("there was a lead to erase");
    assert_eq!(erasure.erased.lead_id, "L-ERASE-A");
    assert_eq!(erasure.erased.leads, 2);
    assert_eq!(erasure.erased.events, 5, "{erasure:?}");
    assert_eq!(erasure.erased.identities, 4, "{erasure:?}");
    assert_eq!(erasure.erased.alerts, 2);
    assert_eq!(erasure.erased.outcomes, 1);
    assert_eq!(erasure.alerts_redacted, 1);

    for id in ["L-ERASE-A", "L-ERASE-B"] {
        assert!(
            store.lead(id).await.unwrap().is_none(),
            "{id} is still there"
        );
        assert!(store.events(id).await.unwrap().is_empty());
    }
    let email = IdentityKey::email("taro.erase@example.co.jp").unwrap();
    assert_eq!(store.lead_for(&email).await.unwrap(), None);
    assert!(store.outcomes().await.unwrap().is_empty());
    let ranking = store.ranking(None, 10, None).await.unwrap();
    assert_eq!(
        ranking
            .leads
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["L-OTHER"]
    );
    assert!(store.dirty(at(200), 10).await.unwrap().is_empty());

    // Idempotent: again, and by address, there is nothing left to erase.
    assert!(
        review
            .erase(&EraseTarget::Id("L-ERASE-A".into()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        review
            .erase(&EraseTarget::Email("Taro.Erase@example.co.jp".into()))
            .await
            .unwrap()
            .is_none()
    );

    // The bystander is whole.
    let other = store.lead("L-OTHER").await.unwrap().unwrap();
    assert_eq!(other.attributes["name"], "佐藤 花子");
    assert_eq!(store.events("L-OTHER").await.unwrap().len(), 1);
    let delivered = std::fs::read_to_string(outbox.path()).unwrap();
    assert!(delivered.contains("L-OTHER"));
    for trace in TRACES {
        assert!(
            !delivered.contains(trace),
            "the outbox file still holds {trace:?}: {delivered}"
        );
    }

    // The person comes back: a new lead, nothing of the old one.
    let back = store
        .record(record(
            json!({"type": "identify", "messageId": "back-1", "anonymousId": "back-anon", "traits": {}}),
            vec![IdentityKey::email("taro.erase@example.co.jp").unwrap()],
            &[],
            120,
            "L-NEW",
        ))
        .await
        .unwrap();
    assert_eq!(back.lead_id.as_deref(), Some("L-NEW"));
    assert!(!back.duplicate);
    let again = store.lead("L-NEW").await.unwrap().unwrap();
    assert!(!again.attributes.contains_key("name"));
    assert_eq!(store.events("L-NEW").await.unwrap().len(), 1);
    store
        .erase(&EraseSubject::Lead("L-NEW".into()), at(130))
        .await
        .unwrap()
        .unwrap();
}

fn assert_no_trace(what: &str, text: &str) {
    for trace in TRACES {
        assert!(!text.contains(trace), "{what} still holds {trace:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_erases_a_person_from_the_database_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    let store = Arc::new(hotlead_embedded::SqliteStore::open(&db).unwrap());
    let outbox = Arc::new(FileOutbox::new(&dir.path().join("alerts.jsonl")));
    erase_and_check(store.clone(), outbox).await;
    // The raw files, as the disk holds them: the database, its write-ahead log.
    for suffix in ["", "-wal"] {
        let path = dir.path().join(format!("hotlead.db{suffix}"));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        assert_no_trace(
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
    // The bystander is in the file (the check can see what is there).
    let bytes = std::fs::read(&db).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("hanako@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_erases_a_person_from_every_item_of_the_table() {
    let store = Arc::new(hotlead_tests::aws::fresh_table().await);
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(FileOutbox::new(&dir.path().join("alerts.jsonl")));
    erase_and_check(store.clone(), outbox).await;
    let items = scan(&store).await;
    assert!(
        items.iter().any(|i| i.contains("hanako@example.com")),
        "the scan sees the bystander"
    );
    for item in &items {
        assert_no_trace("an item of the table", item);
    }
}

/// Every item of the table, as text.
async fn scan(store: &hotlead_aws::DynamoStore) -> Vec<String> {
    let client = aws_sdk_dynamodb::Client::new(&hotlead_tests::aws::config().await);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(store.table())
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        items.extend(out.items().iter().map(|i| format!("{i:?}")));
        match out.last_evaluated_key {
            Some(next) if !next.is_empty() => start = Some(next),
            _ => return items,
        }
    }
}

/// A visitor never linked, and one who becomes a lead, both browsing at T0.
async fn two_visitors(store: &dyn Store) {
    for (message, visitor) in [("ret-1", "gone-visitor"), ("ret-2", "kept-visitor")] {
        store
            .record(record(
                json!({"type": "page", "messageId": message, "anonymousId": visitor,
                       "context": {"page": {"path": "/pricing"}, "ip": "198.51.100.7"}}),
                vec![anon(visitor)],
                &[],
                0,
                "L-unused",
            ))
            .await
            .unwrap();
    }
    let linked = store
        .record(record(
            json!({"type": "identify", "messageId": "ret-3", "anonymousId": "kept-visitor",
                   "traits": {"email": "kept@example.com"}}),
            vec![
                IdentityKey::email("kept@example.com").unwrap(),
                anon("kept-visitor"),
            ],
            &[("email", "kept@example.com")],
            1,
            "L-KEPT",
        ))
        .await
        .unwrap();
    assert_eq!(linked.lead_id.as_deref(), Some("L-KEPT"));
}

#[tokio::test]
async fn sqlite_sweeps_unlinked_anonymous_events_after_their_retention() {
    let store = hotlead_embedded::SqliteStore::in_memory().unwrap();
    two_visitors(&store).await;
    let retention = Retention::default();
    let before = store
        .sweep(at(0) + Duration::days(179), retention)
        .await
        .unwrap();
    assert_eq!(before.anonymous_events, 0, "nothing expires early");
    let after = store
        .sweep(at(0) + Duration::days(181), retention)
        .await
        .unwrap();
    assert_eq!(
        after.anonymous_events, 1,
        "the unlinked visitor's event expired"
    );
    assert_eq!(
        store.events("L-KEPT").await.unwrap().len(),
        2,
        "the lead keeps the browsing it linked"
    );
    let shorter = Retention {
        anonymous_days: 1,
        dedupe_days: 1,
    };
    let again = store
        .sweep(at(0) + Duration::days(400), shorter)
        .await
        .unwrap();
    assert_eq!(again.anonymous_events, 0);
}

#[tokio::test]
async fn dynamodb_writes_expiry_on_what_is_no_leads_and_keeps_what_a_lead_linked() {
    let store = hotlead_tests::aws::fresh_table().await;
    two_visitors(&store).await;
    // Reading the lead's history (as the scorer does within minutes) makes it the lead's.
    assert_eq!(store.events("L-KEPT").await.unwrap().len(), 2);
    let client = aws_sdk_dynamodb::Client::new(&hotlead_tests::aws::config().await);
    let out = client
        .scan()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let expiry = |pk: &str, sk_prefix: &str| -> Option<i64> {
        let item = out
            .items()
            .iter()
            .find(|i| {
                i["PK"].as_s().is_ok_and(|p| p == pk)
                    && i["SK"].as_s().is_ok_and(|s| s.starts_with(sk_prefix))
            })
            .unwrap_or_else(|| panic!("no item {pk} {sk_prefix}"));
        item.get("expires_at")
            .map(|v| v.as_n().unwrap().parse().unwrap())
    };
    let received = at(0).timestamp();
    assert_eq!(
        expiry("ANON#gone-visitor", "EVENT#"),
        Some(received + 180 * 86_400),
        "an unlinked visitor's event expires after 180 days"
    );
    assert_eq!(
        expiry("ANON#kept-visitor", "EVENT#"),
        Some(received + 180 * 86_400),
        "a linked visitor's partition expires all the same (were the lead to let the \
         visitor go, nothing would reach it any more)"
    );
    let page_sk = out
        .items()
        .iter()
        .find(|i| i["PK"].as_s().is_ok_and(|p| p == "ANON#kept-visitor"))
        .map(|i| i["SK"].as_s().unwrap().clone())
        .unwrap();
    let copy = out
        .items()
        .iter()
        .find(|i| {
            i["PK"].as_s().is_ok_and(|p| p == "LEAD#L-KEPT")
                && i["SK"].as_s().is_ok_and(|s| *s == page_sk)
        })
        .expect("the linked visitor's event is copied into the lead's partition");
    assert!(!copy.contains_key("expires_at"), "and kept there");
    assert_eq!(expiry("MSG#ret-1", "MSG"), Some(received + 30 * 86_400));
    assert_eq!(
        expiry("MSG#ret-3", "MSG"),
        Some(at(1).timestamp() + 30 * 86_400)
    );
    assert_eq!(expiry("LEAD#L-KEPT", "EVENT#"), None);
    assert_eq!(expiry("LEAD#L-KEPT", "LEAD"), None);

    // Once the visitor's partition has expired (as DynamoDB's TTL deletes it), the lead
    // still has the browsing it linked; reading again copies nothing twice.
    client
        .delete_item()
        .table_name(store.table())
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S("ANON#kept-visitor".into()),
        )
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(page_sk))
        .send()
        .await
        .unwrap();
    assert_eq!(store.events("L-KEPT").await.unwrap().len(), 2);
    let own = scan(&store)
        .await
        .into_iter()
        .filter(|i| i.contains("LEAD#L-KEPT") && i.contains("EVENT#"))
        .count();
    assert_eq!(own, 2);
}

const HOT_ON_EMAIL: &str = "name = \"e\"\nversion = 1\n[bands]\nhot = 80\nwarm = 40\n[groups.fit]\naxis = \"fit\"\n\
    [[rules]]\nid = \"p\"\ngroup = \"fit\"\npoints = 90\nwhen = { attribute = \"email\", present = true }\n";

/// Over HTTP: `DELETE /v1/leads/{id}` needs the admin token, erases the lead and redacts its
/// delivered alert in the outbox file; the second time it is a 404.
#[tokio::test]
async fn over_http_an_admin_erases_a_lead_and_its_delivered_alerts() {
    let app = hotlead_tests::spawn_app(hotlead_tests::AppSettings {
        rules: Some(HOT_ON_EMAIL.into()),
        admin_token: Some("admin-secret".into()),
        ..Default::default()
    })
    .await;
    let c = &app.client;
    let url = |route: &str| format!("{}{route}", app.url);
    let mut leads = Vec::new();
    for (email, name) in [
        ("taro.erase@example.co.jp", "山田 太郎"),
        ("hanako@example.com", "佐藤 花子"),
    ] {
        let stored: Value = c
            .post(url("/v1/forms/contact"))
            .json(&json!({"email": email, "name": name, "company": "Erase Trading"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        leads.push(stored["lead_id"].as_str().unwrap().to_string());
    }
    app.wait_for_alerts(2).await;
    let lead = &leads[0];
    let delete = |token: Option<&str>| {
        let request = c.delete(url(&format!("/v1/leads/{lead}")));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    assert_eq!(delete(None).send().await.unwrap().status(), 401);
    assert_eq!(delete(Some("wrong")).send().await.unwrap().status(), 403);
    let response = delete(Some("admin-secret")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let erased: Value = response.json().await.unwrap();
    assert_eq!(erased["status"], "erased");
    assert_eq!(erased["lead_id"], lead.as_str());
    assert_eq!(erased["leads"], 1);
    assert_eq!(erased["events"], 1);
    assert_eq!(erased["alerts"], 1);
    assert_eq!(erased["alerts_redacted"], 1);

    let again = delete(Some("admin-secret")).send().await.unwrap();
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let gone = c
        .get(url(&format!("/v1/leads/{lead}")))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let alerts = std::fs::read_to_string(&app.outbox).unwrap();
    assert!(
        !alerts.contains("taro.erase")
            && !alerts.contains("山田")
            && !alerts.contains(lead.as_str())
    );
    assert!(alerts.contains("hanako@example.com") || alerts.contains(leads[1].as_str()));
}

/// The CLI: `hotlead leads erase --email` and `hotlead retention sweep`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_erases_by_address_and_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    {
        let store = hotlead_embedded::SqliteStore::open(&db).unwrap();
        two_visitors(&store).await;
    }
    let run = |args: &[&str]| {
        let mut all = vec!["hotlead"];
        all.extend_from_slice(args);
        let mut out = Vec::new();
        let cli = <hotlead::cli::Cli as clap::Parser>::try_parse_from(&all).unwrap();
        hotlead::cli::run(cli, &mut out, at(0) + Duration::days(200))
            .map(|()| String::from_utf8(out).unwrap())
    };
    let db_arg = db.to_str().unwrap().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let db_arg = db_arg.as_str();
        let erased = run(&[
            "leads",
            "erase",
            "--email",
            "KEPT@example.com",
            "--db",
            db_arg,
        ]);
        let again = run(&[
            "leads",
            "erase",
            "--email",
            "kept@example.com",
            "--db",
            db_arg,
        ]);
        let swept = run(&["retention", "sweep", "--db", db_arg]);
        (erased, again, swept)
    });
    let (erased, again, swept) = output.await.unwrap();
    let erased = erased.unwrap();
    assert!(erased.starts_with("erased lead L-KEPT"), "{erased}");
    assert!(erased.contains("2 event(s)"), "{erased}");
    assert!(again.unwrap().starts_with("no lead to erase"));
    let swept = swept.unwrap();
    assert!(swept.starts_with("1 anonymous event(s)"), "{swept}");
}

/// The erasure is logged (the lead id and counts, at every level the CLI logs), and the
/// logs hold nothing of the person: not the address it was asked by, nor the browser ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erasure_is_logged_without_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hotlead.db");
    {
        let store = hotlead_embedded::SqliteStore::open(&db).unwrap();
        two_visitors(&store).await;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hotlead-under-test"))
        .args(["leads", "erase", "--email", "KEPT@example.com", "--db"])
        .arg(&db)
        .env("HOTLEAD_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("lead erased") && stderr.contains("L-KEPT"),
        "{stderr}"
    );
    for personal in [
        "kept@example.com",
        "KEPT@example.com",
        "kept-visitor",
        "198.51.100.7",
    ] {
        assert!(
            !stderr.contains(personal),
            "the log holds {personal:?}: {stderr}"
        );
    }
}

/// DynamoDB: an erasure that stopped right after marking the lead (the process died)
/// leaves the person writable at once (a new call takes over the links of the lead being
/// erased instead of retrying until it gives up), and erasing again finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_an_erasure_cut_short_leaves_the_person_writable_and_is_finished_by_the_next() {
    let store = hotlead_tests::aws::fresh_table().await;
    let first = record(
        json!({"type": "identify", "messageId": "msg-erase-1", "anonymousId": "anon-erase-1",
               "traits": {"email": "taro.erase@example.co.jp"}}),
        vec![
            IdentityKey::email("taro.erase@example.co.jp").unwrap(),
            anon("anon-erase-1"),
        ],
        &[("email", "taro.erase@example.co.jp"), ("name", "山田 太郎")],
        0,
        "L-ERASE-A",
    );
    store.record(first).await.unwrap();
    // What `erase` writes first, and nothing after it.
    cut_short_after_marking(&store, "L-ERASE-A").await;
    assert!(
        store.lead("L-ERASE-A").await.unwrap().is_none(),
        "gone for readers"
    );

    let started = std::time::Instant::now();
    let back = store
        .record(record(
            json!({"type": "identify", "messageId": "back-1", "anonymousId": "anon-erase-1",
                   "traits": {"email": "taro.erase@example.co.jp"}}),
            vec![
                IdentityKey::email("taro.erase@example.co.jp").unwrap(),
                anon("anon-erase-1"),
            ],
            &[("email", "taro.erase@example.co.jp")],
            2,
            "L-NEW",
        ))
        .await
        .expect("the person is writable while an erasure is unfinished");
    assert_eq!(back.lead_id.as_deref(), Some("L-NEW"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "taken over at once, not after retrying"
    );

    let finished = store
        .erase(&EraseSubject::Lead("L-ERASE-A".into()), at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finished.lead_id, "L-ERASE-A");
    assert_eq!(finished.identities, 0, "the links are the new lead's now");
    assert_eq!(store.events("L-NEW").await.unwrap().len(), 1);
    let email = IdentityKey::email("taro.erase@example.co.jp").unwrap();
    use hotlead_app::ports::LearningStore;
    assert_eq!(
        store.lead_for(&email).await.unwrap().as_deref(),
        Some("L-NEW")
    );
    for item in scan(&store).await {
        for trace in ["L-ERASE-A", "山田 太郎", "msg-erase-"] {
            assert!(
                !item.contains(trace),
                "an item still holds {trace:?}: {item}"
            );
        }
    }
}

/// What a DynamoDB erasure writes first (the mark), as if the process died right after.
async fn cut_short_after_marking(store: &hotlead_aws::DynamoStore, lead: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = aws_sdk_dynamodb::Client::new(&hotlead_tests::aws::config().await);
    client
        .update_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(format!("LEAD#{lead}")))
        .key("SK", AttributeValue::S("LEAD".into()))
        .update_expression("SET merged_into = :erased, erasing_at = :now REMOVE attributes, score")
        .expression_attribute_values(":erased", AttributeValue::S("-erased-".into()))
        .expression_attribute_values(":now", AttributeValue::S(at(1).to_rfc3339()))
        .send()
        .await
        .unwrap();
}

/// DynamoDB: an erasure that stopped part way is finished by erasing again by the
/// e-mail address (as the person asked), not only by the lead id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_an_erasure_cut_short_is_finished_by_erasing_the_address_again() {
    let store = Arc::new(hotlead_tests::aws::fresh_table().await);
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(FileOutbox::new(&dir.path().join("alerts.jsonl")));
    a_person_and_a_bystander(store.as_ref(), &outbox).await;
    cut_short_after_marking(&store, "L-ERASE-A").await;
    let review = Review::new(store.clone(), Arc::new(ManualClock::at(at(100))))
        .with_alert_archive(outbox.clone() as Arc<dyn AlertArchive>);
    let erasure = review
        .erase(&EraseTarget::Email("taro.erase@example.co.jp".into()))
        .await
        .unwrap()
        .expect("the address still leads to the lead being erased");
    assert_eq!(erasure.erased.lead_id, "L-ERASE-A");
    assert_eq!(erasure.erased.leads, 2);
    assert_eq!(erasure.alerts_redacted, 1);
    for item in &scan(&store).await {
        assert_no_trace("an item of the table", item);
    }
    assert_no_trace(
        "the outbox file",
        &std::fs::read_to_string(outbox.path()).unwrap(),
    );
    assert!(
        review
            .erase(&EraseTarget::Email("taro.erase@example.co.jp".into()))
            .await
            .unwrap()
            .is_none()
    );
}

/// An outcome that arrives for a lead erased since it was looked up is not stored: a
/// CRM's late or repeated sync cannot bring an erased lead's deal back.
async fn an_outcome_of_an_erased_lead_is_not_stored(store: &dyn Storage) {
    store
        .record(record(
            json!({"type": "identify", "messageId": "out-1", "userId": "u-deal", "traits": {"email": "deal@example.com"}}),
            vec![IdentityKey::email("deal@example.com").unwrap()],
            &[("email", "deal@example.com")],
            0,
            "L-DEAL",
        ))
        .await
        .unwrap();
    let outcome = |lead: &str| DealOutcome {
        lead_id: lead.into(),
        won: true,
        closed_at: at(60),
        amount: None,
        received_at: at(61),
    };
    store
        .put_outcomes(&[outcome("L-DEAL"), outcome("L-NEVER")])
        .await
        .unwrap();
    let stored: Vec<String> = store
        .outcomes()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.lead_id)
        .collect();
    assert_eq!(
        stored,
        ["L-DEAL"],
        "a lead that is not stored gets no outcome"
    );
    store
        .erase(&EraseSubject::Lead("L-DEAL".into()), at(70))
        .await
        .unwrap()
        .unwrap();
    store.put_outcomes(&[outcome("L-DEAL")]).await.unwrap();
    assert!(store.outcomes().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_stores_no_outcome_for_an_erased_lead() {
    let store = hotlead_embedded::SqliteStore::in_memory().unwrap();
    an_outcome_of_an_erased_lead_is_not_stored(&store).await;
}

#[tokio::test]
async fn dynamodb_stores_no_outcome_for_an_erased_lead() {
    use hotlead_app::ports::LearningStore;
    let store = hotlead_tests::aws::fresh_table().await;
    an_outcome_of_an_erased_lead_is_not_stored(&store).await;
    // Nor for one whose erasure is under way.
    store
        .record(record(
            json!({"type": "identify", "messageId": "out-2", "userId": "u-deal-2", "traits": {"email": "deal2@example.com"}}),
            vec![IdentityKey::email("deal2@example.com").unwrap()],
            &[("email", "deal2@example.com")],
            0,
            "L-DEAL-2",
        ))
        .await
        .unwrap();
    cut_short_after_marking(&store, "L-DEAL-2").await;
    store
        .put_outcomes(&[DealOutcome {
            lead_id: "L-DEAL-2".into(),
            won: false,
            closed_at: at(60),
            amount: None,
            received_at: at(61),
        }])
        .await
        .unwrap();
    assert!(store.outcomes().await.unwrap().is_empty());
}

fn outbox_alert(lead: &str) -> AlertMessage {
    AlertMessage {
        lead_id: lead.into(),
        reason: "hot".into(),
        subject: format!("HOT {lead} 山田 太郎"),
        body: String::new(),
        score: 90.0,
        band: "hot".into(),
        grade: "A1".into(),
        routing: Routing {
            territory: "east".into(),
            owner: None,
            product: None,
        },
        lead_url: String::new(),
    }
}

/// An alert on its way while its lead is erased (read from the store before, written
/// after), by this process or another one on the same file: never written.
#[tokio::test]
async fn no_alert_of_an_erased_lead_is_appended_after_the_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let serving = FileOutbox::new(&path);
    let erasing = FileOutbox::new(&path);
    serving.deliver(&outbox_alert("L-1")).await.unwrap();
    assert_eq!(erasing.redact(&["L-1".into()]).await.unwrap(), 1);
    let refused = serving.deliver(&outbox_alert("L-1")).await.unwrap_err();
    assert!(refused.permanent, "{refused:?}");
    serving.deliver(&outbox_alert("L-2")).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("L-1"), "{text}");
    assert_eq!(
        text.matches("山田").count(),
        1,
        "only the other lead's alert: {text}"
    );
    assert!(text.contains("L-2"));
}

/// A redaction that failed after the store was erased is finished by the next one,
/// even when that one knows only the id asked for (the store has forgotten the ids of
/// the leads merged into it).
#[tokio::test]
async fn redacting_again_redacts_every_lead_remembered_as_erased() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let outbox = FileOutbox::new(&path);
    outbox.deliver(&outbox_alert("L-MERGED")).await.unwrap();
    // The first redaction remembered both ids, then failed before rewriting the file.
    std::fs::write(dir.path().join("alerts.jsonl.erased"), "L-1\nL-MERGED\n").unwrap();
    assert_eq!(outbox.redact(&["L-1".into()]).await.unwrap(), 1);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("L-MERGED"), "{text}");
    let remembered = std::fs::read_to_string(dir.path().join("alerts.jsonl.erased")).unwrap();
    assert_eq!(remembered, "L-1\nL-MERGED\n", "each id once");
}

/// A table made before expiry was written (no TTL): creating it again keeps it, turns
/// expiry on and gives its stream.
#[tokio::test]
async fn creating_an_existing_table_again_turns_its_expiry_on() {
    use aws_sdk_dynamodb::types::{TimeToLiveSpecification, TimeToLiveStatus};
    let client = aws_sdk_dynamodb::Client::new(&hotlead_tests::aws::config().await);
    let table = hotlead_tests::aws::unique("hotlead-ttl");
    let stream = hotlead_aws::table::create_table(&client, &table)
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(hotlead_aws::table::EXPIRES_AT)
                .enabled(false)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let status = |client: aws_sdk_dynamodb::Client, table: String| async move {
        client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status().cloned())
    };
    assert_ne!(
        status(client.clone(), table.clone()).await,
        Some(TimeToLiveStatus::Enabled)
    );
    let again = hotlead_aws::table::create_table(&client, &table)
        .await
        .unwrap();
    assert_eq!(again, stream, "the same table, the same stream");
    assert_eq!(
        status(client.clone(), table.clone()).await,
        Some(TimeToLiveStatus::Enabled)
    );
}

/// DynamoDB: an erasure cut short, then the person comes back (a new lead takes over the
/// address), then the person asks again by address: both leads go, the unfinished one
/// included (the link taken over names it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_erasing_the_address_again_finishes_the_lead_erased_before_the_person_came_back() {
    let store = Arc::new(hotlead_tests::aws::fresh_table().await);
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(FileOutbox::new(&dir.path().join("alerts.jsonl")));
    a_person_and_a_bystander(store.as_ref(), &outbox).await;
    cut_short_after_marking(&store, "L-ERASE-A").await;
    store
        .record(record(
            json!({"type": "identify", "messageId": "msg-erase-back", "anonymousId": "anon-erase-1",
                   "traits": {"email": "taro.erase@example.co.jp"}}),
            vec![
                IdentityKey::email("taro.erase@example.co.jp").unwrap(),
                anon("anon-erase-1"),
            ],
            &[("email", "taro.erase@example.co.jp")],
            90,
            "L-ERASE-NEW",
        ))
        .await
        .unwrap();
    let review = Review::new(store.clone(), Arc::new(ManualClock::at(at(100))))
        .with_alert_archive(outbox.clone() as Arc<dyn AlertArchive>);
    let erasure = review
        .erase(&EraseTarget::Email("taro.erase@example.co.jp".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erasure.erased.lead_id, "L-ERASE-NEW");
    for id in ["L-ERASE-A", "L-ERASE-B"] {
        assert!(
            erasure.erased.lead_ids.iter().any(|l| l == id),
            "{erasure:?}"
        );
    }
    for item in &scan(&store).await {
        assert_no_trace("an item of the table", item);
        assert!(!item.contains("L-ERASE-NEW"), "{item}");
    }
}

/// The outbox file is prepared before the store erases anything: when that fails,
/// nothing is erased and erasing again does all of it (the merged lead's alert included).
async fn a_failed_outbox_erases_nothing(store: Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let outbox = Arc::new(FileOutbox::new(&path));
    a_person_and_a_bystander(store.as_ref(), &outbox).await;
    let remembered = dir.path().join("alerts.jsonl.erased");
    std::fs::create_dir(&remembered).unwrap();
    let review = Review::new(store.clone(), Arc::new(ManualClock::at(at(100))))
        .with_alert_archive(outbox.clone() as Arc<dyn AlertArchive>);
    let target = EraseTarget::Email("taro.erase@example.co.jp".into());
    let failed = review.erase(&target).await.unwrap_err();
    assert!(
        matches!(failed, hotlead_app::review::ReviewError::Unavailable(_)),
        "{failed:?}"
    );
    assert!(
        store.lead("L-ERASE-A").await.unwrap().is_some(),
        "nothing erased while the outbox file cannot be prepared"
    );
    std::fs::remove_dir(&remembered).unwrap();
    let erasure = review.erase(&target).await.unwrap().unwrap();
    assert_eq!(erasure.alerts_redacted, 1);
    assert_no_trace("the outbox file", &std::fs::read_to_string(&path).unwrap());
    let ids = std::fs::read_to_string(&remembered).unwrap();
    assert!(
        ids.contains("L-ERASE-A\n") && ids.contains("L-ERASE-B\n"),
        "{ids}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_outbox_erases_nothing() {
    a_failed_outbox_erases_nothing(Arc::new(
        hotlead_embedded::SqliteStore::in_memory().unwrap(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_a_failed_outbox_erases_nothing() {
    a_failed_outbox_erases_nothing(Arc::new(hotlead_tests::aws::fresh_table().await)).await;
}

/// A last line of the remembered ids cut short (a crash mid-write) does not swallow the
/// next id; a directory that does not exist yet is made.
#[tokio::test]
async fn remembered_erased_ids_survive_a_torn_line_and_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet").join("alerts.jsonl");
    let outbox = FileOutbox::new(&path);
    outbox.redact(&["L-11".into()]).await.unwrap();
    let remembered = dir.path().join("not-yet").join("alerts.jsonl.erased");
    std::fs::write(&remembered, "L-11\nL-12").unwrap();
    outbox.redact(&["L-13".into()]).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&remembered).unwrap(),
        "L-11\nL-12\nL-13\n"
    );
    assert!(outbox.deliver(&outbox_alert("L-13")).await.is_err());
}

/// DynamoDB: a linked visitor's event stored before visitors' events were copied (its
/// expiry removed) is copied into the lead's partition and gets its expiry back.
#[tokio::test]
async fn dynamodb_an_earlier_kept_visitor_event_is_copied_and_expires_again() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = hotlead_tests::aws::fresh_table().await;
    two_visitors(&store).await;
    let client = aws_sdk_dynamodb::Client::new(&hotlead_tests::aws::config().await);
    let anon_items = |client: aws_sdk_dynamodb::Client, table: String| async move {
        client
            .query()
            .table_name(table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S("ANON#kept-visitor".into()))
            .send()
            .await
            .unwrap()
            .items()
            .to_vec()
    };
    let original = anon_items(client.clone(), store.table().to_string()).await;
    let sk = original[0]["SK"].as_s().unwrap().clone();
    // As the earlier version left it.
    client
        .update_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S("ANON#kept-visitor".into()))
        .key("SK", AttributeValue::S(sk.clone()))
        .update_expression("REMOVE expires_at")
        .send()
        .await
        .unwrap();
    assert_eq!(store.events("L-KEPT").await.unwrap().len(), 2);
    let after = anon_items(client.clone(), store.table().to_string()).await;
    assert!(after[0].contains_key("expires_at"), "{after:?}");
    let copy = client
        .get_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S("LEAD#L-KEPT".into()))
        .key("SK", AttributeValue::S(sk))
        .send()
        .await
        .unwrap();
    assert!(copy.item.is_some_and(|i| !i.contains_key("expires_at")));
}
