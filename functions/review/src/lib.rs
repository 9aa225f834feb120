//! The `review` function: `hotlead-api`'s admin router under `lambda_http`: leads and
//! ranking, outcomes, suggestions under review, rules versions. API Gateway authorises
//! callers with IAM, so no admin token is configured here; a CRM webhook posting outcomes
//! signs its body with the shared secret.

use std::sync::Arc;

use hotlead_api::{Auth, admin_router};
use hotlead_app::ports::Clock;
use hotlead_app::review::{Review, Storage};

pub fn app(
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    webhook_secret: Option<String>,
) -> hotlead_api::Router {
    admin_router(
        Review::new(store, clock),
        Auth {
            webhook_secret,
            ..Auth::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn an_api_gateway_ranking_request_answers_with_leads() {
        let store = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let request =
            lambda_http::request::from_str(include_str!("../fixtures/apigw-v2-ranking.json"))
                .unwrap();
        let response = app(store, Arc::new(hotlead_app::SystemClock), None)
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["leads"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn the_review_function_serves_no_public_route() {
        let store = Arc::new(hotlead_embedded::SqliteStore::in_memory().unwrap());
        let request = lambda_http::request::from_str(include_str!(
            "../../ingest/fixtures/apigw-v2-form.json"
        ))
        .unwrap();
        let response = app(store, Arc::new(hotlead_app::SystemClock), None)
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404);
    }
}
