//! The review routes: outcomes in (admin token or a signed CRM webhook), suggestions and
//! their reports, approval and rejection, rules versions and rollback.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use hotlead_app::review::{OutcomeInput, Review};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::extract::{Path, Query};

use crate::{
    ApiError, AppState, Auth, check_admin, header_text, media_type, read_body, unsupported,
};

/// The review service, once the admin token checks out.
fn authorised<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a Review, ApiError> {
    check_admin(&state.auth, headers)?;
    state.review()
}

/// Largest accepted outcomes body.
pub const MAX_OUTCOMES_BYTES: usize = 1024 * 1024;
const SIGNATURE_HEADER: &str = "x-hotlead-signature";

/// A signed webhook passes with a valid signature; anything else needs the admin token.
fn check_outcome_auth(auth: &Auth, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    match (header_text(headers, SIGNATURE_HEADER), &auth.webhook_secret) {
        (Some(signature), Some(secret)) => {
            let hex_digest = signature
                .strip_prefix("sha256=")
                .ok_or(ApiError::Unauthorized(
                    "the signature must read sha256=<hex HMAC-SHA256 of the body>",
                ))?;
            let given = hex::decode(hex_digest.trim())
                .map_err(|_| ApiError::Unauthorized("the signature is not hexadecimal"))?;
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .map_err(|_| ApiError::Internal)?;
            mac.update(body);
            mac.verify_slice(&given)
                .map_err(|_| ApiError::Forbidden("the signature does not match the body"))
        }
        _ => check_admin(auth, headers),
    }
}

/// `POST /v1/outcomes`: a JSON list of outcomes (or `{"outcomes": [...]}`, or one object).
pub(crate) async fn outcomes(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, MAX_OUTCOMES_BYTES, "an outcomes body").await?;
    check_outcome_auth(&state.auth, &headers, &bytes)?;
    let media = media_type(&headers);
    if media != "application/json" {
        return Err(unsupported(&media, "application/json"));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))?;
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut object) => match object.remove("outcomes") {
            Some(Value::Array(list)) => list,
            Some(_) => return Err(ApiError::invalid("outcomes", "expected a list")),
            None => vec![Value::Object(object)],
        },
        _ => {
            return Err(ApiError::Malformed(
                "expected a list of outcomes or one outcome object".into(),
            ));
        }
    };
    if list.is_empty() {
        return Err(ApiError::invalid("outcomes", "the list is empty"));
    }
    let mut rows = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        let row: OutcomeInput = serde_json::from_value(item).map_err(|e| {
            ApiError::invalid(
                format!("outcomes[{i}]"),
                format!("not an outcome object: {e}"),
            )
        })?;
        rows.push((i as u64 + 1, row));
    }
    let report = state.review()?.import_outcomes(rows).await?;
    if report.stored == 0
        && let Some(first) = report.rejected.first()
    {
        return Err(ApiError::invalid(
            format!(
                "outcomes[{}].{}",
                first.line - 1,
                first.field.as_deref().unwrap_or("")
            ),
            first.message.clone(),
        ));
    }
    Ok(Json(json!({
        "stored": report.stored,
        "won": report.won,
        "lost": report.lost,
        "rejected": report.rejected.iter().map(|r| json!({
            "index": r.line - 1,
            "field": r.field,
            "message": r.message,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Query of `GET /v1/suggestions`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    pub limit: Option<usize>,
}

pub(crate) async fn suggestions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let heads = review.store().suggestions(limit).await?;
    Ok(Json(json!({ "suggestions": heads })).into_response())
}

pub(crate) async fn suggestion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    Ok(Json(review.suggestion(&id).await?).into_response())
}

pub(crate) async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let stored = review.suggestion(&id).await?;
    let html = hotlead_learn::report::render(&stored.id, &stored.suggestion);
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

pub(crate) async fn rules_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let stored = review.suggestion(&id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        stored.suggestion.rules_toml,
    )
        .into_response())
}

/// Body of `POST /v1/suggestions/{id}/approve` and `…/reject`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct Decision {
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An optional JSON body of a decision.
async fn decision(headers: &HeaderMap, body: Body) -> Result<Decision, ApiError> {
    let bytes = read_body(headers, body, 16 * 1024, "a decision").await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))
}

fn reviewer(decision: &Decision) -> String {
    decision
        .by
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or("review API")
        .to_string()
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let decision = decision(&headers, body).await?;
    let version = review.approve(&id, &reviewer(&decision)).await?;
    tracing::info!(suggestion = %id, version = version.version, "suggestion approved; rules version active");
    Ok(Json(json!({"status": "approved", "rules_version": version.version})).into_response())
}

pub(crate) async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let decision = decision(&headers, body).await?;
    let reason = decision.reason.clone().unwrap_or_default();
    review.reject(&id, &reviewer(&decision), &reason).await?;
    Ok(Json(json!({"status": "rejected"})).into_response())
}

pub(crate) async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let versions = review.store().rules_history().await?;
    let list: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({"version": v.version, "name": v.name, "created_at": v.created_at,
                "source": v.source, "activated_at": v.activated_at, "active": v.active})
        })
        .collect();
    Ok(Json(json!({ "versions": list })).into_response())
}

fn version_number(text: &str) -> Result<u32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("no rules version {text:?}")))
}

pub(crate) async fn rules_version(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let number = version_number(&version)?;
    let versions = review.store().rules_history().await?;
    let found = versions
        .into_iter()
        .find(|v| v.version == number)
        .ok_or_else(|| ApiError::NotFound(format!("no rules version {number}")))?;
    Ok(Json(found).into_response())
}

pub(crate) async fn activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let number = version_number(&version)?;
    let active = review.rollback(number).await?;
    tracing::info!(version = active.version, "rules version activated");
    Ok(Json(json!({"status": "active", "rules_version": active.version})).into_response())
}
