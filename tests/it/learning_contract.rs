//! The learning-store contract: outcomes, suggestions under review, versioned rules.
//! `sqlite` and `dynamodb` run the very same functions on fresh stores.

use chrono::{DateTime, Duration, Utc};
use hotlead_app::ports::{
    DealOutcome, LearningStore, NewRules, Store, StoreError, StoredSuggestion, SuggestionStatus,
};
use hotlead_core::RuleSet;
use hotlead_core::identity::IdentityKey;
use hotlead_tests::{a_suggestion, segment, time};
use serde_json::json;

fn at(days: i64) -> DateTime<Utc> {
    time("2026-11-01T00:00:00Z") + Duration::days(days)
}

fn outcome(lead: &str, won: bool, day: i64) -> DealOutcome {
    DealOutcome {
        lead_id: lead.into(),
        won,
        closed_at: at(day),
        amount: won.then_some(1_200_000.0),
        received_at: at(day),
    }
}

fn new_rules(source: &str, day: i64) -> NewRules {
    NewRules {
        name: "seed".into(),
        source: source.into(),
        text: hotlead_core::rules::SEED.to_string(),
        at: at(day),
    }
}

fn stored(id: &str, day: i64) -> StoredSuggestion {
    StoredSuggestion {
        id: id.into(),
        created_at: at(day),
        review: SuggestionStatus::Pending,
        suggestion: a_suggestion(),
    }
}

pub async fn outcomes_keep_the_latest_per_lead<S: Store + LearningStore>(store: &S) {
    let record = hotlead_app::ports::Record {
        event: segment(
            json!({"type": "identify", "messageId": "m1", "userId": "u1",
            "timestamp": at(0).to_rfc3339(), "traits": {"email": "taro@example.co.jp"}}),
        ),
        keys: vec![IdentityKey::Email("taro@example.co.jp".into())],
        attributes: vec![],
        received_at: at(0),
        new_lead_id: "L-1".into(),
        digest: String::new(),
        retention: Default::default(),
    };
    store.record(record.clone()).await.unwrap();
    // Outcomes are stored for leads that are (see `erase`).
    let mut second = record;
    second.event = segment(
        json!({"type": "identify", "messageId": "m2", "userId": "u2",
        "timestamp": at(0).to_rfc3339(), "traits": {"email": "hanako@example.co.jp"}}),
    );
    second.keys = vec![IdentityKey::Email("hanako@example.co.jp".into())];
    second.new_lead_id = "L-2".into();
    store.record(second).await.unwrap();
    let email = IdentityKey::Email("taro@example.co.jp".into());
    assert_eq!(
        store.lead_for(&email).await.unwrap().as_deref(),
        Some("L-1")
    );
    let nobody = IdentityKey::Email("nobody@example.co.jp".into());
    assert_eq!(store.lead_for(&nobody).await.unwrap(), None);

    store
        .put_outcomes(&[outcome("L-1", false, 1), outcome("L-2", true, 2)])
        .await
        .unwrap();
    // A later outcome replaces an earlier one; an older one does not.
    store
        .put_outcomes(&[outcome("L-1", true, 5)])
        .await
        .unwrap();
    store
        .put_outcomes(&[outcome("L-1", false, 3)])
        .await
        .unwrap();
    let all = store.outcomes().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], outcome("L-1", true, 5));
    assert_eq!(all[1].amount, Some(1_200_000.0));
}

pub async fn a_suggestion_is_reviewed_once<S: Store + LearningStore>(store: &S) {
    store.save_suggestion(&stored("s-1", 1)).await.unwrap();
    store.save_suggestion(&stored("s-2", 2)).await.unwrap();
    assert!(matches!(
        store.save_suggestion(&stored("s-1", 3)).await,
        Err(StoreError::Conflict { .. })
    ));
    let heads = store.suggestions(10).await.unwrap();
    assert_eq!(
        heads.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["s-2", "s-1"]
    );
    assert_eq!(store.suggestions(1).await.unwrap().len(), 1);
    let read = store.suggestion("s-1").await.unwrap().unwrap();
    assert_eq!(read, stored("s-1", 1));
    assert!(store.suggestion("s-9").await.unwrap().is_none());

    store
        .reject("s-2", "analyst", "month is not a lead attribute", at(4))
        .await
        .unwrap();
    let version = store
        .approve("s-1", "analyst", new_rules("suggestion s-1", 4))
        .await
        .unwrap();
    assert_eq!(version.version, 1);
    assert!(version.active);
    match store.suggestion("s-1").await.unwrap().unwrap().review {
        SuggestionStatus::Approved { rules_version, .. } => assert_eq!(rules_version, 1),
        other => panic!("expected approved, got {other:?}"),
    }
    // Decided once: approving or rejecting again is a conflict, and changes nothing.
    for result in [
        store
            .approve("s-2", "analyst", new_rules("suggestion s-2", 5))
            .await
            .map(|_| ()),
        store
            .reject("s-1", "analyst", "second thoughts", at(5))
            .await,
    ] {
        assert!(
            matches!(result, Err(StoreError::Conflict { .. })),
            "{result:?}"
        );
    }
    assert_eq!(store.rules_history().await.unwrap().len(), 1);
    let heads = store.suggestions(10).await.unwrap();
    assert_eq!(heads[0].review.name(), "rejected");
    assert_eq!(heads[1].review.name(), "approved");
}

pub async fn rules_versions_are_numbered_and_one_is_active<S: Store + LearningStore>(store: &S) {
    assert!(store.active_rules().await.unwrap().is_none());
    let first = store
        .add_rules(new_rules("file seed.toml", 0))
        .await
        .unwrap();
    let second = store
        .add_rules(new_rules("file seed.toml", 1))
        .await
        .unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    // The text carries the number it was stored under.
    let compiled = RuleSet::from_toml("v2", &second.text).unwrap();
    assert_eq!(compiled.version, 2);
    assert_eq!(store.active_rules().await.unwrap().unwrap().version, 2);

    let back = store.activate_rules(1, at(2)).await.unwrap();
    assert!(back.active);
    assert_eq!(back.activated_at, Some(at(2)));
    let history = store.rules_history().await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|v| (v.version, v.active))
            .collect::<Vec<_>>(),
        [(2, false), (1, true)]
    );
    assert_eq!(store.active_rules().await.unwrap().unwrap().version, 1);
}

pub async fn a_missing_suggestion_or_rules_version_is_not_found<S: Store + LearningStore>(
    store: &S,
) {
    let not_found = |result: Result<(), StoreError>, what: &str, id: &str| match result {
        Err(StoreError::NotFound { what: w, id: i }) if w == what && i == id => {}
        other => panic!("expected no {what} {id}, got {other:?}"),
    };
    // Before any rules are stored, and once some are.
    not_found(
        store.activate_rules(1, at(0)).await.map(|_| ()),
        "rules version",
        "1",
    );
    store
        .add_rules(new_rules("file seed.toml", 0))
        .await
        .unwrap();
    not_found(
        store.activate_rules(7, at(1)).await.map(|_| ()),
        "rules version",
        "7",
    );
    store.save_suggestion(&stored("s-1", 1)).await.unwrap();
    not_found(
        store
            .approve("s-9", "analyst", new_rules("suggestion s-9", 2))
            .await
            .map(|_| ()),
        "suggestion",
        "s-9",
    );
    not_found(
        store.reject("s-9", "analyst", "no such", at(2)).await,
        "suggestion",
        "s-9",
    );
    // Nothing changed: the one version is active, the suggestion still pending.
    let history = store.rules_history().await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|v| (v.version, v.active))
            .collect::<Vec<_>>(),
        [(1, true)]
    );
    assert_eq!(
        store.suggestion("s-1").await.unwrap().unwrap().review,
        SuggestionStatus::Pending
    );
}

pub async fn a_large_suggestion_round_trips<S: Store + LearningStore>(store: &S) {
    let mut big = stored("s-big", 1);
    // Past DynamoDB's item size: stored in parts, read back whole.
    big.suggestion.rules_toml = "# 検討メモ\n".repeat(60_000);
    store.save_suggestion(&big).await.unwrap();
    assert_eq!(store.suggestion("s-big").await.unwrap().unwrap(), big);
}

macro_rules! learning_contract {
    ($module:ident, $fresh:path) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn outcomes_keep_the_latest_per_lead() {
                super::outcomes_keep_the_latest_per_lead(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_suggestion_is_reviewed_once() {
                super::a_suggestion_is_reviewed_once(&$fresh().await).await;
            }
            #[tokio::test]
            async fn rules_versions_are_numbered_and_one_is_active() {
                super::rules_versions_are_numbered_and_one_is_active(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_missing_suggestion_or_rules_version_is_not_found() {
                super::a_missing_suggestion_or_rules_version_is_not_found(&$fresh().await).await;
            }
            #[tokio::test]
            async fn a_large_suggestion_round_trips() {
                super::a_large_suggestion_round_trips(&$fresh().await).await;
            }
        }
    };
}

async fn fresh_sqlite() -> hotlead_embedded::SqliteStore {
    hotlead_embedded::SqliteStore::in_memory().expect("in-memory SQLite")
}

async fn fresh_dynamo() -> hotlead_aws::DynamoStore {
    hotlead_tests::aws::fresh_table().await
}

learning_contract!(sqlite, fresh_sqlite);
learning_contract!(dynamodb, fresh_dynamo);
