//! Requests that the API contract run (`scripts/api-contract`: schemathesis against
//! `docs/openapi.json`) found answered against the document, each answered as it says now.

use hotlead_tests::{AppSettings, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WRITE_KEY: &str = "wk-contract";
const ADMIN: &str = "admin-contract";

async fn app() -> TestApp {
    spawn_app(AppSettings {
        write_key: Some(WRITE_KEY.into()),
        admin_token: Some(ADMIN.into()),
        ..AppSettings::default()
    })
    .await
}

async fn event(app: &TestApp, route: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}{route}", app.url))
        .basic_auth(WRITE_KEY, None::<&str>)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The status, and for an error its JSON body's `field`.
async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    if !status.is_success() {
        assert!(body["error"].is_string(), "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    (status, body)
}

fn page(message_id: &str) -> Value {
    json!({"messageId": message_id, "anonymousId": "browser-1"})
}

#[tokio::test]
async fn a_calls_type_and_write_key_are_strings_or_the_call_is_refused() {
    let app = app().await;
    let mut call = page("t1");
    call["type"] = json!(5);
    let (status, body) = answer(event(&app, "/v1/page", &call).await).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("type"))
    );
    // null is no type: the route's.
    call["type"] = Value::Null;
    assert_eq!(
        answer(event(&app, "/v1/page", &call).await).await.0,
        StatusCode::OK
    );

    let mut call = page("t2");
    call["writeKey"] = json!(12);
    let (status, body) = answer(event(&app, "/v1/page", &call).await).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("writeKey"))
    );

    let mut call = page("t3");
    call["type"] = json!("page");
    call["writeKey"] = json!(false);
    let (status, body) = answer(event(&app, "/v1/batch", &json!({"batch": [call]})).await).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("batch[0].writeKey"))
    );
}

#[tokio::test]
async fn a_batchs_own_sent_at_and_context_are_checked_even_when_no_call_takes_them() {
    let app = app().await;
    let (status, body) =
        answer(event(&app, "/v1/batch", &json!({"batch": [], "sentAt": 5})).await).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("sentAt"))
    );
    let (status, body) = answer(
        event(
            &app,
            "/v1/batch",
            &json!({"batch": [], "context": {"page": 5}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["field"].as_str().unwrap().starts_with("context.page"),
        "{body}"
    );
    let fine =
        json!({"batch": [], "sentAt": "2026-01-01T00:00:00Z", "context": {"page": {"path": "/"}}});
    assert_eq!(
        answer(event(&app, "/v1/batch", &fine).await).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn context_traits_must_be_an_object_even_beside_top_level_traits() {
    let app = app().await;
    let mut call = page("c1");
    call["traits"] = json!({});
    call["context"] = json!({"traits": [1, 2]});
    let (status, body) = answer(event(&app, "/v1/group", &call).await).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("context.traits"))
    );
}

#[tokio::test]
async fn traits_are_measured_as_sent_before_trimming() {
    let app = app().await;
    let padded = format!("Q{}", "\u{85}".repeat(2001));
    let mut call = page("i1");
    call["traits"] = json!({"address": {"country": padded}});
    let (status, body) = answer(event(&app, "/v1/identify", &call).await).await;
    assert_eq!(
        (status, body["field"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("traits.address.country")
        )
    );
    let mut call = page("i2");
    call["traits"] = json!({"x".repeat(101): {"nested": true}});
    assert_eq!(
        answer(event(&app, "/v1/identify", &call).await).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn an_idempotency_key_that_is_not_text_is_refused_not_ignored() {
    let app = app().await;
    let response = app
        .client
        .post(format!("{}/v1/forms/contact", app.url))
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"key-\x85").unwrap(),
        )
        .form(&[("email", "taro@example.co.jp")])
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, body["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("Idempotency-Key"))
    );
}

async fn admin(app: &TestApp, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let _ = app;
    answer(request.bearer_auth(ADMIN).send().await.unwrap()).await
}

#[tokio::test]
async fn the_suggestions_limit_is_1_to_500() {
    let app = app().await;
    for limit in ["0", "501", "many"] {
        let url = format!("{}/v1/suggestions?limit={limit}", app.url);
        let (status, body) = admin(&app, app.client.get(url)).await;
        assert_eq!(
            (status, body["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("limit"))
        );
    }
    let url = format!("{}/v1/suggestions?limit=500", app.url);
    assert_eq!(admin(&app, app.client.get(url)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_activation_takes_no_body_or_a_json_object() {
    let app = app().await;
    let url = format!("{}/v1/rules/1/activate", app.url);
    let post = |body: &'static str| {
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_eq!(admin(&app, post("[]")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        admin(&app, post("not json")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(admin(&app, post("{}")).await.0, StatusCode::OK);
    assert_eq!(admin(&app, post("")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn outcomes_that_all_name_unknown_leads_are_404_and_signing_headers_are_checked() {
    let app = app().await;
    let url = format!("{}/v1/outcomes", app.url);
    let unknown = json!([
        {"email": "nobody@example.co.jp", "outcome": "won", "closed_at": "2026-01-31"},
        {"lead_id": "L-none", "outcome": "lost", "closed_at": "2026-01-31"},
    ]);
    let (status, body) = admin(&app, app.client.post(&url).json(&unknown)).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    // A malformed outcome among them is still 422.
    let mixed = json!([
        {"email": "nobody@example.co.jp", "outcome": "won", "closed_at": "2026-01-31"},
        {"lead_id": "L-none", "outcome": "maybe", "closed_at": "2026-01-31"},
    ]);
    let (status, _) = admin(&app, app.client.post(&url).json(&mixed)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The signing headers, when sent, must be well formed, even beside an admin token.
    for (name, value) in [
        ("x-hotlead-timestamp", ""),
        ("x-hotlead-timestamp", "soon"),
        ("x-hotlead-signature", "0"),
        ("x-hotlead-signature", "sha256=abc"),
    ] {
        let request = app.client.post(&url).header(name, value).json(&unknown);
        let (status, _) = admin(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {value:?}");
    }
}
