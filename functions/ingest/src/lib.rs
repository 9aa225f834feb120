//! The `ingest` function: `hotlead-api`'s public router under `lambda_http`.

use std::sync::Arc;

use hotlead_api::{Auth, public_router};
use hotlead_app::pages::LeadPages;
use hotlead_app::ports::{RequestCounter, Store};
use hotlead_app::{Config, Ingest, SystemClock, UuidIds};
use tokio::sync::Notify;

/// The router on `store`, each client's requests per minute counted by `counter` (shared
/// by every copy of the function). Scoring happens downstream, on the table's stream.
///
/// With `pages`, the public API also serves the rep's lead pages (`GET /l/{id}`, opened by
/// the signed links alerts end with).
pub fn app(
    store: Arc<dyn Store>,
    counter: Arc<dyn RequestCounter>,
    config: Config,
    auth: Auth,
    pages: Option<Arc<LeadPages>>,
) -> hotlead_api::Router {
    let mut ingest = Ingest::new(
        store,
        Arc::new(SystemClock),
        Arc::new(UuidIds),
        Arc::new(config),
        Arc::new(Notify::new()),
    )
    .with_client_limits(counter);
    if let Some(pages) = pages {
        ingest = ingest.with_pages(pages);
    }
    public_router(ingest, auth).layer(axum::middleware::map_request(source_ip))
}

/// API Gateway's source IP is the visitor's address (or, behind a trusted proxy, the
/// proxy's: see `trusted_proxies`).
async fn source_ip(mut request: axum::extract::Request) -> axum::extract::Request {
    use lambda_http::RequestExt;
    let ip = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context
            .http
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    if let Some(ip) = ip {
        request.extensions_mut().insert(hotlead_api::ClientAddr(ip));
    }
    request
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    async fn send(fixture: &str) -> (u16, serde_json::Value) {
        let store = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let request =
            lambda_http::request::from_str(fixture).expect("an API Gateway HTTP API v2 event");
        let counter = Arc::new(hotlead_embedded::MemoryRequestCounter::new());
        let response = app(store, counter, Config::default(), Auth::default(), None)
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_api_gateway_form_post_stores_a_lead() {
        let (status, body) = send(include_str!("../fixtures/apigw-v2-form.json")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["lead_id"].as_str().unwrap().starts_with("L-"));
    }

    #[tokio::test]
    async fn an_api_gateway_page_call_with_an_unreadable_timestamp_is_422_naming_it() {
        let (status, body) = send(include_str!("../fixtures/apigw-v2-page-invalid.json")).await;
        assert_eq!(status, 422);
        assert_eq!(body["field"], "timestamp");
    }

    /// The visitor's address is API Gateway's source IP; an `X-Forwarded-For` the client
    /// wrote is not believed (no proxy is trusted by default).
    #[tokio::test]
    async fn the_visitors_address_is_api_gateways_source_ip_not_a_forwarded_header() {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/apigw-v2-page-invalid.json")).unwrap();
        event["headers"]["x-forwarded-for"] = "10.1.2.3, 203.0.113.66".into();
        event["requestContext"]["http"]["sourceIp"] = "198.51.100.7".into();
        event["body"] = serde_json::json!({
            "type": "page", "messageId": "m-ip", "userId": "u-ip",
            // From the tracking script: the address is the visitor's browser's.
            "context": {"page": {"path": "/pricing"}, "library": {"name": "hotlead.js"}}
        })
        .to_string()
        .into();
        let store = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let counter = Arc::new(hotlead_embedded::MemoryRequestCounter::new());
        let response = app(
            store.clone(),
            counter,
            Config::default(),
            Auth::default(),
            None,
        )
        .oneshot(request)
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        use hotlead_app::ports::LearningStore;
        let user = hotlead_core::identity::IdentityKey::User("u-ip".into());
        let lead = store
            .lead_for(&user)
            .await
            .unwrap()
            .expect("the call made a lead");
        let events = store.events(&lead).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].ip, Some("198.51.100.7".parse().unwrap()));
    }

    /// Each API Gateway source IP has its own limit, shared through the counter: past it a
    /// 429 with `Retry-After`, while another address is still served.
    #[tokio::test]
    async fn each_source_ip_has_its_own_limit() {
        let store = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let counter = Arc::new(hotlead_embedded::MemoryRequestCounter::new());
        let config =
            Config::from_toml("c.toml", "[client_limits]\nforms_per_minute = 2\n").unwrap();
        let router = app(store, counter, config, Auth::default(), None);
        let send_from = |ip: &str, n: usize| {
            let mut event: serde_json::Value =
                serde_json::from_str(include_str!("../fixtures/apigw-v2-form.json")).unwrap();
            event["requestContext"]["http"]["sourceIp"] = ip.into();
            event["headers"]["idempotency-key"] = format!("k-{ip}-{n}").into();
            lambda_http::request::from_str(&event.to_string()).unwrap()
        };
        for n in 0..2 {
            let response = router
                .clone()
                .oneshot(send_from("198.51.100.7", n))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
        }
        let response = router
            .clone()
            .oneshot(send_from("198.51.100.7", 2))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert!(response.headers().contains_key("retry-after"));
        let response = router
            .clone()
            .oneshot(send_from("198.51.100.8", 0))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }

    /// With the link secret, the public API serves the rep's lead page: a link signed as
    /// the score function signs it opens the page through API Gateway; without a
    /// signature, nothing of the lead.
    #[tokio::test]
    async fn the_public_api_serves_the_lead_page_of_a_signed_link() {
        use hotlead_app::links::{LinkKey, Links};
        let store = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let links = Arc::new(Links::new(
            LinkKey::new(&[5u8; 48]).unwrap(),
            "https://abc123.execute-api.ap-northeast-1.amazonaws.com",
            14,
        ));
        let pages = Arc::new(LeadPages::new(
            links.clone(),
            store.clone(),
            Arc::new(SystemClock),
            Config::default(),
        ));
        let counter = Arc::new(hotlead_embedded::MemoryRequestCounter::new());
        let router = app(
            store,
            counter,
            Config::default(),
            Auth::default(),
            Some(pages),
        );
        let form =
            lambda_http::request::from_str(include_str!("../fixtures/apigw-v2-form.json")).unwrap();
        let response = router.clone().oneshot(form).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let lead_id = stored["lead_id"].as_str().unwrap();
        let link = links.url(&links.link(
            lead_id,
            chrono::Utc::now(),
            hotlead_core::alert::Language::Ja,
        ));
        let (path, query) = link
            .strip_prefix("https://abc123.execute-api.ap-northeast-1.amazonaws.com")
            .unwrap()
            .split_once('?')
            .unwrap();
        let get = |query: &str| {
            let mut event: serde_json::Value =
                serde_json::from_str(include_str!("../fixtures/apigw-v2-form.json")).unwrap();
            event["routeKey"] = "GET /l/{lead_id}".into();
            event["rawPath"] = path.into();
            event["rawQueryString"] = query.into();
            event["requestContext"]["http"]["method"] = "GET".into();
            event["requestContext"]["http"]["path"] = path.into();
            event["requestContext"]["routeKey"] = "GET /l/{lead_id}".into();
            event["pathParameters"] = serde_json::json!({"lead_id": lead_id});
            event["body"] = serde_json::Value::Null;
            lambda_http::request::from_str(&event.to_string()).unwrap()
        };
        let page = router.clone().oneshot(get(query)).await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        let html = axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(html.contains("株式会社サンプル"), "{html}");
        let refused = router.oneshot(get("e=1")).await.unwrap();
        assert_eq!(refused.status().as_u16(), 403);
        let html = axum::body::to_bytes(refused.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&html).contains("サンプル"));
    }
}
