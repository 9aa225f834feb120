//! Hostile input over HTTP, on both stores (`hotlead serve` on SQLite, and on DynamoDB in
//! the emulator): whatever the public endpoints are sent, every answer is a documented
//! 2xx or 4xx, and the person stays writable.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A server on one backend, stopped when dropped.
struct Server {
    url: String,
    client: reqwest::Client,
    running: hotlead::serve::Running,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.running.stop();
    }
}

async fn sqlite() -> Server {
    sqlite_with(None).await
}

async fn dynamo() -> Server {
    dynamo_with(None).await
}

/// `hotlead serve` on SQLite, with `config` as its configuration file.
async fn sqlite_with(config: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let backend = hotlead::serve::Backend::Embedded {
        db: dir.path().join("hotlead.db"),
        outbox: None,
    };
    start(dir, backend, config).await
}

/// `hotlead serve --backend aws` on a table of its own, with `settings` as its
/// configuration file.
async fn dynamo_with(settings: Option<&str>) -> Server {
    let config = hotlead_tests::aws::config().await;
    let made = hotlead_aws::provision(
        &config,
        &hotlead_tests::aws::unique("abuse"),
        &hotlead_tests::aws::unique("alerts"),
        &hotlead_tests::aws::unique("analysts"),
    )
    .await
    .unwrap();
    let backend = hotlead::serve::Backend::Aws(Box::new(hotlead::serve::AwsBackend {
        config,
        table: made.table,
        alerts_topic_arn: made.alerts_topic_arn,
    }));
    start(tempfile::tempdir().unwrap(), backend, settings).await
}

async fn start(
    dir: tempfile::TempDir,
    backend: hotlead::serve::Backend,
    config: Option<&str>,
) -> Server {
    let config = config.map(|text| {
        let path = dir.path().join("hotlead.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let running = hotlead::serve::start(hotlead::serve::ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        backend,
        rules: None,
        config,
        auth: hotlead_api::Auth::default(),
        tick: StdDuration::from_millis(200),
        open_admin: false,
        event_cache_bytes: hotlead_app::event_cache::DEFAULT_BYTES,
    })
    .await
    .unwrap();
    Server {
        url: running.url(),
        client: reqwest::Client::new(),
        running,
        _dir: dir,
    }
}

impl Server {
    async fn form(&self, fields: &[(String, String)]) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}/v1/forms/contact", self.url))
            .form(fields)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, route: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{route}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn lead(&self, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/leads/{id}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// No answer to a hostile sender is a 5xx: 503 would make honest clients retry for ever.
fn client_answer(status: StatusCode, body: &Value) {
    assert!(
        status.is_success() || status.is_client_error(),
        "{status}: {body}"
    );
    if status.is_client_error() {
        assert!(body["message"].is_string(), "a 4xx says why: {body}");
    }
}

/// Forms of ~50 KB of new field names for one e-mail: the person stays writable, a plain
/// form afterwards is stored, and the lead holds at most its attribute limit.
async fn a_flood_of_new_field_names_keeps_the_person_writable(server: Server) {
    let mut lead_id = None;
    for form in 0..8 {
        let mut flood = fields(&[("email", "flood@example.co.jp")]);
        for i in 0..190 {
            flood.push((format!("f{form}x{i:03}{}", "n".repeat(90)), "v".repeat(170)));
        }
        let (status, body) = server.form(&flood).await;
        client_answer(status, &body);
        if status.is_success() {
            lead_id = body["lead_id"].as_str().map(str::to_string);
        }
    }
    let (status, body) = server
        .form(&fields(&[
            ("email", "flood@example.co.jp"),
            ("company", "株式会社フラッド"),
        ]))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a plain form is still stored: {body}"
    );
    let id = body["lead_id"].as_str().unwrap();
    assert!(lead_id.is_none_or(|l| l == id));
    let lead = server.lead(id).await;
    let attributes = lead["profile"].as_object().unwrap().len();
    assert!(
        attributes
            <= hotlead_core::identity::MAX_ATTRIBUTES
                + hotlead_core::lead::CANONICAL_ATTRIBUTES.len()
                + hotlead_core::lead::DERIVED_ATTRIBUTES.len(),
        "{attributes} attributes"
    );
    assert_eq!(
        lead["profile"]["company"]["raw"], "株式会社フラッド",
        "{lead:#}"
    );
}

/// A user id with more than a hundred fresh anonymous ids, then merged into the e-mail's
/// lead by one `identify`: every call is stored, the lead keeps at most its key limit and
/// the merge fits in one write.
async fn a_flood_of_anonymous_ids_keeps_the_person_writable_and_mergeable(server: Server) {
    let (status, body) = server
        .form(&fields(&[("email", "anon-flood@example.co.jp")]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lead_id = body["lead_id"].as_str().unwrap().to_string();
    for i in 0..110 {
        let call = json!({"type": "identify", "messageId": format!("flood-{i}"), "userId": "u-flood",
            "anonymousId": format!("flood-browser-{i}"), "traits": {}});
        let (status, body) = server.call("/v1/identify", &call).await;
        assert_eq!(status, StatusCode::OK, "call {i}: {body}");
    }
    let merge = json!({"type": "identify", "messageId": "flood-merge", "userId": "u-flood",
        "traits": {"email": "anon-flood@example.co.jp"}});
    let (status, body) = server.call("/v1/identify", &merge).await;
    assert_eq!(status, StatusCode::OK, "the merge is stored: {body}");
    assert_eq!(body["lead_id"], lead_id.as_str());
    let page = json!({"type": "page", "messageId": "flood-after", "anonymousId": "flood-browser-109",
        "context": {"page": {"path": "/pricing"}}});
    let (status, body) = server.call("/v1/page", &page).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["lead_id"],
        lead_id.as_str(),
        "the newest browser is the person's"
    );
    let lead = server.lead(&lead_id).await;
    let identities = lead["identities"].as_array().unwrap();
    assert!(
        identities.len() <= hotlead_core::identity::MAX_IDENTITIES,
        "{} identities",
        identities.len()
    );
    assert!(identities.contains(&json!("email:anon-flood@example.co.jp")));
    assert!(identities.contains(&json!("user:u-flood")));
}

/// Ids longer than a store key can hold are refused by name (422), not retried as 503.
async fn overlong_ids_are_refused_by_name(server: Server) {
    let long = "m".repeat(1_100);
    let cases = [
        (
            json!({"type": "track", "messageId": long, "anonymousId": "a", "event": "x"}),
            "messageId",
        ),
        (
            json!({"type": "track", "messageId": "ok-1", "anonymousId": long, "event": "x"}),
            "anonymousId",
        ),
        (
            json!({"type": "track", "messageId": "ok-2", "userId": long, "event": "x"}),
            "userId",
        ),
    ];
    for (call, field) in cases {
        let (status, body) = server.call("/v1/track", &call).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let response = server
        .client
        .post(format!("{}/v1/forms/contact", server.url))
        .header("Idempotency-Key", &long)
        .form(&[("email", "long@example.co.jp")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["field"], "Idempotency-Key", "{body}");
    let (status, body) = server
        .call(
            "/v1/track",
            &json!({"type": "track", "messageId": "ok-3", "anonymousId": "a", "event": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The same message id with other content is a 409 that names no lead; with the same
/// content it is a duplicate.
async fn a_reused_message_id_is_a_conflict_and_leaks_no_lead(server: Server) {
    let (status, body) = server
        .form(&fields(&[
            ("email", "victim@example.co.jp"),
            ("anonymousId", "victim-browser"),
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let call = json!({"type": "track", "messageId": "known-id", "anonymousId": "victim-browser",
        "event": "Demo Requested", "timestamp": Utc::now().to_rfc3339()});
    let (status, first) = server.call("/v1/track", &call).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["lead_id"], body["lead_id"]);
    let (status, again) = server.call("/v1/track", &call).await;
    assert_eq!(
        (status, again["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );
    let hostile = json!({"type": "track", "messageId": "known-id", "anonymousId": "attacker",
        "event": "Probe"});
    let (status, answer) = server.call("/v1/track", &hostile).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer.get("lead_id").is_none(), "{answer}");
    assert!(!answer.to_string().contains("L-"), "{answer}");
    let (status, answer) = server.call("/v1/batch", &json!({"batch": [hostile]})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(!answer.to_string().contains("L-"), "{answer}");
}

/// Timestamps far outside the present are refused by name; a browser whose clock is off
/// is corrected by `sentAt`, as Segment does.
async fn timestamps_are_bounded_and_corrected_by_sent_at(server: Server) {
    let (status, body) = server
        .form(&fields(&[
            ("email", "clock@example.co.jp"),
            ("anonymousId", "clock-browser"),
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lead_id = body["lead_id"].as_str().unwrap().to_string();
    for (id, when) in [
        ("old", Utc::now() - Duration::days(800)),
        ("future", Utc::now() + Duration::days(3)),
    ] {
        let call = json!({"type": "page", "messageId": id, "anonymousId": "clock-browser",
            "timestamp": when.to_rfc3339()});
        let (status, body) = server.call("/v1/page", &call).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{id}: {body}");
        assert_eq!(body["field"], "timestamp", "{body}");
    }
    // A browser two hours ahead: the event happened a minute before it was sent.
    let skew = Duration::hours(2);
    let call = json!({"type": "page", "messageId": "skewed", "anonymousId": "clock-browser",
        "timestamp": (Utc::now() + skew - Duration::minutes(1)).to_rfc3339(),
        "sentAt": (Utc::now() + skew).to_rfc3339(),
        "context": {"page": {"path": "/pricing"}}});
    let (status, body) = server.call("/v1/page", &call).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lead = server.lead(&lead_id).await;
    let event = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message_id"] == "skewed")
        .cloned()
        .unwrap_or_else(|| panic!("{lead:#}"));
    let stored: chrono::DateTime<Utc> = serde_json::from_value(event["timestamp"].clone()).unwrap();
    let expected = Utc::now() - Duration::minutes(1);
    assert!(
        (stored - expected).num_seconds().abs() < 60,
        "stored {stored}, expected about {expected}"
    );
}

/// One address sending forms past its limit (2 a minute here) is answered 429, in the
/// API's error shape with `Retry-After`, and what it sent is not stored; its Segment
/// calls count against their own limit. Five forms in a row span at most two windows,
/// so at most four are admitted and at least one is refused whatever the minute.
async fn an_address_past_its_limit_is_answered_429_and_nothing_is_stored(server: Server) {
    let mut admitted = Vec::new();
    let mut refused = 0;
    for i in 0..5 {
        let address = format!("limit{i}@example.co.jp");
        let (status, body) = server
            .form(&fields(&[
                ("email", &address),
                ("company", "株式会社リミット"),
            ]))
            .await;
        match status {
            StatusCode::OK => admitted.push(body["lead_id"].as_str().unwrap().to_string()),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"], "too_many_requests", "{body}");
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("nothing was stored"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        refused >= 1 && (2..=4).contains(&admitted.len()),
        "{admitted:?} {refused}"
    );
    let response = server
        .client
        .post(format!("{}/v1/forms/contact", server.url))
        .form(&fields(&[("email", "limit9@example.co.jp")]))
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // Segment calls have a limit of their own.
    let (status, body) = server
        .call(
            "/v1/identify",
            &json!({"messageId": "lim-1", "userId": "u-limit", "traits": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only the admitted forms made leads.
    let ranking = || async {
        let page: Value = server
            .client
            .get(format!("{}/v1/leads?limit=100", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut ids: Vec<String> = page["leads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["company"] == "株式会社リミット")
            .map(|l| l["lead_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    admitted.sort();
    let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
    while ranking().await != admitted && std::time::Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    assert_eq!(ranking().await, admitted);
}

const TWO_FORMS_A_MINUTE: &str = "[client_limits]\nforms_per_minute = 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_address_past_its_limit_is_answered_429_and_nothing_is_stored() {
    an_address_past_its_limit_is_answered_429_and_nothing_is_stored(
        sqlite_with(Some(TWO_FORMS_A_MINUTE)).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_an_address_past_its_limit_is_answered_429_and_nothing_is_stored() {
    an_address_past_its_limit_is_answered_429_and_nothing_is_stored(
        dynamo_with(Some(TWO_FORMS_A_MINUTE)).await,
    )
    .await;
}

on_both_stores!(
    a_flood_of_new_field_names_keeps_the_person_writable,
    a_flood_of_anonymous_ids_keeps_the_person_writable_and_mergeable,
    overlong_ids_are_refused_by_name,
    a_reused_message_id_is_a_conflict_and_leaks_no_lead,
    timestamps_are_bounded_and_corrected_by_sent_at,
);
