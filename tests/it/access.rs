//! Access control: where the admin routes may listen open, what an admin POST must be,
//! how a webhook proves itself, and which address a visitor has.

use hotlead_tests::{AppSettings, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn options(
    host: &str,
    admin_token: Option<&str>,
    open_admin: bool,
) -> hotlead::serve::ServeOptions {
    let dir = std::env::temp_dir().join(hotlead_tests::aws::unique("access"));
    hotlead::serve::ServeOptions {
        host: host.into(),
        port: 0,
        backend: hotlead::serve::Backend::Embedded {
            db: dir.join("hotlead.db"),
            outbox: None,
        },
        rules: None,
        config: None,
        auth: hotlead_api::Auth {
            admin_token: admin_token.map(str::to_string),
            ..Default::default()
        },
        tick: std::time::Duration::from_secs(5),
        open_admin,
        event_cache_bytes: hotlead_app::event_cache::DEFAULT_BYTES,
    }
}

#[tokio::test]
async fn serve_refuses_to_listen_beyond_this_machine_without_an_admin_token() {
    let error = hotlead::serve::start(options("0.0.0.0", None, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("without an admin token") && error.contains("--open-admin"),
        "{error}"
    );
    for (host, token, open) in [
        ("0.0.0.0", Some("t0ken"), false),
        ("0.0.0.0", None, true),
        ("127.0.0.1", None, false),
        ("localhost", None, false),
    ] {
        let running = hotlead::serve::start(options(host, token, open))
            .await
            .unwrap_or_else(|e| panic!("{host} {token:?} {open}: {e}"));
        running.stop();
    }
}

#[tokio::test]
async fn admin_posts_take_json_only_so_no_page_elsewhere_can_send_them() {
    let app = spawn_app(AppSettings::default()).await;
    for route in [
        "/v1/rules/1/activate",
        "/v1/suggestions/s-1/approve",
        "/v1/suggestions/s-1/reject",
    ] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let mut request = app.client.post(format!("{}{route}", app.url)).body("");
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{route} {content_type:?}"
            );
        }
    }
    let response = app
        .client
        .post(format!("{}/v1/rules/1/activate", app.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
}

#[tokio::test]
async fn with_a_webhook_secret_an_unsigned_outcome_is_refused_even_without_an_admin_token() {
    let app = spawn_app(AppSettings {
        webhook_secret: Some("s3cret".into()),
        ..Default::default()
    })
    .await;
    let response = app
        .client
        .post(format!("{}/v1/outcomes", app.url))
        .json(&json!([{"email": "a@example.co.jp", "outcome": "won", "closed_at": "2026-11-01"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("X-Hotlead-Signature"),
        "{body}"
    );
}

#[tokio::test]
async fn the_visitor_address_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
    for (config, expected) in [
        (None, "127.0.0.1"),
        (Some("trusted_proxies = [\"127.0.0.0/8\"]\n"), "203.0.113.9"),
    ] {
        let app = spawn_app(AppSettings {
            config: config.map(str::to_string),
            ..Default::default()
        })
        .await;
        let form: Value = app
            .client
            .post(format!("{}/v1/forms/contact", app.url))
            .form(&[("email", "ip@example.co.jp"), ("anonymousId", "ip-browser")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let call = json!({"type": "page", "messageId": "ip-1", "anonymousId": "ip-browser",
            "context": {"library": {"name": "hotlead.js"}, "page": {"path": "/pricing"}}});
        let response = app
            .client
            .post(format!("{}/v1/page", app.url))
            .header("x-forwarded-for", "10.1.2.3, 203.0.113.9")
            .json(&call)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let lead = app.lead(form["lead_id"].as_str().unwrap()).await;
        let event = lead["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["message_id"] == "ip-1")
            .cloned()
            .unwrap();
        assert_eq!(event["ip"], expected, "{config:?}: {event}");
    }
}
