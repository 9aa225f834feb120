//! What the functions' IAM policies in `infra/template.yaml` must allow, kept beside the
//! code that needs it. The tests here check the constants against what the adapters send;
//! `tests/it/template.rs` checks the template against the constants.

/// The partition-key prefixes of every item the `ingest` function reads or writes
/// ([`hotlead_app::ports::Store::record`] on [`crate::DynamoStore`]): leads and their
/// events (`LEAD#`), identity links (`ID#`), dedupe keys (`MSG#`) and anonymous
/// visitors' events (`ANON#`), and each client's requests per minute (`RATE#`,
/// [`crate::counter`]). The template limits `ingest` to them with
/// `dynamodb:LeadingKeys`, so it can touch no rules version, suggestion, outcome or alert.
pub const INGEST_PARTITIONS: &[&str] = &["LEAD#", "ID#", "MSG#", "ANON#", "RATE#"];

/// The DynamoDB actions `ingest` needs: reads of single items and identity links, and the
/// puts, updates and deletes (an identity link let go past a lead's key limit) of its one
/// `TransactWriteItems` per call (a transaction is authorised as its parts). No `Query`,
/// no index: the ingest path reads nothing else.
pub const INGEST_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
];

/// What the reps' lead pages (`GET /l/{id}`, served by `ingest` too) need beyond
/// [`INGEST_ACTIONS`] on [`INGEST_PARTITIONS`]: the lead's and its visitors' events and
/// the lead's history by `Query`, and the condition on the lead under which linked
/// visitors' events are copied into its partition. A rep's action (`POST /l/{id}/..`)
/// is an update of the lead and puts in its partition: [`INGEST_ACTIONS`].
pub const PAGE_PARTITIONS: &[&str] = &["LEAD#", "ANON#"];
/// See [`PAGE_PARTITIONS`].
pub const PAGE_ACTIONS: &[&str] = &["dynamodb:Query", "dynamodb:ConditionCheckItem"];
/// The rules versions' partition: the lead page reads the active version (its time zone,
/// its filters), and nothing else there.
pub const RULES_PARTITION: &str = "RULES";
/// See [`RULES_PARTITION`].
pub const RULES_READ_ACTIONS: &[&str] = &["dynamodb:GetItem"];
/// A suggestion's read-only page (`GET /s/{id}`, the analysts' note's signed link):
/// its head in `SUGGESTIONS` and its body's parts in `SUGGESTION#<id>`, read only.
pub const SUGGESTION_PAGE_PARTITIONS: &[&str] = &["SUGGESTIONS", "SUGGESTION#*"];
/// See [`SUGGESTION_PAGE_PARTITIONS`].
pub const SUGGESTION_PAGE_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:Query"];
/// The ranking page (`GET /r`, the daily digest's signed link): the hot and warm leads
/// of the `band_ranking` index, by `Query` only.
pub const RANKING_PAGE_PARTITIONS: &[&str] = &["BAND#hot", "BAND#warm"];
/// See [`RANKING_PAGE_PARTITIONS`].
pub const RANKING_PAGE_ACTIONS: &[&str] = &["dynamodb:Query"];

/// The `ingest` function's DynamoDB statements in the template, by `Sid`: the partition
/// patterns of `dynamodb:LeadingKeys` and the actions (checked by `tests/it/template.rs`).
pub fn ingest_grants() -> Vec<(&'static str, Vec<String>, Vec<&'static str>)> {
    let patterns = |prefixes: &[&str]| prefixes.iter().map(|p| leading_key_pattern(p)).collect();
    vec![
        (
            "StoreCallsInTheirPartitions",
            patterns(INGEST_PARTITIONS),
            INGEST_ACTIONS.to_vec(),
        ),
        (
            "ReadLeadPages",
            patterns(PAGE_PARTITIONS),
            PAGE_ACTIONS.to_vec(),
        ),
        (
            "ReadActiveRules",
            vec![RULES_PARTITION.to_string()],
            RULES_READ_ACTIONS.to_vec(),
        ),
        (
            "ReadSuggestionPages",
            SUGGESTION_PAGE_PARTITIONS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            SUGGESTION_PAGE_ACTIONS.to_vec(),
        ),
        (
            "ReadRankingPage",
            RANKING_PAGE_PARTITIONS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            RANKING_PAGE_ACTIONS.to_vec(),
        ),
    ]
}

/// Whether one of `ingest`'s statements allows `action` on the partition `pk`.
pub fn ingest_allows(action: &str, pk: &str) -> bool {
    ingest_grants().iter().any(|(_, patterns, actions)| {
        actions.contains(&action)
            && patterns
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => pk.starts_with(prefix),
                    None => pk == pattern,
                })
    })
}

/// The IAM policy pattern of a partition prefix (`LEAD#` -> `LEAD#*`), as the template
/// writes it in `ForAllValues:StringLike` on `dynamodb:LeadingKeys`.
pub fn leading_key_pattern(prefix: &str) -> String {
    format!("{prefix}*")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use hotlead_app::ports::{Record, Store};
    use hotlead_core::Event;
    use hotlead_core::identity::IdentityKey;
    use serde_json::{Value, json};

    use super::*;
    use crate::DynamoStore;
    use crate::test_http::{FakeHttp, Seen, json_error, json_ok};

    const TABLE: &str = "hotlead-test";

    /// A DynamoDB that holds `items` (by PK) and answers reads from them; transactions
    /// succeed, or are cancelled on their first condition with `duplicate`.
    fn fake_dynamodb(items: Vec<Value>, duplicate: bool) -> FakeHttp {
        let by_pk: HashMap<String, Value> = items
            .into_iter()
            .map(|item| (item["PK"]["S"].as_str().unwrap().to_string(), item))
            .collect();
        FakeHttp::new(move |seen: &Seen| {
            let op = seen.target.trim_start_matches("DynamoDB_20120810.");
            match op {
                "GetItem" => {
                    let pk = seen.body["Key"]["PK"]["S"].as_str().unwrap();
                    match by_pk.get(pk) {
                        Some(item) => json_ok(json!({"Item": item})),
                        None => json_ok(json!({})),
                    }
                }
                "BatchGetItem" => {
                    let keys = seen.body["RequestItems"][TABLE]["Keys"].as_array().unwrap();
                    let found: Vec<&Value> = keys
                        .iter()
                        .filter_map(|k| by_pk.get(k["PK"]["S"].as_str().unwrap()))
                        .collect();
                    json_ok(json!({"Responses": {TABLE: found}, "UnprocessedKeys": {}}))
                }
                "TransactWriteItems" if duplicate => {
                    let n = seen.body["TransactItems"].as_array().unwrap().len();
                    let mut reasons = vec![json!({"Code": "ConditionalCheckFailed"})];
                    reasons.resize(n, json!({"Code": "None"}));
                    let mut answer = json_error(
                        400,
                        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                        "Transaction cancelled",
                    );
                    answer.body_mut()["CancellationReasons"] = Value::Array(reasons);
                    answer
                }
                "TransactWriteItems" | "UpdateItem" => json_ok(json!({})),
                other => panic!("the ingest path made an unexpected call: {other}"),
            }
        })
    }

    fn store(fake: &FakeHttp) -> DynamoStore {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("ap-northeast-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "test", None, None, "test",
            ))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .http_client(fake.client())
            .build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), TABLE)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn record(segment: Value, keys: Vec<IdentityKey>, attributes: &[(&str, &str)]) -> Record {
        Record {
            event: Event::from_segment(&segment).unwrap(),
            keys,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            received_at: at("2026-02-01T09:00:00Z"),
            new_lead_id: "L-NEW".into(),
            digest: "d".into(),
            retention: Default::default(),
        }
    }

    fn lead_item(id: &str, created: &str, identities: &[&str], anon: &[&str]) -> Value {
        let email = identities.iter().find(|i| i.starts_with("email:"));
        let attributes = match email {
            Some(e) => json!({"email": e.trim_start_matches("email:")}),
            None => json!({}),
        };
        json!({
            "PK": {"S": format!("LEAD#{id}")}, "SK": {"S": "LEAD"},
            "id": {"S": id}, "created_at": {"S": created}, "updated_at": {"S": created},
            "dirty_seq": {"N": "3"}, "scored_seq": {"N": "3"}, "hot_crossings": {"N": "0"},
            "identities": {"S": serde_json::to_string(identities).unwrap()},
            "anon_sources": {"S": serde_json::to_string(anon).unwrap()},
            "merged_from": {"S": "[]"},
            "attributes": {"S": attributes.to_string()},
        })
    }

    fn id_item(storage: &str, lead: &str) -> Value {
        json!({"PK": {"S": format!("ID#{storage}")}, "SK": {"S": "ID"}, "lead_id": {"S": lead}})
    }

    /// Every partition key a request names (keys, items, batch keys, transaction parts).
    fn partition_keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (name, inner) in map {
                    match (name.as_str(), inner.get("S").and_then(Value::as_str)) {
                        ("PK", Some(pk)) => out.push(pk.to_string()),
                        _ => partition_keys(inner, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| partition_keys(i, out)),
            _ => {}
        }
    }

    /// The IAM actions a request is authorised as.
    fn actions(seen: &Seen) -> Vec<String> {
        let op = seen.target.trim_start_matches("DynamoDB_20120810.");
        if op != "TransactWriteItems" {
            return vec![format!("dynamodb:{op}")];
        }
        seen.body["TransactItems"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|part| part.as_object().unwrap().keys().cloned())
            .map(|kind| match kind.as_str() {
                "ConditionCheck" => "dynamodb:ConditionCheckItem".to_string(),
                other => format!("dynamodb:{other}Item"),
            })
            .collect()
    }

    /// Records `record` on a fake table holding `items`; checks that every key it sends
    /// is in an ingest partition and every call is an ingest action; returns the actions.
    async fn check(items: Vec<Value>, duplicate: bool, record: Record) -> BTreeSet<String> {
        let fake = fake_dynamodb(items, duplicate);
        store(&fake).record(record).await.unwrap();
        let mut used = BTreeSet::new();
        for seen in fake.requests() {
            assert!(
                seen.body["TableName"] == TABLE
                    || seen.body["RequestItems"].get(TABLE).is_some()
                    || seen.body["TransactItems"].is_array(),
                "{seen:?}"
            );
            let mut keys = Vec::new();
            partition_keys(&seen.body, &mut keys);
            assert!(!keys.is_empty(), "a call without a partition key: {seen:?}");
            for pk in keys {
                assert!(
                    INGEST_PARTITIONS.iter().any(|p| pk.starts_with(p)),
                    "ingest touched {pk:?}, outside INGEST_PARTITIONS; update the constant \
                     and the template's LeadingKeys together ({})",
                    seen.target
                );
            }
            for action in actions(&seen) {
                assert!(
                    INGEST_ACTIONS.contains(&action.as_str()),
                    "ingest needs {action}, not in INGEST_ACTIONS"
                );
                used.insert(action);
            }
        }
        used
    }

    #[tokio::test]
    async fn every_key_the_ingest_path_sends_is_in_an_ingest_partition() {
        let email = || IdentityKey::Email("sato@example.co.jp".into());
        let anon = |a: &str| IdentityKey::Anonymous(a.into());
        let mut used = BTreeSet::new();

        // An anonymous page view: its event goes to the browser's partition.
        let page = json!({"type": "page", "messageId": "m-1", "anonymousId": "a-1",
                          "timestamp": "2026-02-01T08:59:00Z"});
        used.extend(check(vec![], false, record(page, vec![anon("a-1")], &[])).await);

        // A form names an e-mail address: a new lead, its links, its event.
        let form = json!({"type": "identify", "messageId": "m-2", "anonymousId": "a-1",
                          "traits": {"email": "sato@example.co.jp"},
                          "timestamp": "2026-02-01T08:59:00Z"});
        used.extend(
            check(
                vec![],
                false,
                record(
                    form.clone(),
                    vec![email(), anon("a-1")],
                    &[("email", "sato@example.co.jp")],
                ),
            )
            .await,
        );

        // A plain event of a known lead: its counter is counted.
        let known = vec![
            id_item("anon:a-1", "L-1"),
            lead_item(
                "L-1",
                "2026-01-01T00:00:00Z",
                &["anon:a-1", "email:sato@example.co.jp"],
                &["a-1"],
            ),
        ];
        let track = json!({"type": "track", "event": "Viewed pricing", "messageId": "m-3",
                           "anonymousId": "a-1", "timestamp": "2026-02-01T08:59:00Z"});
        used.extend(
            check(
                known.clone(),
                false,
                record(track.clone(), vec![anon("a-1")], &[]),
            )
            .await,
        );

        // Two leads of one person merge into the older: links re-pointed, the other redirected.
        let merging = vec![
            id_item("email:sato@example.co.jp", "L-1"),
            id_item("anon:a-2", "L-2"),
            lead_item(
                "L-1",
                "2026-01-01T00:00:00Z",
                &["email:sato@example.co.jp"],
                &[],
            ),
            lead_item("L-2", "2026-01-10T00:00:00Z", &["anon:a-2"], &["a-2"]),
        ];
        let merge = json!({"type": "identify", "messageId": "m-4", "anonymousId": "a-2",
                           "traits": {"email": "sato@example.co.jp"},
                           "timestamp": "2026-02-01T08:59:00Z"});
        used.extend(
            check(
                merging,
                false,
                record(merge, vec![email(), anon("a-2")], &[]),
            )
            .await,
        );

        // A lead holding as many keys as it may takes a new browser: its oldest link goes.
        let mut full: Vec<String> = (0..hotlead_core::identity::MAX_IDENTITIES - 1)
            .map(|i| format!("anon:old-{i}"))
            .collect();
        full.insert(0, "email:sato@example.co.jp".into());
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let holding = vec![
            id_item("email:sato@example.co.jp", "L-1"),
            lead_item("L-1", "2026-01-01T00:00:00Z", &full, &[]),
        ];
        let new_browser = json!({"type": "identify", "messageId": "m-5", "anonymousId": "a-new",
                           "traits": {"email": "sato@example.co.jp"},
                           "timestamp": "2026-02-01T08:59:00Z"});
        used.extend(
            check(
                holding,
                false,
                record(new_browser, vec![email(), anon("a-new")], &[]),
            )
            .await,
        );

        // A message id seen before: the dedupe key and the lead it went to are read back.
        let mut seen_before = known;
        seen_before.push(json!({"PK": {"S": "MSG#m-3"}, "SK": {"S": "MSG"},
                                "owner": {"S": "LEAD#L-1"}, "lead_id": {"S": "L-1"}}));
        used.extend(check(seen_before, true, record(track, vec![anon("a-1")], &[])).await);

        let all: BTreeSet<String> = INGEST_ACTIONS.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            used, all,
            "INGEST_ACTIONS grants an action the ingest path never uses"
        );
    }

    /// The per-client request count is written by `ingest` too, before the call it counts.
    #[tokio::test]
    async fn the_request_count_is_in_an_ingest_partition() {
        use hotlead_app::ports::RequestCounter;
        let fake = fake_dynamodb(vec![], false);
        let key = hotlead_app::throttle::client_key(
            "203.0.113.7".parse().unwrap(),
            hotlead_app::throttle::Route::Forms,
        );
        assert!(
            store(&fake)
                .count(&key, at("2026-02-01T09:01:00Z"), 30, 1)
                .await
                .unwrap()
        );
        let seen = fake.requests();
        assert_eq!(seen.len(), 1);
        let mut keys = Vec::new();
        partition_keys(&seen[0].body, &mut keys);
        assert_eq!(keys.len(), 1);
        assert!(
            INGEST_PARTITIONS.iter().any(|p| keys[0].starts_with(p)),
            "{keys:?}"
        );
        for action in actions(&seen[0]) {
            assert!(INGEST_ACTIONS.contains(&action.as_str()), "{action}");
        }
    }

    /// A rep opening a lead page (served by `ingest`): the lead, its events and a linked
    /// visitor's (copied into the lead's partition), its history, the active rules; then
    /// accepting the lead: every request is allowed by one of ingest's statements, and
    /// the page reads and writes no other partition.
    #[tokio::test]
    async fn the_lead_page_reads_only_what_ingest_is_granted() {
        use hotlead_app::links::{LinkKey, Links};
        use hotlead_app::pages::LeadPages;
        use hotlead_core::alert::Language;
        let lead = lead_item(
            "L-1",
            "2026-01-01T00:00:00Z",
            &["anon:a-1", "email:sato@example.co.jp"],
            &["a-1"],
        );
        let event = |pk: &str, id: &str| {
            let body = json!({"type": "page", "messageId": id, "anonymousId": "a-1",
                              "timestamp": "2026-01-20T09:00:00Z"});
            let event = Event::from_segment(&body).unwrap();
            json!({"PK": {"S": pk}, "SK": {"S": format!("EVENT#2026-01-20T09:00:00Z#{id}")},
                   "body": {"S": serde_json::to_string(&event).unwrap()}, "expires_at": {"N": "1790000000"}})
        };
        let (own, visitor) = (event("LEAD#L-1", "m-1"), event("ANON#a-1", "m-2"));
        let entry = hotlead_app::ports::HistoryEntry {
            lead_id: "L-1".into(),
            rev: 1,
            at: at("2026-01-20T09:00:00Z"),
            by: "rules seed v1".into(),
            change: hotlead_core::stage::Change::Stage {
                from: None,
                to: "mql".into(),
            },
        };
        let history = json!({"PK": {"S": "LEAD#L-1"}, "SK": {"S": "HIST#0000000001"},
                             "entry": {"S": serde_json::to_string(&entry).unwrap()}});
        let fake = FakeHttp::new(move |seen: &Seen| {
            let op = seen.target.trim_start_matches("DynamoDB_20120810.");
            let pk = seen.body["Key"]["PK"]["S"]
                .as_str()
                .or(seen.body["ExpressionAttributeValues"][":pk"]["S"].as_str())
                .unwrap_or_default()
                .to_string();
            match op {
                "GetItem" if pk == "LEAD#L-1" => json_ok(json!({"Item": lead})),
                "GetItem" => json_ok(json!({})),
                "Query"
                    if pk == "LEAD#L-1"
                        && seen.body["ExpressionAttributeValues"][":prefix"]["S"] == "HIST#" =>
                {
                    json_ok(json!({"Items": [history], "Count": 1}))
                }
                "Query" if pk == "LEAD#L-1" => json_ok(json!({"Items": [own], "Count": 1})),
                "Query" if pk == "ANON#a-1" => json_ok(json!({"Items": [visitor], "Count": 1})),
                "Query" => json_ok(json!({"Items": [], "Count": 0})),
                "TransactWriteItems" | "UpdateItem" => json_ok(json!({})),
                other => panic!("the lead page made an unexpected call: {other}"),
            }
        });
        let links = Arc::new(Links::new(
            LinkKey::new(&[9u8; 32]).unwrap(),
            "https://api.example.com",
            14,
        ));
        let now = at("2026-02-01T09:00:00Z");
        let link = links.link("L-1", now, Language::Ja);
        let pages = LeadPages::new(
            links,
            Arc::new(store(&fake)),
            Arc::new(hotlead_app::scorer::ManualClock::at(now)),
            hotlead_app::Config::default(),
        );
        let view = pages
            .open(
                "L-1",
                Some(&link.expires.timestamp().to_string()),
                Some("ja"),
                Some(&link.signature),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(view.events.len(), 2);
        assert_eq!(view.history.len(), 1);
        // A rep accepts the lead from the page: the action is written by ingest too.
        let acted = pages
            .act(
                "L-1",
                (
                    Some(&link.expires.timestamp().to_string()),
                    Some("ja"),
                    Some(&link.signature),
                ),
                &hotlead_app::pages::ActionRequest {
                    action: hotlead_core::stage::RepAction::Accept,
                    reason: None,
                    by: "Sato",
                    token: "0123456789abcdef0123",
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!acted.repeated);
        // The team lead's ranking page, by the digest's link.
        let ranking = pages.links().ranking_url(now);
        let (_, query) = ranking.split_once('?').unwrap();
        let (e, s) = query.split_once('&').unwrap();
        pages
            .open_ranking(e.strip_prefix("e="), s.strip_prefix("s="))
            .await
            .unwrap()
            .unwrap();
        let seen = fake.requests();
        assert!(
            seen.iter().any(|s| s.target.ends_with("TransactWriteItems")
                && s.body.to_string().contains("ACTION#0123456789abcdef0123")),
            "the action was written: {seen:?}"
        );
        assert!(
            seen.iter()
                .any(|s| s.target.ends_with("TransactWriteItems")),
            "the visitor's event was copied: {seen:?}"
        );
        for request in &seen {
            let mut keys = Vec::new();
            partition_keys(&request.body, &mut keys);
            if let Some(pk) = request.body["ExpressionAttributeValues"][":pk"]["S"].as_str() {
                keys.push(pk.to_string());
            }
            assert!(
                !keys.is_empty(),
                "a call without a partition key: {request:?}"
            );
            for action in actions(request) {
                for pk in &keys {
                    assert!(
                        ingest_allows(&action, pk),
                        "the lead page needs {action} on {pk}, which ingest is not granted"
                    );
                }
            }
        }
    }

    /// An address whose count item DynamoDB throttles (its own flood past what one key
    /// takes) is refused, not let through; a condition that fails is a refusal too.
    #[tokio::test]
    async fn a_flooded_or_full_count_refuses() {
        use hotlead_app::ports::RequestCounter;
        for (code, status) in [
            ("com.amazonaws.dynamodb.v20120810#ThrottlingException", 400),
            (
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                400,
            ),
            (
                "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                400,
            ),
        ] {
            let fake = FakeHttp::new(move |_: &Seen| json_error(status, code, "no"));
            let admitted = store(&fake)
                .count("calls:k", at("2026-02-01T09:01:00Z"), 600, 1)
                .await
                .unwrap();
            assert!(!admitted, "{code}");
        }
        let fake = FakeHttp::new(|_: &Seen| {
            json_error(
                500,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "no",
            )
        });
        assert!(
            store(&fake)
                .count("calls:k", at("2026-02-01T09:01:00Z"), 600, 1)
                .await
                .is_err(),
            "another failure is the caller's to decide"
        );
        // A weight above the limit is refused without a call.
        let fake = FakeHttp::new(|_: &Seen| panic!("no call for a weight past the limit"));
        assert!(
            !store(&fake)
                .count("calls:k", at("2026-02-01T09:01:00Z"), 5, 6)
                .await
                .unwrap()
        );
    }

    #[test]
    fn no_ingest_partition_is_a_prefix_of_the_review_and_learning_items() {
        for other in [
            "RULES",
            "SUGGESTIONS",
            "SUGGESTION#s-1",
            "OUTCOMES#3",
            "ALERT#hot:L-1:1",
        ] {
            assert!(
                !INGEST_PARTITIONS
                    .iter()
                    .any(|p| other.starts_with(p) || leading_key_pattern(p) == other),
                "{other} would be writable by ingest"
            );
        }
    }
}
