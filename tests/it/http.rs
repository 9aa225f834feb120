//! The product over real HTTP: a server on port 0 per test, its own SQLite file and
//! outbox.

use chrono::{Duration, Utc};
use hotlead_tests::{AppSettings, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn page_call(message_id: &str, anonymous_id: &str, path: &str, minutes_ago: i64) -> Value {
    json!({
        "type": "page", "messageId": message_id, "anonymousId": anonymous_id,
        "timestamp": (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339(),
        "context": {"page": {"path": path, "url": format!("https://www.example.co.jp{path}")}, "userAgent": "Mozilla/5.0"}
    })
}

async fn post_json(app: &TestApp, route: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}{route}", app.url))
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn submit_form(app: &TestApp, form: &str, fields: &[(&str, &str)]) -> Value {
    let response = app
        .client
        .post(format!("{}/v1/forms/{form}", app.url))
        .form(fields)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

const ENTERPRISE: &[(&str, &str)] = &[
    ("email", "ＹＡＭＡＤＡ＠ＳＡＭＰＬＥ．ＣＯ．ＪＰ"),
    ("name", "山田 太郎"),
    ("company", "株式会社サンプル"),
    ("title", "情報システム部 部長"),
    ("employees", "１，２００名"),
    ("capital", "600億円"),
    ("anonymousId", "browser-1"),
];

#[tokio::test]
async fn a_form_then_pricing_views_make_a_lead_hot_with_exactly_one_alert() {
    let app = spawn_app(AppSettings::default()).await;
    let stored = submit_form(&app, "contact", ENTERPRISE).await;
    let lead_id = stored["lead_id"].as_str().expect("a lead id").to_string();
    assert_eq!(stored["duplicate"], false);
    app.wait_for_lead(&lead_id, |l| l["score"] == 50).await;
    for i in 0..3 {
        let response = post_json(
            &app,
            "/v1/page",
            &page_call(&format!("p{i}"), "browser-1", "/pricing", 10 - i),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["lead_id"], lead_id.as_str());
    }
    let lead = app.wait_for_lead(&lead_id, |l| l["band"] == "hot").await;
    assert_eq!(lead["score"], 80);
    assert_eq!(lead["grade"], "A1");
    let alerts = app.wait_for_alerts(1).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert["lead_id"], lead_id.as_str());
    assert_eq!(alert["reason"], "hot");
    let body = alert["body"].as_str().unwrap();
    for expected in [
        "株式会社サンプル",
        "山田 太郎",
        "情報システム部 部長",
        "従業員1,000名以上",
        "価格ページ",
        "/pricing",
        &lead_id,
    ] {
        assert!(
            body.contains(expected),
            "the alert lacks {expected:?}:\n{body}"
        );
    }
    assert!(alert["subject"].as_str().unwrap().contains("80"));
    assert_eq!(alert["territory"], "unassigned");

    // More activity while hot raises no second hot alert.
    post_json(
        &app,
        "/v1/page",
        &page_call("p9", "browser-1", "/pricing", 0),
    )
    .await;
    app.wait_for_lead(&lead_id, |l| l["explanation"]["events"]["received"] == 5)
        .await;
    assert_eq!(app.wait_for_alerts(1).await.len(), 1);
}

#[tokio::test]
async fn anonymous_pages_before_the_form_count_after_it() {
    let app = spawn_app(AppSettings::default()).await;
    for i in 0..3 {
        let response = post_json(
            &app,
            "/v1/page",
            &page_call(&format!("a{i}"), "browser-1", "/pricing", 60 - i),
        )
        .await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["lead_id"],
            Value::Null,
            "an anonymous visitor is no lead yet"
        );
    }
    let stored = submit_form(&app, "contact", ENTERPRISE).await;
    let lead_id = stored["lead_id"].as_str().unwrap();
    let lead = app.wait_for_lead(lead_id, |l| l["band"] == "hot").await;
    let timeline: Vec<&str> = lead["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(timeline.len(), 4);
    assert!(timeline.contains(&"a0") && timeline.contains(&"a2"));
    let pricing = lead["explanation"]["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "pricing-page-3-times-90-days")
        .cloned();
    assert_eq!(
        pricing.expect("the anonymous views count")["evidence"]["count"],
        3
    );
}

#[tokio::test]
async fn a_repeated_message_id_is_stored_once_and_said_to_be_a_duplicate() {
    let app = spawn_app(AppSettings::default()).await;
    let stored = submit_form(&app, "contact", ENTERPRISE).await;
    let again = submit_form(&app, "contact", ENTERPRISE).await;
    assert_eq!(again["duplicate"], true, "the same submission twice");
    assert_eq!(again["lead_id"], stored["lead_id"]);
    let call = page_call("same", "browser-1", "/pricing", 1);
    let first: Value = post_json(&app, "/v1/page", &call)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = post_json(&app, "/v1/page", &call)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["duplicate"].clone(), second["duplicate"].clone()),
        (json!(false), json!(true))
    );
    let batch: Value = post_json(
        &app,
        "/v1/batch",
        &json!({"batch": [call, page_call("new", "browser-1", "/", 0)]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(batch["results"][0]["duplicate"], true);
    assert_eq!(batch["results"][1]["duplicate"], false);
    let lead_id = stored["lead_id"].as_str().unwrap();
    let lead = app
        .wait_for_lead(lead_id, |l| l["explanation"]["events"]["received"] == 3)
        .await;
    assert_eq!(lead["timeline"].as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_events_for_one_lead_give_the_exact_score_and_one_alert() {
    let rules = r#"
name = "every-view"
version = 1
[bands]
hot = 80
warm = 40
[groups.fit]
axis = "fit"
[groups.engagement]
axis = "engagement"
[[rules]]
id = "big"
group = "fit"
points = 30
when = { attribute = "employees", gte = 1000 }
[[rules]]
id = "pricing"
group = "engagement"
points = 2
event = { type = "page", path = "/pricing*" }
count = "every"
"#;
    let app = spawn_app(AppSettings {
        rules: Some(rules.into()),
        ..AppSettings::default()
    })
    .await;
    let stored = submit_form(&app, "contact", ENTERPRISE).await;
    let lead_id = stored["lead_id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..25 {
        let (client, url) = (app.client.clone(), app.url.clone());
        tasks.push(tokio::spawn(async move {
            let call = page_call(&format!("c{i}"), "browser-1", "/pricing", 30 - i);
            client
                .post(format!("{url}/v1/page"))
                .json(&call)
                .send()
                .await
                .expect("request")
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let lead = app
        .wait_for_lead(&lead_id, |l| l["explanation"]["events"]["received"] == 26)
        .await;
    assert_eq!(lead["score"], 80, "30 + 25 x 2: {:#}", lead["explanation"]);
    assert_eq!(lead["band"], "hot");
    let alerts = app.wait_for_alerts(1).await;
    assert_eq!(
        alerts.iter().filter(|a| a["reason"] == "hot").count(),
        1,
        "{alerts:#?}"
    );
}

async fn error_of(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("errors are JSON");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test]
async fn every_client_error_has_its_status_code_and_a_message() {
    let app = spawn_app(AppSettings {
        write_key: Some("wk-secret".into()),
        admin_token: Some("admin-secret".into()),
        ..AppSettings::default()
    })
    .await;
    let url = |route: &str| format!("{}{route}", app.url);
    let c = &app.client;
    let good = page_call("g1", "browser-1", "/pricing", 1);

    // 401 / 403
    error_of(
        c.post(url("/v1/page")).json(&good).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    error_of(
        c.post(url("/v1/page"))
            .basic_auth("wrong", None::<&str>)
            .json(&good)
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let ok = c
        .post(url("/v1/page"))
        .basic_auth("wk-secret", None::<&str>)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let mut beacon = page_call("g2", "browser-1", "/", 1);
    beacon["writeKey"] = json!("wk-secret");
    let ok = c
        .post(url("/v1/page"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(beacon.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        ok.status(),
        StatusCode::OK,
        "a beacon carries its write key in the body"
    );
    error_of(
        c.get(url("/v1/leads")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    error_of(
        c.get(url("/v1/leads"))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let authed = |route: &str| c.post(url(route)).basic_auth("wk-secret", None::<&str>);
    // 400
    error_of(
        authed("/v1/track")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed",
    )
    .await;
    error_of(
        c.post(url("/v1/forms/contact"))
            .header("content-type", "application/json")
            .body("[1,")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed",
    )
    .await;
    // 413
    let mut big = page_call("big", "browser-1", "/", 1);
    big["properties"] = json!({"blob": "x".repeat(33 * 1024)});
    error_of(
        authed("/v1/page").json(&big).send().await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    let calls: Vec<Value> = (0..20)
        .map(|i| {
            let mut p = page_call(&format!("b{i}"), "x", "/", 1);
            p["properties"] = json!({"blob": "y".repeat(30 * 1024)});
            p
        })
        .collect();
    error_of(
        authed("/v1/batch")
            .json(&json!({"batch": calls}))
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    error_of(
        authed("/v1/batch")
            .json(&json!({"batch": [big]}))
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    // 415
    error_of(
        c.post(url("/v1/forms/contact"))
            .header("content-type", "text/xml")
            .body("<x/>")
            .send()
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    error_of(
        authed("/v1/track")
            .header("content-type", "application/xml")
            .body("<x/>")
            .send()
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // 422, naming the field
    let mut no_time = page_call("t", "browser-1", "/", 1);
    no_time["timestamp"] = json!("last tuesday");
    let body = error_of(
        authed("/v1/page").json(&no_time).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(body["field"], "timestamp");
    let body = error_of(
        authed("/v1/track")
            .json(&page_call("t2", "b", "/", 1))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(body["field"], "type");
    let body = error_of(
        c.post(url("/v1/forms/contact"))
            .form(&[("name", "no address")])
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(body["field"], "email");
    let body = error_of(
        c.post(url("/v1/forms/contact"))
            .form(&[("email", "not-an-address")])
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(body["field"], "email");
    let body = error_of(authed("/v1/identify").json(&json!({"messageId": "i1", "userId": "u1", "timestamp": Utc::now().to_rfc3339(), "traits": {"email": "nope"}})).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert_eq!(body["field"], "traits.email");
    let body = error_of(
        c.get(url("/v1/leads?band=lukewarm"))
            .bearer_auth("admin-secret")
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(body["field"], "band");
    // 404
    error_of(
        c.get(url("/v1/leads/L-none"))
            .bearer_auth("admin-secret")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    error_of(
        c.get(url("/v2/nothing")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_rejected_request_changes_nothing_already_stored() {
    let app = spawn_app(AppSettings::default()).await;
    let stored = submit_form(&app, "contact", ENTERPRISE).await;
    let lead_id = stored["lead_id"].as_str().unwrap();
    let before = app.wait_for_lead(lead_id, |l| l["score"].is_number()).await;
    let mut broken = page_call("x2", "browser-1", "/pricing", 1);
    broken.as_object_mut().unwrap().remove("messageId");
    let response = post_json(
        &app,
        "/v1/batch",
        &json!({"batch": [page_call("x1", "browser-1", "/pricing", 2), broken]}),
    )
    .await;
    let body = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert_eq!(body["field"], "batch[1].messageId");
    let form = app
        .client
        .post(format!("{}/v1/forms/contact", app.url))
        .form(&[
            ("email", "yamada@sample.co.jp"),
            ("employees", "x".repeat(3000).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNPROCESSABLE_ENTITY);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = app.lead(lead_id).await;
    assert_eq!(
        after["timeline"], before["timeline"],
        "the valid half of a rejected batch was not stored"
    );
    assert_eq!(after["profile"], before["profile"]);
}

#[tokio::test]
async fn a_plain_html_form_goes_to_its_thank_you_page_and_the_honeypot_drops_bots() {
    let config = r#"
[forms.contact]
thank_you_url = "https://www.example.co.jp/thanks"
honeypot = "website"
fields = { "会社名" = "company", "メールアドレス" = "email", "従業員数" = "employees" }
"#;
    let app = spawn_app(AppSettings {
        config: Some(config.into()),
        ..AppSettings::default()
    })
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .post(format!("{}/v1/forms/contact", app.url))
        .header("accept", "text/html,application/xhtml+xml")
        .form(&[
            ("会社名", "株式会社サンプル"),
            ("メールアドレス", "sato@sample.co.jp"),
            ("従業員数", "100〜499名"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "https://www.example.co.jp/thanks"
    );
    let json_client: Value = submit_form(
        &app,
        "contact",
        &[
            ("メールアドレス", "sato@sample.co.jp"),
            ("会社名", "株式会社サンプル"),
        ],
    )
    .await;
    let lead = app
        .wait_for_lead(json_client["lead_id"].as_str().unwrap(), |l| {
            l["score"].is_number()
        })
        .await;
    assert_eq!(lead["profile"]["company"]["raw"], "株式会社サンプル");
    assert_eq!(lead["profile"]["company"]["value"], "サンプル");
    assert_eq!(lead["profile"]["employees"]["raw"], "100〜499名");

    let bot = no_redirects
        .post(format!("{}/v1/forms/contact", app.url))
        .form(&[
            ("メールアドレス", "bot@spam.example"),
            ("website", "http://spam.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status(), StatusCode::OK, "a bot is told nothing");
    let ranking: Value = app
        .client
        .get(format!("{}/v1/leads", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        ranking["leads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["lead_id"] != Value::Null)
    );
    assert_eq!(
        ranking["leads"].as_array().unwrap().len(),
        1,
        "only the real person is a lead: {ranking:#}"
    );
}

#[tokio::test]
async fn leads_are_ranked_by_score_and_shown_with_their_explanation() {
    let app = spawn_app(AppSettings::default()).await;
    let big = submit_form(&app, "contact", ENTERPRISE).await;
    let small = submit_form(
        &app,
        "contact",
        &[("email", "suzuki@tiny.example"), ("employees", "50名")],
    )
    .await;
    let mid = submit_form(
        &app,
        "contact",
        &[("email", "tanaka@mid.example"), ("employees", "3,000名")],
    )
    .await;
    for lead in [&big, &small, &mid] {
        app.wait_for_lead(lead["lead_id"].as_str().unwrap(), |l| {
            l["score"].is_number()
        })
        .await;
    }
    let page1: Value = app
        .client
        .get(format!("{}/v1/leads?limit=2", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&Value> = page1["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["lead_id"])
        .collect();
    assert_eq!(ids, [&big["lead_id"], &mid["lead_id"]]);
    let next = page1["next"].as_str().expect("a next page");
    let page2: Value = app
        .client
        .get(format!("{}/v1/leads", app.url))
        .query(&[("limit", "2"), ("cursor", next)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page2["leads"][0]["lead_id"], small["lead_id"]);
    assert_eq!(page2["next"], Value::Null);
    let warm: Value = app
        .client
        .get(format!("{}/v1/leads?band=warm", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(warm["leads"].as_array().unwrap().len(), 1);

    let lead = app.lead(big["lead_id"].as_str().unwrap()).await;
    assert_eq!(lead["profile"]["email"]["value"], "yamada@sample.co.jp");
    assert_eq!(lead["profile"]["employees"]["raw"], "１，２００名");
    assert_eq!(lead["explanation"]["rules"]["name"], "seed");
    assert!(
        lead["explanation"]["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rule"] == "employees-1000-plus")
    );
    assert_eq!(lead["timeline"][0]["name"], "Form Submitted");
}

#[tokio::test]
async fn cors_answers_configured_origins_only() {
    let config = "cors_origins = [\"https://www.example.co.jp\"]\n";
    let app = spawn_app(AppSettings {
        config: Some(config.into()),
        ..AppSettings::default()
    })
    .await;
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/v1/track", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://www.example.co.jp").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://www.example.co.jp"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_tracking_script_is_served() {
    let app = spawn_app(AppSettings::default()).await;
    let response = app
        .client
        .get(format!("{}/hotlead.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("anonymousId") && text.contains("/v1/"));
}

#[tokio::test]
async fn identify_and_alias_join_a_known_user_to_the_lead() {
    let app = spawn_app(AppSettings::default()).await;
    let now = Utc::now().to_rfc3339();
    let identify = json!({"type": "identify", "messageId": "i1", "userId": "crm-42", "anonymousId": "browser-9", "timestamp": now,
        "traits": {"email": "Taro@Example.co.jp", "firstName": "Taro", "lastName": "Yamada", "company": {"name": "Example KK", "employee_count": 2000}}});
    let body: Value = post_json(&app, "/v1/identify", &identify)
        .await
        .json()
        .await
        .unwrap();
    let lead_id = body["lead_id"]
        .as_str()
        .expect("identify with an e-mail makes a lead")
        .to_string();
    let alias = json!({"type": "alias", "messageId": "al1", "previousId": "browser-old", "userId": "crm-42", "timestamp": now});
    let aliased: Value = post_json(&app, "/v1/alias", &alias)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(aliased["lead_id"], lead_id.as_str());
    let later: Value = post_json(
        &app,
        "/v1/page",
        &page_call("p1", "browser-old", "/pricing", 0),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        later["lead_id"],
        lead_id.as_str(),
        "the aliased browser id now points at the lead"
    );
    let lead = app.wait_for_lead(&lead_id, |l| l["score"] == 30).await;
    assert_eq!(lead["profile"]["company"]["raw"], "Example KK");
    assert_eq!(lead["profile"]["name"]["raw"], "Yamada Taro");
}

#[tokio::test]
async fn extractor_and_routing_errors_are_json_too() {
    let app = spawn_app(AppSettings::default()).await;
    let c = &app.client;
    let url = |route: &str| format!("{}{route}", app.url);
    // A path that is not UTF-8 text.
    let body = error_of(
        c.post(url("/v1/forms/%FF"))
            .form(&[("email", "a@b.jp")])
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed",
    )
    .await;
    assert!(body["message"].as_str().unwrap().contains("path"), "{body}");
    // A query string that cannot be read (a parameter twice), and a parameter of the
    // wrong value, on an admin and a review route.
    for (route, status, code) in [
        (
            "/v1/suggestions?limit=1&limit=2",
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "/v1/suggestions?limit=x",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/v1/leads?limit=many",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ] {
        let body = error_of(c.get(url(route)).send().await.unwrap(), status, code).await;
        assert!(
            body["message"].as_str().unwrap().contains("limit"),
            "{route}: {body}"
        );
    }
    // A method the route does not take.
    let response = c.get(url("/v1/page")).send().await.unwrap();
    let allow = response.headers().get("allow").cloned();
    error_of(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert!(allow.is_some_and(|a| a.to_str().unwrap().contains("POST")));
}

#[tokio::test]
async fn a_call_without_a_timestamp_takes_the_time_it_was_received() {
    let app = spawn_app(AppSettings::default()).await;
    let stored = submit_form(&app, "contact", ENTERPRISE).await;
    let lead_id = stored["lead_id"].as_str().unwrap().to_string();
    let before = Utc::now();
    // A server-side integration (curl, a CRM webhook) leaves `timestamp` out, as the
    // Segment spec allows.
    let call = json!({"type": "track", "messageId": "no-time", "anonymousId": "browser-1", "event": "Demo Requested"});
    let response = post_json(&app, "/v1/track", &call).await;
    assert_eq!(response.status(), StatusCode::OK);
    let lead = app
        .wait_for_lead(&lead_id, |l| l["explanation"]["events"]["received"] == 2)
        .await;
    let timeline = lead["timeline"].as_array().unwrap();
    let event = timeline
        .iter()
        .find(|e| e["message_id"] == "no-time")
        .unwrap_or_else(|| panic!("{timeline:#?}"));
    let at = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
    assert!(
        at >= before - Duration::seconds(1) && at <= Utc::now(),
        "{event}"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_taken_and_a_bomb_is_a_413() {
    use std::io::Write;
    let app = spawn_app(AppSettings::default()).await;
    let post = |route: &str, encoding: &str, content_type: &str, body: Vec<u8>| {
        app.client
            .post(format!("{}{route}", app.url))
            .header("content-encoding", encoding)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let form = post(
        "/v1/forms/contact",
        "gzip",
        "application/x-www-form-urlencoded",
        gzip(b"email=gzip%40example.co.jp&anonymousId=gz-browser"),
    )
    .await
    .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let lead_id = form.json::<Value>().await.unwrap()["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let call = page_call("gz-1", "gz-browser", "/pricing", 1);
    let page = post(
        "/v1/page",
        "gzip",
        "application/json",
        gzip(call.to_string().as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.json::<Value>().await.unwrap()["lead_id"],
        lead_id.as_str()
    );
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let batch = json!({"batch": [page_call("gz-2", "gz-browser", "/pricing", 0)]});
    deflate.write_all(batch.to_string().as_bytes()).unwrap();
    let response = post(
        "/v1/batch",
        "deflate",
        "text/plain",
        deflate.finish().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // 10 MB of JSON whitespace in a 10 KB gzip: refused once the limit is read.
    let mut bomb = b"{\"batch\": [".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 10 * 1024 * 1024));
    bomb.extend(b"]}");
    let compressed = gzip(&bomb);
    assert!(compressed.len() < 64 * 1024, "{} bytes", compressed.len());
    let response = post("/v1/batch", "gzip", "application/json", compressed)
        .await
        .unwrap();
    let body = error_of(response, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert!(
        body["message"].as_str().unwrap().contains("500 KB"),
        "{body}"
    );
    let response = post(
        "/v1/page",
        "gzip",
        "application/json",
        b"not gzip at all".to_vec(),
    )
    .await
    .unwrap();
    error_of(response, StatusCode::BAD_REQUEST, "malformed").await;
    let response = post(
        "/v1/page",
        "br",
        "application/json",
        call.to_string().into_bytes(),
    )
    .await
    .unwrap();
    assert!(response.headers().contains_key("accept-encoding"));
    error_of(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let lead = app
        .wait_for_lead(&lead_id, |l| l["explanation"]["events"]["received"] == 3)
        .await;
    assert_eq!(
        lead["timeline"].as_array().map(Vec::len),
        Some(3),
        "nothing else stored"
    );
}

/// The edge's count limits, at and just past each: 200 form fields, 100-character field
/// names, 100 calls in a batch. Past a limit the answer names it and nothing is stored.
#[tokio::test]
async fn form_and_batch_count_limits_hold_at_their_edges() {
    let app = spawn_app(AppSettings::default()).await;
    let form = |fields: Vec<(String, String)>| {
        let (client, url) = (app.client.clone(), app.url.clone());
        async move {
            let response = client
                .post(format!("{url}/v1/forms/limits"))
                .form(&fields)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let with_fields = |address: &str, n: usize, name_chars: usize| {
        let mut fields = vec![("email".to_string(), address.to_string())];
        fields.extend((1..n).map(|i| {
            let name = format!("f{i:03}{}", "x".repeat(name_chars.saturating_sub(4)));
            (name, "v".to_string())
        }));
        fields
    };
    let (status, body) = form(with_fields("at@limits.example", 200, 10)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = form(with_fields("past@limits.example", 201, 10)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 200 fields"),
        "{body}"
    );
    let (status, body) = form(with_fields("name-at@limits.example", 2, 100)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = form(with_fields("name-past@limits.example", 2, 101)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 characters"),
        "{body}"
    );

    let batch = |n: usize, prefix: &str| json!({"batch": (0..n).map(|i| page_call(&format!("{prefix}{i}"), "batch-browser", "/docs", 1)).collect::<Vec<_>>()});
    let response = post_json(&app, "/v1/batch", &batch(101, "over-")).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 calls"),
        "{body}"
    );
    let response = post_json(&app, "/v1/batch", &batch(100, "at-")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 100);
    // Nothing of the refused batch was stored: its first call, sent alone, is new.
    let response = post_json(
        &app,
        "/v1/page",
        &page_call("over-0", "batch-browser", "/docs", 1),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["duplicate"], false, "{body}");
}

/// Each call of a batch counts against the address's limit: a batch that would pass it is
/// refused whole (429, nothing stored), a smaller one still fits.
#[tokio::test]
async fn each_call_of_a_batch_counts_against_the_limit() {
    let app = spawn_app(AppSettings {
        config: Some("[client_limits]\ncalls_per_minute = 10\n".into()),
        ..AppSettings::default()
    })
    .await;
    let batch = |n: usize, prefix: &str| json!({"batch": (0..n).map(|i| page_call(&format!("{prefix}{i}"), "weighed", "/docs", 1)).collect::<Vec<_>>()});
    let response = post_json(&app, "/v1/batch", &batch(12, "big-")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let response = post_json(&app, "/v1/page", &page_call("big-0", "weighed", "/docs", 1)).await;
    if response.status() == StatusCode::OK {
        // (Not refused only if a new minute began: then the first call was not stored.)
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["duplicate"], false, "{body}");
    }
    let response = post_json(&app, "/v1/batch", &batch(5, "small-")).await;
    // One call of the big batch was counted before it was read, one page call since: five
    // more fit in the minute (or in the next).
    assert_eq!(response.status(), StatusCode::OK);
}
