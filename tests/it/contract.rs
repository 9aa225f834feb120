//! The store contract: every `Store` adapter must pass these. Each test function takes a
//! fresh, empty store; `sqlite` runs them on the embedded adapter (the DynamoDB adapter
//! runs the very same functions).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hotlead_app::ports::{
    ActionOutcome, ActionRecord, Dirty, EraseSubject, EventsCursor, EventsRead, FollowUpRecord,
    HistoryEntry, HistoryRead, HistoryUpdate, OutboxEntry, Record, SaveOutcome, ScoreUpdate, Store,
    StoreError, content_digest,
};
use hotlead_core::alert::{AlertMessage, Routing};
use hotlead_core::identity::IdentityKey;
use hotlead_core::stage::{Change, LeadStage, RepAction};
use hotlead_core::{Band, Lead, score};
use hotlead_tests::{rules, segment, time};
use serde_json::json;

const T0: &str = "2026-11-01T00:00:00Z";

fn at(minutes: i64) -> DateTime<Utc> {
    time(T0) + Duration::minutes(minutes)
}

fn email(e: &str) -> IdentityKey {
    IdentityKey::Email(e.into())
}

fn anon(a: &str) -> IdentityKey {
    IdentityKey::Anonymous(a.into())
}

fn page_record(
    message_id: &str,
    minutes: i64,
    anonymous: Option<&str>,
    keys: Vec<IdentityKey>,
    new_id: &str,
) -> Record {
    let mut call = json!({"type": "page", "messageId": message_id, "timestamp": at(minutes).to_rfc3339(),
        "context": {"page": {"path": "/pricing"}}});
    call["anonymousId"] = json!(anonymous.unwrap_or("someone"));
    let event = segment(call);
    Record {
        digest: content_digest(&event, &[]),
        retention: Default::default(),
        event,
        keys,
        attributes: vec![],
        received_at: at(minutes),
        new_lead_id: new_id.into(),
    }
}

fn form_record(
    message_id: &str,
    minutes: i64,
    address: &str,
    anonymous: Option<&str>,
    attributes: &[(&str, &str)],
    new_id: &str,
) -> Record {
    let mut keys = vec![email(address)];
    keys.extend(anonymous.map(anon));
    let mut record = page_record(message_id, minutes, anonymous, keys, new_id);
    record.attributes = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut extra = vec![("email", address)];
    extra.extend(attributes.iter().copied());
    record.digest = content_digest(&record.event, &extra);
    record
}

fn alert(key: &str, lead: &str) -> OutboxEntry {
    OutboxEntry {
        key: key.into(),
        created_at: at(0),
        message: AlertMessage {
            lead_id: lead.into(),
            reason: "hot".into(),
            subject: "s".into(),
            body: "b".into(),
            score: 80.0,
            band: "hot".into(),
            grade: "A1".into(),
            routing: Routing {
                territory: "east".into(),
                owner: None,
                product: None,
            },
            lead_url: "http://x/v1/leads/L".into(),
        },
    }
}

fn a_score(lead_id: &str, points: i64) -> hotlead_core::Score {
    let rules = rules(&format!(
        "name = \"c\"\nversion = 1\n[bands]\nhot = 80\nwarm = 40\n[groups.fit]\naxis = \"fit\"\n\
         [[rules]]\nid = \"p\"\ngroup = \"fit\"\npoints = {points}\nwhen = {{ attribute = \"email\", present = true }}\n"
    ));
    score(
        &rules,
        &Lead::from_raw(lead_id, [("email", "a@b.jp")]),
        &[],
        at(0),
        None,
    )
}

pub async fn a_message_id_is_stored_once(store: &dyn Store) {
    let first = store
        .record(form_record("m1", 0, "a@b.jp", None, &[], "L-1"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.lead_id.as_deref(), Some("L-1"));
    let again = store
        .record(form_record(
            "m1",
            5,
            "other@b.jp",
            None,
            &[("name", "changed")],
            "L-2",
        ))
        .await
        .unwrap();
    assert!(
        again.duplicate && again.conflicting,
        "other content under one id"
    );
    assert_eq!(again.lead_id, None, "a reused id names no lead");
    let same = store
        .record(form_record("m1", 9, "a@b.jp", None, &[], "L-3"))
        .await
        .unwrap();
    assert!(same.duplicate && !same.conflicting, "the same call again");
    assert_eq!(same.lead_id.as_deref(), Some("L-1"));
    assert!(
        store.lead("L-2").await.unwrap().is_none() && store.lead("L-3").await.unwrap().is_none(),
        "a duplicate creates nothing"
    );
    assert_eq!(store.events("L-1").await.unwrap().len(), 1);
    assert!(
        !store
            .lead("L-1")
            .await
            .unwrap()
            .unwrap()
            .attributes
            .contains_key("name"),
        "a duplicate changes nothing"
    );
}

pub async fn an_email_identifies_one_lead_and_attributes_update(store: &dyn Store) {
    store
        .record(form_record(
            "m1",
            0,
            "a@b.jp",
            None,
            &[("company", "株式会社A"), ("title", "課長")],
            "L-1",
        ))
        .await
        .unwrap();
    let second = store
        .record(form_record(
            "m2",
            10,
            "a@b.jp",
            None,
            &[("title", "部長")],
            "L-2",
        ))
        .await
        .unwrap();
    assert_eq!(second.lead_id.as_deref(), Some("L-1"));
    let lead = store.lead("L-1").await.unwrap().unwrap();
    assert_eq!(lead.attributes["company"], "株式会社A");
    assert_eq!(lead.attributes["title"], "部長");
    assert_eq!(lead.identities, vec!["email:a@b.jp".to_string()]);
    assert_eq!(lead.created_at, at(0));
    assert_eq!(store.events("L-1").await.unwrap().len(), 2);
}

pub async fn anonymous_behaviour_joins_the_lead_it_becomes(store: &dyn Store) {
    for i in 0..3 {
        let recorded = store
            .record(page_record(
                &format!("p{i}"),
                i,
                Some("x"),
                vec![anon("x")],
                &format!("L-p{i}"),
            ))
            .await
            .unwrap();
        assert_eq!(
            recorded.lead_id, None,
            "an anonymous visitor is no lead yet"
        );
    }
    assert!(store.dirty(at(60), 10).await.unwrap().is_empty());
    let form = store
        .record(form_record("f", 10, "a@b.jp", Some("x"), &[], "L-1"))
        .await
        .unwrap();
    assert_eq!(form.lead_id.as_deref(), Some("L-1"));
    let events = store.events("L-1").await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.message_id.as_ref())
            .collect::<Vec<_>>(),
        ["p0", "p1", "p2", "f"]
    );
    let later = store
        .record(page_record("p9", 20, Some("x"), vec![anon("x")], "L-9"))
        .await
        .unwrap();
    assert_eq!(
        later.lead_id.as_deref(),
        Some("L-1"),
        "the anonymous id now points at the lead"
    );
}

pub async fn merges_keep_the_oldest_lead_and_move_its_whole_history(store: &dyn Store) {
    let user = IdentityKey::User("u-42".into());
    store
        .record(page_record(
            "u1",
            0,
            Some("y"),
            vec![user.clone(), anon("y")],
            "L-old",
        ))
        .await
        .unwrap();
    store
        .record(form_record(
            "f1",
            5,
            "a@b.jp",
            None,
            &[("company", "A社")],
            "L-new",
        ))
        .await
        .unwrap();
    let mut both = page_record("u2", 10, Some("y"), vec![user, email("a@b.jp")], "L-x");
    both.attributes = vec![("name".into(), "山田".into())];
    let merged = store.record(both).await.unwrap();
    assert_eq!(merged.lead_id.as_deref(), Some("L-old"));
    assert_eq!(merged.merged, vec!["L-new".to_string()]);
    let lead = store
        .lead("L-new")
        .await
        .unwrap()
        .expect("a merged id still finds its lead");
    assert_eq!(lead.id, "L-old");
    assert_eq!(lead.attributes["company"], "A社");
    assert_eq!(lead.attributes["name"], "山田");
    assert!(
        lead.identities.contains(&"email:a@b.jp".to_string())
            && lead.identities.contains(&"user:u-42".to_string())
    );
    assert_eq!(store.events("L-old").await.unwrap().len(), 3);
    assert_eq!(
        store.events("L-new").await.unwrap().len(),
        3,
        "the merged id reads the survivor's history"
    );
    let ranked = store.ranking(None, 10, None).await.unwrap();
    assert!(ranked.leads.iter().all(|l| l.id != "L-new"));
    let dirty: Vec<String> = store
        .dirty(at(60), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.lead_id)
        .collect();
    assert_eq!(dirty, ["L-old"], "only the survivor is rescored");
}

pub async fn two_addresses_on_one_browser_stay_two_leads(store: &dyn Store) {
    store
        .record(form_record("f1", 0, "a@b.jp", Some("shared"), &[], "L-a"))
        .await
        .unwrap();
    let other = store
        .record(form_record("f2", 5, "b@b.jp", Some("shared"), &[], "L-b"))
        .await
        .unwrap();
    assert_eq!(other.lead_id.as_deref(), Some("L-b"));
    assert!(other.merged.is_empty());
    assert_eq!(store.events("L-a").await.unwrap().len(), 1);
    assert!(store.lead("L-a").await.unwrap().is_some());
}

pub async fn concurrent_first_submissions_of_one_email_make_one_lead(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record(form_record(
                    &format!("c{i}"),
                    i,
                    "same@b.jp",
                    None,
                    &[],
                    &format!("L-{i}"),
                ))
                .await
        }));
    }
    let mut leads = std::collections::BTreeSet::new();
    for task in tasks {
        leads.insert(task.await.unwrap().unwrap().lead_id.unwrap());
    }
    assert_eq!(leads.len(), 1, "{leads:?}");
    let lead = leads.into_iter().next().unwrap();
    assert_eq!(store.events(&lead).await.unwrap().len(), 16);
}

/// Many concurrent deliveries of one call (a client retrying, a batch sent twice) store
/// one event: exactly one is answered as new, every other as a duplicate of the same lead.
pub async fn concurrent_retries_of_one_call_store_one_event(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record(form_record(
                    "retried",
                    0,
                    "retry@b.jp",
                    None,
                    &[],
                    &format!("L-{i}"),
                ))
                .await
        }));
    }
    let mut leads = std::collections::BTreeSet::new();
    let mut new = 0;
    for task in tasks {
        let recorded = task.await.unwrap().unwrap();
        assert!(!recorded.conflicting, "{recorded:?}");
        new += usize::from(!recorded.duplicate);
        leads.insert(recorded.lead_id.unwrap());
    }
    assert_eq!(new, 1, "one delivery stored the call");
    assert_eq!(leads.len(), 1, "{leads:?}");
    let lead = leads.into_iter().next().unwrap();
    assert_eq!(store.events(&lead).await.unwrap().len(), 1);
}

pub async fn a_score_saves_with_its_alerts_once_per_key(store: &dyn Store) {
    store
        .record(form_record("m1", 0, "a@b.jp", None, &[], "L-1"))
        .await
        .unwrap();
    let dirty = store.dirty(at(60), 10).await.unwrap();
    assert_eq!(dirty, vec![Dirty::new("L-1", 1)]);
    let update = ScoreUpdate {
        history: Default::default(),
        follow_up: None,
        lead_id: "L-1".into(),
        seen_seq: 1,
        score: a_score("L-1", 90),
        hot_crossings: 1,
        alerts: vec![alert("hot:L-1:1", "L-1")],
    };
    assert_eq!(
        store.save_score(update.clone()).await.unwrap(),
        SaveOutcome::Saved
    );
    assert!(store.dirty(at(60), 10).await.unwrap().is_empty());
    let lead = store.lead("L-1").await.unwrap().unwrap();
    assert_eq!(lead.band(), Some(Band::Hot));
    assert_eq!(lead.hot_crossings, 1);
    assert_eq!(
        lead.score.as_ref().unwrap().contributions.len(),
        1,
        "the explanation is stored with the score"
    );
    // the same alert key again (a replay) adds nothing
    store
        .record(page_record("m2", 1, None, vec![email("a@b.jp")], "L-x"))
        .await
        .unwrap();
    let again = ScoreUpdate {
        history: Default::default(),
        follow_up: None,
        seen_seq: 2,
        ..update
    };
    store.save_score(again).await.unwrap();
    assert_eq!(store.pending_alerts(at(60), 10).await.unwrap().len(), 1);
}

pub async fn events_arriving_while_scoring_keep_the_lead_marked(store: &dyn Store) {
    store
        .record(form_record("m1", 0, "a@b.jp", None, &[], "L-1"))
        .await
        .unwrap();
    let seen = store.dirty(at(60), 10).await.unwrap()[0].seq;
    store
        .record(page_record("m2", 1, None, vec![email("a@b.jp")], "L-x"))
        .await
        .unwrap();
    let update = ScoreUpdate {
        history: Default::default(),
        follow_up: None,
        lead_id: "L-1".into(),
        seen_seq: seen,
        score: a_score("L-1", 10),
        hot_crossings: 0,
        alerts: vec![],
    };
    assert_eq!(
        store.save_score(update.clone()).await.unwrap(),
        SaveOutcome::SavedStillDirty
    );
    let newer = store.dirty(at(60), 10).await.unwrap()[0].seq;
    assert!(newer > seen);
    store
        .save_score(ScoreUpdate {
            history: Default::default(),
            follow_up: None,
            seen_seq: newer,
            ..update.clone()
        })
        .await
        .unwrap();
    let stale = store
        .save_score(ScoreUpdate {
            history: Default::default(),
            follow_up: None,
            seen_seq: seen,
            ..update
        })
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "an older score never overwrites a newer one: {stale:?}"
    );
}

pub async fn failed_deliveries_stay_pending_until_retried_and_delivered_once(store: &dyn Store) {
    store
        .record(form_record("m1", 0, "a@b.jp", None, &[], "L-1"))
        .await
        .unwrap();
    let update = ScoreUpdate {
        history: Default::default(),
        follow_up: None,
        lead_id: "L-1".into(),
        seen_seq: 1,
        score: a_score("L-1", 90),
        hot_crossings: 1,
        alerts: vec![alert("k1", "L-1"), alert("k2", "L-1")],
    };
    store.save_score(update).await.unwrap();
    let pending = store.pending_alerts(at(1), 10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|p| p.entry.key.as_str())
            .collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    store.alert_failed("k1", "smtp down", at(10)).await.unwrap();
    store.alert_delivered("k2", at(1)).await.unwrap();
    assert!(
        store.pending_alerts(at(5), 10).await.unwrap().is_empty(),
        "not before its retry time"
    );
    let retry = store.pending_alerts(at(10), 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].entry.key.as_str(), retry[0].attempts), ("k1", 1));
    assert_eq!(retry[0].entry.message, alert("k1", "L-1").message);
    store.alert_delivered("k1", at(11)).await.unwrap();
    store.alert_delivered("k1", at(12)).await.unwrap();
    assert!(store.pending_alerts(at(100), 10).await.unwrap().is_empty());
}

pub async fn the_ranking_pages_through_leads_by_score(store: &dyn Store) {
    for (i, points) in [10, 90, 50, 90, 85].iter().enumerate() {
        let id = format!("L-{i}");
        store
            .record(form_record(
                &format!("m{i}"),
                i as i64,
                &format!("p{i}@b.jp"),
                None,
                &[],
                &id,
            ))
            .await
            .unwrap();
        let update = ScoreUpdate {
            history: Default::default(),
            follow_up: None,
            lead_id: id.clone(),
            seen_seq: 1,
            score: a_score(&id, *points),
            hot_crossings: 0,
            alerts: vec![],
        };
        store.save_score(update).await.unwrap();
    }
    let first = store.ranking(None, 2, None).await.unwrap();
    assert_eq!(
        first
            .leads
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["L-1", "L-3"]
    );
    let second = store.ranking(None, 2, first.next.as_deref()).await.unwrap();
    assert_eq!(
        second
            .leads
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["L-4", "L-2"]
    );
    let third = store
        .ranking(None, 2, second.next.as_deref())
        .await
        .unwrap();
    assert_eq!(
        third
            .leads
            .iter()
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["L-0"]
    );
    assert_eq!(third.next, None);
    let hot = store.ranking(Some(Band::Hot), 10, None).await.unwrap();
    assert_eq!(
        hot.leads.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["L-1", "L-3", "L-4"]
    );
}

pub async fn aged_scores_are_found_oldest_first(store: &dyn Store) {
    for (i, minutes) in [30, 10, 20].iter().enumerate() {
        let id = format!("L-{i}");
        store
            .record(form_record(
                &format!("m{i}"),
                0,
                &format!("p{i}@b.jp"),
                None,
                &[],
                &id,
            ))
            .await
            .unwrap();
        let mut score = a_score(&id, 10);
        score.at = at(*minutes);
        store
            .save_score(ScoreUpdate {
                history: Default::default(),
                follow_up: None,
                lead_id: id,
                seen_seq: 1,
                score,
                hot_crossings: 0,
                alerts: vec![],
            })
            .await
            .unwrap();
    }
    store
        .record(form_record("m9", 0, "never@b.jp", None, &[], "L-9"))
        .await
        .unwrap();
    let aged = store.scored_before(at(25), 10).await.unwrap();
    assert_eq!(aged, vec![Dirty::new("L-1", 1), Dirty::new("L-2", 1)]);
    assert_eq!(store.scored_before(at(25), 1).await.unwrap().len(), 1);
}

/// A merge keeps the higher hot-crossing count, so the survivor's next crossing never
/// reuses an alert key the merged lead's crossings used.
pub async fn a_merge_keeps_the_higher_hot_crossing_count(store: &dyn Store) {
    let user = IdentityKey::User("u-1".into());
    let mut older = page_record("m1", 0, Some("b1"), vec![user.clone(), anon("b1")], "L-old");
    older.event.user_id = Some("u-1".into());
    store.record(older).await.unwrap();
    store
        .record(form_record("m2", 1, "hot@b.jp", None, &[], "L-hot"))
        .await
        .unwrap();
    store
        .save_score(ScoreUpdate {
            history: Default::default(),
            follow_up: None,
            lead_id: "L-hot".into(),
            seen_seq: 1,
            score: a_score("L-hot", 90),
            hot_crossings: 2,
            alerts: vec![],
        })
        .await
        .unwrap();
    let mut joining = form_record("m3", 2, "hot@b.jp", None, &[], "L-new");
    joining.keys.push(user);
    let recorded = store.record(joining).await.unwrap();
    assert_eq!(
        recorded.lead_id.as_deref(),
        Some("L-old"),
        "the oldest survives"
    );
    assert_eq!(recorded.merged, vec!["L-hot".to_string()]);
    let survivor = store.lead("L-old").await.unwrap().unwrap();
    assert_eq!(survivor.hot_crossings, 2);
}

/// A lead's keys and attributes stay within their limits whatever it is sent, and every
/// call is stored.
pub async fn a_lead_stays_within_its_limits(store: &dyn Store) {
    use hotlead_core::identity::{MAX_ATTRIBUTES, MAX_IDENTITIES};
    for i in 0..40 {
        let attributes: Vec<(String, String)> = (0..10)
            .map(|j| (format!("field_{i}_{j}"), "x".repeat(50)))
            .collect();
        let mut record = form_record(
            &format!("m{i}"),
            i,
            "full@b.jp",
            Some(&format!("b{i}")),
            &[],
            "L-1",
        );
        record.attributes = attributes;
        record.digest = format!("d{i}");
        let recorded = store.record(record).await.unwrap();
        assert_eq!(recorded.lead_id.as_deref(), Some("L-1"));
        assert_eq!(
            recorded.dropped_attributes.is_empty(),
            i < MAX_ATTRIBUTES as i64 / 10,
            "call {i}"
        );
    }
    let lead = store.lead("L-1").await.unwrap().unwrap();
    assert_eq!(lead.attributes.len(), MAX_ATTRIBUTES);
    let mut record = form_record(
        "m-plain",
        60,
        "full@b.jp",
        None,
        &[("company", "株式会社フル")],
        "L-1",
    );
    record.digest = "plain".into();
    let recorded = store.record(record).await.unwrap();
    assert!(
        recorded.dropped_attributes.is_empty(),
        "the company is always kept"
    );
    assert_eq!(
        store.lead("L-1").await.unwrap().unwrap().attributes["company"],
        "株式会社フル"
    );
    assert_eq!(lead.identities.len(), MAX_IDENTITIES);
    assert_eq!(lead.identities[0], "email:full@b.jp");
    assert!(lead.identities.contains(&"anon:b39".to_string()));
    assert!(
        !lead.identities.contains(&"anon:b0".to_string()),
        "the oldest browser went"
    );
    // An unlinked browser is anonymous again; the newest still leads to the person.
    let old = store
        .record(page_record(
            "p-old",
            50,
            Some("b0"),
            vec![anon("b0")],
            "L-x",
        ))
        .await
        .unwrap();
    assert_eq!(old.lead_id, None);
    let new = store
        .record(page_record(
            "p-new",
            51,
            Some("b39"),
            vec![anon("b39")],
            "L-x",
        ))
        .await
        .unwrap();
    assert_eq!(new.lead_id.as_deref(), Some("L-1"));
}

fn entry(lead: &str, rev: u32, minutes: i64, change: Change) -> HistoryEntry {
    HistoryEntry {
        lead_id: lead.into(),
        rev,
        at: at(minutes),
        by: if matches!(change, Change::Action { .. }) {
            "Sato".into()
        } else {
            "rules c v1".into()
        },
        change,
    }
}

fn stage(id: &str, minutes: i64, by_rep: bool) -> LeadStage {
    LeadStage {
        id: id.into(),
        since: at(minutes),
        by_rep,
    }
}

fn band_change(lead: &str, rev: u32, from: Option<Band>, to: Band) -> HistoryEntry {
    entry(
        lead,
        rev,
        0,
        Change::Band {
            from,
            to,
            score: hotlead_core::Points::from_f64(90.0),
            rules: hotlead_core::score::RulesVersion {
                name: "c".into(),
                version: 1,
            },
        },
    )
}

/// A lead scored hot and made an MQL by the rules (history 1, 2), as a contract test
/// starts from.
async fn an_mql(store: &dyn Store) {
    store
        .record(form_record("m1", 0, "a@b.jp", None, &[], "L-1"))
        .await
        .unwrap();
    let update = ScoreUpdate {
        lead_id: "L-1".into(),
        seen_seq: 1,
        score: a_score("L-1", 90),
        hot_crossings: 1,
        alerts: vec![],
        follow_up: None,
        history: HistoryUpdate {
            read: Some(HistoryRead {
                band: None,
                history_rev: 0,
            }),
            entries: vec![
                band_change("L-1", 1, None, Band::Hot),
                entry(
                    "L-1",
                    2,
                    0,
                    Change::Stage {
                        from: None,
                        to: "mql".into(),
                    },
                ),
            ],
            stage: Some(stage("mql", 0, false)),
        },
    };
    assert_eq!(store.save_score(update).await.unwrap(), SaveOutcome::Saved);
}

pub async fn a_score_saves_its_history_only_from_what_the_lead_holds(store: &dyn Store) {
    an_mql(store).await;
    let lead = store.lead("L-1").await.unwrap().unwrap();
    assert_eq!(lead.stage, Some(stage("mql", 0, false)));
    assert_eq!(lead.history_rev, 2);
    let history = store.history("L-1").await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.rev).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(history[0], band_change("L-1", 1, None, Band::Hot));

    // Two scorers raced from the same read: the second finds the lead moved on.
    store
        .record(page_record("m2", 1, None, vec![email("a@b.jp")], "L-x"))
        .await
        .unwrap();
    let stale = ScoreUpdate {
        lead_id: "L-1".into(),
        seen_seq: 2,
        score: a_score("L-1", 90),
        hot_crossings: 1,
        alerts: vec![],
        follow_up: None,
        history: HistoryUpdate {
            read: Some(HistoryRead {
                band: None,
                history_rev: 0,
            }),
            entries: vec![band_change("L-1", 1, None, Band::Hot)],
            stage: None,
        },
    };
    assert!(matches!(
        store.save_score(stale.clone()).await,
        Err(StoreError::Conflict { .. })
    ));
    // A score read from another band conflicts even with nothing to add to the history.
    let other_band = ScoreUpdate {
        history: HistoryUpdate {
            read: Some(HistoryRead {
                band: Some(Band::Warm),
                history_rev: 2,
            }),
            entries: vec![],
            stage: None,
        },
        ..stale.clone()
    };
    assert!(matches!(
        store.save_score(other_band).await,
        Err(StoreError::Conflict { .. })
    ));
    // History read at the right band but an older count conflicts too.
    let old_count = ScoreUpdate {
        history: HistoryUpdate {
            read: Some(HistoryRead {
                band: Some(Band::Hot),
                history_rev: 1,
            }),
            entries: vec![band_change("L-1", 2, Some(Band::Hot), Band::Warm)],
            stage: None,
        },
        ..stale.clone()
    };
    assert!(matches!(
        store.save_score(old_count).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.history("L-1").await.unwrap().len(),
        2,
        "nothing added"
    );
    let fresh = ScoreUpdate {
        history: HistoryUpdate {
            read: Some(HistoryRead {
                band: Some(Band::Hot),
                history_rev: 2,
            }),
            entries: vec![],
            stage: None,
        },
        ..stale
    };
    assert_eq!(store.save_score(fresh).await.unwrap(), SaveOutcome::Saved);
    assert!(store.history("nobody").await.unwrap().is_empty());
}

pub async fn a_reps_action_is_recorded_once_and_marks_the_lead(store: &dyn Store) {
    an_mql(store).await;
    assert!(store.dirty(at(60), 10).await.unwrap().is_empty());
    let accept = ActionRecord {
        lead_id: "L-1".into(),
        crossing: 0,
        token: "0123456789abcdef0123456789abcdef".into(),
        read_rev: 2,
        entries: vec![
            entry(
                "L-1",
                3,
                30,
                Change::Action {
                    action: RepAction::Accept,
                    reason: None,
                },
            ),
            entry(
                "L-1",
                4,
                30,
                Change::Stage {
                    from: Some("mql".into()),
                    to: "sql".into(),
                },
            ),
        ],
        stage: Some(stage("sql", 30, true)),
    };
    assert_eq!(
        store.record_action(&accept).await.unwrap(),
        ActionOutcome::Recorded
    );
    let lead = store.lead("L-1").await.unwrap().unwrap();
    assert_eq!(lead.stage, Some(stage("sql", 30, true)));
    assert_eq!(lead.history_rev, 4);
    assert_eq!(
        store.dirty(at(60), 10).await.unwrap().len(),
        1,
        "an action marks the lead for rescoring"
    );
    // The same confirmation again (a double click, a retry): recorded once.
    assert_eq!(
        store.record_action(&accept).await.unwrap(),
        ActionOutcome::Repeated
    );
    // Another confirmation worked out before the first landed: the lead moved on.
    let contacted = ActionRecord {
        token: "fedcba9876543210fedcba9876543210".into(),
        entries: vec![entry(
            "L-1",
            3,
            31,
            Change::Action {
                action: RepAction::Contacted,
                reason: None,
            },
        )],
        stage: None,
        ..accept.clone()
    };
    assert!(matches!(
        store.record_action(&contacted).await,
        Err(StoreError::Conflict { .. })
    ));
    let history = store.history("L-1").await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[2], accept.entries[0]);
    assert_eq!(history[3], accept.entries[1]);
    // Worked out again from what is stored, it lands; the stage stays.
    let contacted = ActionRecord {
        read_rev: 4,
        entries: vec![entry(
            "L-1",
            5,
            31,
            Change::Action {
                action: RepAction::Contacted,
                reason: None,
            },
        )],
        ..contacted
    };
    assert_eq!(
        store.record_action(&contacted).await.unwrap(),
        ActionOutcome::Recorded
    );
    let lead = store.lead("L-1").await.unwrap().unwrap();
    assert_eq!(lead.stage, Some(stage("sql", 30, true)));
    assert_eq!(lead.history_rev, 5);
    let nobody = ActionRecord {
        lead_id: "L-404".into(),
        read_rev: 0,
        ..contacted
    };
    assert!(matches!(
        store.record_action(&nobody).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn history_goes_with_merges_and_erasure(store: &dyn Store) {
    an_mql(store).await;
    let user = IdentityKey::User("u-42".into());
    store
        .record(page_record(
            "u0",
            -10,
            Some("y"),
            vec![user.clone(), anon("y")],
            "L-0",
        ))
        .await
        .unwrap();
    // L-0 is older: L-1 merges into it, and its history reads under L-0.
    store
        .record(page_record(
            "u1",
            10,
            Some("y"),
            vec![user, email("a@b.jp")],
            "L-x",
        ))
        .await
        .unwrap();
    let history = store.history("L-0").await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.iter().all(|e| e.lead_id == "L-1"));
    assert_eq!(store.history("L-1").await.unwrap(), history);
    let merged = ActionRecord {
        lead_id: "L-1".into(),
        crossing: 0,
        token: "0123456789abcdef0123456789abcdef".into(),
        read_rev: 2,
        entries: vec![],
        stage: None,
    };
    assert!(
        matches!(
            store.record_action(&merged).await,
            Err(StoreError::NotFound { .. })
        ),
        "an action names the lead as it is now"
    );
    store
        .erase(&EraseSubject::Lead("L-0".into()), at(20))
        .await
        .unwrap()
        .unwrap();
    assert!(store.history("L-0").await.unwrap().is_empty());
    assert!(store.history("L-1").await.unwrap().is_empty());
}

/// A reader of one lead's events that keeps them and asks only for what was stored since
/// (`Store::events_since`), as the scorer does.
#[derive(Default)]
struct EventReader {
    held: Vec<hotlead_core::Event>,
    cursor: Option<EventsCursor>,
}

impl EventReader {
    /// Reads `lead`'s events as a keeping reader does; says whether the store sent all of
    /// them or only new ones, and checks that what the reader then holds is what a full
    /// read gives.
    async fn follow(&mut self, store: &dyn Store, lead: &str) -> &'static str {
        let kind = match store
            .events_since(lead, self.cursor.as_ref())
            .await
            .unwrap()
        {
            EventsRead::All { events, cursor } => {
                self.held = events;
                self.cursor = cursor;
                "all"
            }
            EventsRead::Added { events, cursor } => {
                self.held.extend(events);
                self.cursor = Some(cursor);
                "added"
            }
        };
        let key = |e: &hotlead_core::Event| (e.timestamp, e.message_id.to_string());
        let mut held = self.held.clone();
        held.sort_by_key(key);
        let full = store.events(lead).await.unwrap();
        assert_eq!(
            held.iter().map(key).collect::<Vec<_>>(),
            full.iter().map(key).collect::<Vec<_>>(),
            "after an {kind} read of {lead}, the reader holds what a full read gives"
        );
        assert_eq!(held, full);
        kind
    }
}

/// Reading only a lead's new events keeps exactly what a full read gives: through new
/// events, a browser's earlier events adopted, another lead merged in (and the merged
/// lead's own reader), a repeated message id and an erasure. Returns how each read was
/// answered (a store may always send everything).
pub async fn reading_only_new_events_keeps_what_a_full_read_gives(
    store: &dyn Store,
) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    let mut reader = EventReader::default();
    store
        .record(form_record("f1", 0, "a@b.jp", Some("x"), &[], "L-1"))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    store
        .record(page_record("p1", 5, Some("x"), vec![anon("x")], "L-n"))
        .await
        .unwrap();
    store
        .record(page_record("p0", 3, Some("x"), vec![anon("x")], "L-n"))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    kinds.push(reader.follow(store, "L-1").await);
    // A second browser's earlier visit, then the person signs in on it: the visit (stored
    // before the lead's newest event the reader saw) joins the lead.
    store
        .record(page_record("y1", 1, Some("y"), vec![anon("y")], "L-n"))
        .await
        .unwrap();
    store
        .record(page_record("p2", 8, Some("x"), vec![anon("x")], "L-n"))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    store
        .record(form_record("f2", 6, "a@b.jp", Some("y"), &[], "L-n"))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    assert_eq!(reader.held.len(), 6);
    // Another lead, read by its own reader, then merged into L-1 (after a newer event of
    // L-1 the reader saw).
    let user = IdentityKey::User("u-9".into());
    store
        .record(page_record(
            "u1",
            2,
            Some("z"),
            vec![user.clone(), anon("z")],
            "L-2",
        ))
        .await
        .unwrap();
    let mut other = EventReader::default();
    kinds.push(other.follow(store, "L-2").await);
    store
        .record(page_record("p3", 9, Some("x"), vec![anon("x")], "L-n"))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    store
        .record(page_record(
            "u2",
            7,
            Some("z"),
            vec![user.clone(), email("a@b.jp")],
            "L-n",
        ))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    kinds.push(other.follow(store, "L-2").await);
    assert_eq!(reader.held.len(), 9);
    // A retried call stores nothing new.
    store
        .record(page_record("p1", 5, Some("x"), vec![anon("x")], "L-n"))
        .await
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    store
        .erase(&EraseSubject::Lead("L-1".into()), at(20))
        .await
        .unwrap()
        .unwrap();
    kinds.push(reader.follow(store, "L-1").await);
    kinds.push(other.follow(store, "L-2").await);
    assert!(reader.held.is_empty() && other.held.is_empty());
    kinds
}

fn follow_up(lead: &str, due_minutes: i64) -> FollowUpRecord {
    FollowUpRecord {
        lead_id: lead.into(),
        crossing: 1,
        territory: "east".into(),
        owner: Some("rep-east@example.com".into()),
        alerted_at: at(0),
        due_at: Some(at(due_minutes)),
        first_action_at: None,
        first_action: None,
        escalated_at: None,
        closed_at: None,
    }
}

/// A lead made hot with its alert and follow-up, due `due_minutes` after the alert.
async fn alerted(store: &dyn Store, lead: &str, address: &str, due_minutes: i64) {
    let recorded = store
        .record(form_record(
            &format!("f-{lead}"),
            0,
            address,
            None,
            &[],
            lead,
        ))
        .await
        .unwrap();
    let update = ScoreUpdate {
        lead_id: lead.into(),
        seen_seq: 1,
        score: a_score(lead, 90),
        hot_crossings: 1,
        alerts: vec![alert(&format!("hot:{lead}:1"), lead)],
        history: Default::default(),
        follow_up: Some(follow_up(lead, due_minutes)),
    };
    assert_eq!(recorded.lead_id.as_deref(), Some(lead));
    store.save_score(update.clone()).await.unwrap();
}

pub async fn a_hot_alerts_follow_up_is_answered_or_ended_once(store: &dyn Store) {
    alerted(store, "L-1", "a@b.jp", 120).await;
    alerted(store, "L-2", "b@b.jp", 60).await;
    let all = store.follow_ups(at(-1), at(1), 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(FollowUpRecord::is_open));
    assert!(
        store
            .follow_ups(at(1), at(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .overdue_follow_ups(at(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let overdue = |minutes| async move {
        store
            .overdue_follow_ups(at(minutes), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.lead_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(overdue(90).await, vec!["L-2"]);
    assert_eq!(
        overdue(200).await,
        vec!["L-2", "L-1"],
        "oldest deadline first"
    );

    // The rep acts on L-1: that answers its follow-up; a later action does not move it.
    let action = |rev: u32, minutes: i64, what: RepAction, token: &str| ActionRecord {
        lead_id: "L-1".into(),
        token: token.into(),
        read_rev: rev - 1,
        entries: vec![entry(
            "L-1",
            rev,
            minutes,
            Change::Action {
                action: what,
                reason: None,
            },
        )],
        stage: None,
        crossing: 1,
    };
    store
        .record_action(&action(
            1,
            100,
            RepAction::Contacted,
            "token-one-0123456789",
        ))
        .await
        .unwrap();
    store
        .record_action(&action(2, 150, RepAction::Accept, "token-two-0123456789"))
        .await
        .unwrap();
    let l1 =
        |records: Vec<FollowUpRecord>| records.into_iter().find(|r| r.lead_id == "L-1").unwrap();
    let answered = l1(store.follow_ups(at(-1), at(1), 10).await.unwrap());
    assert_eq!(answered.first_action_at, Some(at(100)));
    assert_eq!(answered.first_action, Some(RepAction::Contacted));
    assert!(!answered.is_open());
    assert_eq!(overdue(200).await, vec!["L-2"]);
    assert!(
        !store.end_follow_up("L-1", 1, at(200), None).await.unwrap(),
        "an answered follow-up does not end again"
    );

    // L-2 re-alerts once.
    let realert = alert("sla:L-2:1", "L-2");
    assert!(
        store
            .end_follow_up("L-2", 1, at(90), Some(realert.clone()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_follow_up("L-2", 1, at(95), Some(realert))
            .await
            .unwrap()
    );
    assert!(overdue(300).await.is_empty());
    let pending = store.pending_alerts(at(300), 10).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .filter(|p| p.entry.key == "sla:L-2:1")
            .count(),
        1,
        "{pending:?}"
    );
    let l2 = store
        .follow_ups(at(-1), at(1), 10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.lead_id == "L-2")
        .unwrap();
    assert_eq!(l2.escalated_at, Some(at(90)));

    // A retried save of the same hot alert keeps the follow-up as it stands.
    store
        .record(page_record(
            "m-again",
            5,
            None,
            vec![email("a@b.jp")],
            "L-x",
        ))
        .await
        .unwrap();
    store
        .save_score(ScoreUpdate {
            lead_id: "L-1".into(),
            seen_seq: 2,
            score: a_score("L-1", 90),
            hot_crossings: 1,
            alerts: vec![alert("hot:L-1:1", "L-1")],
            history: Default::default(),
            follow_up: Some(follow_up("L-1", 120)),
        })
        .await
        .unwrap();
    assert_eq!(
        l1(store.follow_ups(at(-1), at(1), 10).await.unwrap()).first_action_at,
        Some(at(100))
    );
    assert!(!store.end_follow_up("L-404", 1, at(90), None).await.unwrap());

    // Erasing a lead erases its follow-ups.
    store
        .erase(&EraseSubject::Lead("L-1".into()), at(400))
        .await
        .unwrap()
        .unwrap();
    let left = store.follow_ups(at(-1), at(1), 10).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.lead_id.as_str()).collect::<Vec<_>>(),
        vec!["L-2"]
    );
}

pub async fn a_notice_goes_in_the_outbox_once_per_key(store: &dyn Store) {
    let mut notice = alert("digest:2026-11-01", "");
    notice.message.reason = "digest".into();
    assert!(store.add_notice(&notice).await.unwrap());
    assert!(!store.add_notice(&notice).await.unwrap(), "once per key");
    let pending = store.pending_alerts(at(1), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].entry.key, "digest:2026-11-01");
    assert_eq!(pending[0].entry.message.reason, "digest");
    assert!(
        store
            .claim_alert("digest:2026-11-01", at(1), at(3))
            .await
            .unwrap()
    );
    store
        .alert_delivered("digest:2026-11-01", at(2))
        .await
        .unwrap();
    assert!(store.pending_alerts(at(5), 10).await.unwrap().is_empty());
    assert!(
        !store.add_notice(&notice).await.unwrap(),
        "delivered: still once"
    );
}

/// Runs every contract function, each on a fresh store from `fresh`.
macro_rules! store_contract {
    ($module:ident, $fresh:path) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn a_message_id_is_stored_once() {
                super::a_message_id_is_stored_once(&$fresh().await).await;
            }
            #[tokio::test]
            async fn an_email_identifies_one_lead_and_attributes_update() {
                super::an_email_identifies_one_lead_and_attributes_update(&$fresh().await).await;
            }
            #[tokio::test]
            async fn anonymous_behaviour_joins_the_lead_it_becomes() {
                super::anonymous_behaviour_joins_the_lead_it_becomes(&$fresh().await).await;
            }
            #[tokio::test]
            async fn merges_keep_the_oldest_lead_and_move_its_whole_history() {
                super::merges_keep_the_oldest_lead_and_move_its_whole_history(&$fresh().await)
                    .await;
            }
            #[tokio::test]
            async fn reading_only_new_events_keeps_what_a_full_read_gives() {
                super::reading_only_new_events_keeps_what_a_full_read_gives(&$fresh().await).await;
            }
            #[tokio::test]
            async fn two_addresses_on_one_browser_stay_two_leads() {
                super::two_addresses_on_one_browser_stay_two_leads(&$fresh().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_first_submissions_of_one_email_make_one_lead() {
                super::concurrent_first_submissions_of_one_email_make_one_lead(Arc::new(
                    $fresh().await,
                ))
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_retries_of_one_call_store_one_event() {
                super::concurrent_retries_of_one_call_store_one_event(Arc::new($fresh().await))
                    .await;
            }
            #[tokio::test]
            async fn a_score_saves_with_its_alerts_once_per_key() {
                super::a_score_saves_with_its_alerts_once_per_key(&$fresh().await).await;
            }
            #[tokio::test]
            async fn events_arriving_while_scoring_keep_the_lead_marked() {
                super::events_arriving_while_scoring_keep_the_lead_marked(&$fresh().await).await;
            }
            #[tokio::test]
            async fn failed_deliveries_stay_pending_until_retried_and_delivered_once() {
                super::failed_deliveries_stay_pending_until_retried_and_delivered_once(
                    &$fresh().await,
                )
                .await;
            }
            #[tokio::test]
            async fn aged_scores_are_found_oldest_first() {
                super::aged_scores_are_found_oldest_first(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_merge_keeps_the_higher_hot_crossing_count() {
                super::a_merge_keeps_the_higher_hot_crossing_count(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_lead_stays_within_its_limits() {
                super::a_lead_stays_within_its_limits(&$fresh().await).await;
            }
            #[tokio::test]
            async fn the_ranking_pages_through_leads_by_score() {
                super::the_ranking_pages_through_leads_by_score(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_score_saves_its_history_only_from_what_the_lead_holds() {
                super::a_score_saves_its_history_only_from_what_the_lead_holds(&$fresh().await)
                    .await;
            }
            #[tokio::test]
            async fn a_reps_action_is_recorded_once_and_marks_the_lead() {
                super::a_reps_action_is_recorded_once_and_marks_the_lead(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_hot_alerts_follow_up_is_answered_or_ended_once() {
                super::a_hot_alerts_follow_up_is_answered_or_ended_once(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_notice_goes_in_the_outbox_once_per_key() {
                super::a_notice_goes_in_the_outbox_once_per_key(&$fresh().await).await;
            }
            #[tokio::test]
            async fn history_goes_with_merges_and_erasure() {
                super::history_goes_with_merges_and_erasure(&$fresh().await).await;
            }
        }
    };
}

async fn fresh_sqlite() -> hotlead_embedded::SqliteStore {
    hotlead_embedded::SqliteStore::in_memory().expect("in-memory SQLite")
}

/// A SQLite file (reads on read connections of their own, unlike the in-memory store),
/// under the integration tests' own temporary directory.
async fn fresh_sqlite_file() -> hotlead_embedded::SqliteStore {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory")
        .keep();
    hotlead_embedded::SqliteStore::open(&dir.join("hotlead.db")).expect("a SQLite file")
}

async fn fresh_dynamo() -> hotlead_aws::DynamoStore {
    hotlead_tests::aws::fresh_table().await
}

store_contract!(sqlite, fresh_sqlite);
store_contract!(sqlite_file, fresh_sqlite_file);
store_contract!(dynamodb, fresh_dynamo);

/// The embedded store reads only new events when nothing else changed, and everything
/// when events moved in or out or were deleted.
#[tokio::test]
async fn sqlite_reads_only_new_events_unless_the_lead_s_events_changed_otherwise() {
    let kinds = reading_only_new_events_keeps_what_a_full_read_gives(&fresh_sqlite().await).await;
    assert_eq!(
        kinds,
        [
            "all",   // first read
            "added", // two new events (one older than the last)
            "added", // nothing new
            "added", // an anonymous visit (not the lead's) and a new event
            "all",   // that visit adopted
            "all",   // L-2's first read
            "added", // a new event
            "all",   // L-2 merged in
            "all",   // L-2's reader: its id now reads L-1
            "added", // a retried call
            "all",   // erased
            "all",   // erased
        ]
    );
}

#[tokio::test]
async fn a_sqlite_file_keeps_its_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/hotlead.db");
    {
        let store = hotlead_embedded::SqliteStore::open(&path).unwrap();
        store
            .record(form_record("m1", 0, "a@b.jp", None, &[], "L-1"))
            .await
            .unwrap();
    }
    let reopened = hotlead_embedded::SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.schema_version().unwrap(), 10);
    assert!(reopened.lead("L-1").await.unwrap().is_some());
}

/// The request counter's contract (the per-client limit): a key is admitted `limit` times
/// in a window and then refused; other keys and the next window count apart; copies
/// counting at once never admit more than the limit.
async fn the_request_counter_admits_a_key_up_to_its_limit_per_window(
    counter: Arc<dyn hotlead_app::ports::RequestCounter>,
) {
    let window = at(1);
    for _ in 0..3 {
        assert!(counter.count("forms:a", window, 3, 1).await.unwrap());
    }
    assert!(!counter.count("forms:a", window, 3, 1).await.unwrap());
    assert!(!counter.count("forms:a", window, 3, 1).await.unwrap());
    assert!(counter.count("forms:b", window, 3, 1).await.unwrap());
    assert!(counter.count("calls:a", window, 3, 1).await.unwrap());
    // A batch's calls count together: refused whole when they would pass the limit.
    assert!(counter.count("calls:b", window, 10, 8).await.unwrap());
    assert!(!counter.count("calls:b", window, 10, 3).await.unwrap());
    assert!(counter.count("calls:b", window, 10, 2).await.unwrap());
    assert!(!counter.count("calls:b", window, 10, 1).await.unwrap());
    assert!(!counter.count("calls:c", window, 10, 11).await.unwrap());
    let next = at(2);
    assert!(counter.count("forms:a", next, 3, 1).await.unwrap());
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move { counter.count("forms:c", at(3), 5, 1).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_counter_admits_a_key_up_to_its_limit_per_window() {
    the_request_counter_admits_a_key_up_to_its_limit_per_window(Arc::new(
        hotlead_embedded::MemoryRequestCounter::new(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_counter_admits_a_key_up_to_its_limit_per_window() {
    the_request_counter_admits_a_key_up_to_its_limit_per_window(Arc::new(fresh_dynamo().await))
        .await;
}
