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
const TIMESTAMP_HEADER: &str = "x-hotlead-timestamp";
/// How far a signed webhook's timestamp may be from the time received, in seconds: a
/// captured request cannot be replayed later than this.
pub const WEBHOOK_WINDOW_SECONDS: i64 = 300;

/// Checks a signed webhook: `X-Hotlead-Timestamp: <unix seconds>` within
/// [`WEBHOOK_WINDOW_SECONDS`] of `now`, and `X-Hotlead-Signature: sha256=<hex
/// HMAC-SHA256 of "<timestamp>.<body>">`.
fn check_signature(
    secret: &str,
    signature: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    let timestamp = header_text(headers, TIMESTAMP_HEADER).ok_or(ApiError::Unauthorized(
        "a signed request needs X-Hotlead-Timestamp: <unix seconds>, signed with the body",
    ))?;
    let seconds: i64 = timestamp.parse().map_err(|_| {
        ApiError::Unauthorized("X-Hotlead-Timestamp must be a number of seconds since 1970")
    })?;
    if (now.timestamp() - seconds).abs() > WEBHOOK_WINDOW_SECONDS {
        return Err(ApiError::Forbidden(
            "X-Hotlead-Timestamp is more than 5 minutes from now (a replay, or a clock off)",
        ));
    }
    let hex_digest = signature
        .strip_prefix("sha256=")
        .ok_or(ApiError::Unauthorized(
            "the signature must read sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\">",
        ))?;
    let given = hex::decode(hex_digest.trim())
        .map_err(|_| ApiError::Unauthorized("the signature is not hexadecimal"))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| ApiError::Internal)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| ApiError::Forbidden("the signature does not match the timestamp and the body"))
}

/// A signed webhook passes with a valid signature; otherwise the admin token is needed.
/// With a webhook secret set, a request that is neither signed nor carries a valid admin
/// token is refused, whether an admin token is configured or not.
fn check_outcome_auth(
    auth: &Auth,
    headers: &HeaderMap,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    // The signing headers are refused when malformed, whether or not this server takes
    // signed requests: a sender learns of its mistake instead of being let through by
    // its other credentials.
    let present = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::trim).unwrap_or_default().to_string())
    };
    if let Some(timestamp) = present(TIMESTAMP_HEADER)
        && (timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::Unauthorized(
            "X-Hotlead-Timestamp must be a number of seconds since 1970",
        ));
    }
    if let Some(signature) = present(SIGNATURE_HEADER) {
        let well_formed = signature
            .strip_prefix("sha256=")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Err(ApiError::Unauthorized(
                "the signature must read sha256=<64 hex digits of HMAC-SHA256 of \"<timestamp>.<body>\">",
            ));
        }
    }
    match (header_text(headers, SIGNATURE_HEADER), &auth.webhook_secret) {
        (Some(signature), Some(secret)) => check_signature(secret, &signature, headers, body, now),
        (None, Some(_)) if auth.admin_token.is_none() => Err(ApiError::Unauthorized(
            "sign the request (X-Hotlead-Timestamp and X-Hotlead-Signature)",
        )),
        _ => check_admin(auth, headers),
    }
}

/// Admin POSTs take `application/json` only, with or without a body: a browser cannot
/// send that cross-site without a preflight, which the admin routes never grant, so a
/// page elsewhere cannot make a reviewer's browser approve, reject or activate.
fn json_only(headers: &HeaderMap) -> Result<(), ApiError> {
    let media = media_type(headers);
    if media == "application/json" {
        Ok(())
    } else {
        Err(unsupported(&media, "application/json"))
    }
}

/// `POST /v1/outcomes`: a JSON list of outcomes (or `{"outcomes": [...]}`, or one object).
pub(crate) async fn outcomes(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, MAX_OUTCOMES_BYTES, "an outcomes body").await?;
    check_outcome_auth(&state.auth, &headers, &bytes, state.review()?.now())?;
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
        let field = format!(
            "outcomes[{}].{}",
            first.line - 1,
            first.field.as_deref().unwrap_or("")
        );
        if report.unknown_leads == report.rejected.len() {
            // Every outcome is well formed but names a lead that does not exist.
            return Err(ApiError::NotFound(format!("{field}: {}", first.message)));
        }
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
    pub limit: Option<String>,
}

pub(crate) async fn suggestions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    let limit = crate::page_limit(query.limit.as_deref())?;
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
    json_only(headers)?;
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
    body: Body,
) -> Result<Response, ApiError> {
    let review = authorised(&state, &headers)?;
    json_only(&headers)?;
    // No fields: an empty body, or a JSON object (`{}`); anything else is refused.
    let bytes = read_body(&headers, body, 16 * 1024, "an activation").await?;
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(_)) => {}
            Ok(_) => return Err(ApiError::Malformed("expected a JSON object (`{}`)".into())),
            Err(e) => {
                return Err(ApiError::Malformed(format!(
                    "the body is not valid JSON: {e}"
                )));
            }
        }
    }
    let number = version_number(&version)?;
    let active = review.rollback(number).await?;
    tracing::info!(version = active.version, "rules version activated");
    Ok(Json(json!({"status": "active", "rules_version": active.version})).into_response())
}
