//! hotlead's HTTP API: one axum [`Router`] that `hotlead serve` runs locally and the
//! Lambda functions run under `lambda_http`. Handlers are thin: read and check the
//! request, call one service, map the result.

mod error;
mod extract;
pub mod page;
mod review;
pub mod review_page;

pub use review::{Decision, ListQuery};

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use hotlead_app::ingest::FormSubmission;
use hotlead_app::ports::{Recorded, Store, StoredLead};
use hotlead_app::review::Review;
use hotlead_app::{FormOutcome, Ingest};
use hotlead_core::event::EventType;
use hotlead_core::stage::RepAction;
use hotlead_core::{Band, Lead};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;

use crate::extract::{Path, Query};

pub use axum::Router;
pub use error::ApiError;

/// Largest accepted single Segment call.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest accepted batch.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Largest accepted form submission.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Events shown in a lead's timeline.
pub const TIMELINE_EVENTS: usize = 200;

const TRACKING_SCRIPT: &str = include_str!("../assets/hotlead.js");

/// The address of the peer the platform saw (API Gateway's source IP, or the socket's
/// peer), put in the request's extensions by whoever runs the router. Without it a
/// visitor's address is unknown: `X-Forwarded-For` alone is never believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Credentials the API requires; `None` leaves that side open (local use).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Segment write key, sent as the Basic-auth user name (or `writeKey` in the body).
    pub write_key: Option<String>,
    /// Bearer token for the admin routes.
    pub admin_token: Option<String>,
    /// Shared secret of CRM webhooks posting outcomes: `X-Hotlead-Signature: sha256=<hex
    /// HMAC-SHA256 of the body>`.
    pub webhook_secret: Option<String>,
}

/// What every handler reads, behind one pointer: axum clones a route's state for each
/// request it serves, and a clone of this is one count, not one per service it holds.
#[derive(Clone)]
struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

struct Services {
    /// `None` on the admin-only router.
    ingest: Option<Ingest>,
    /// `None` on the public router.
    review: Option<Review>,
    /// The rep's lead pages (public router only), when this server makes links.
    pages: Option<Arc<hotlead_app::pages::LeadPages>>,
    store: Arc<dyn Store>,
    auth: Arc<Auth>,
}

/// The whole API: the public routes and the admin routes.
pub fn router(ingest: Ingest, review: Review, auth: Auth) -> Router {
    let pages = ingest.pages().cloned();
    public_routes(ingest, auth.clone())
        .merge(admin_routes(review, auth, pages))
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
}

/// Answers made by layers rather than handlers in the API's error shape: axum's own 405
/// (a route that takes other methods; its `Allow` header kept) and the decompression
/// layer's 415 for a `Content-Encoding` it does not take (its `Accept-Encoding` kept).
async fn json_errors(response: Response) -> Response {
    let keep = match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => header::ALLOW,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
            if !response.headers().contains_key(header::CONTENT_TYPE) =>
        {
            header::ACCEPT_ENCODING
        }
        _ => return response,
    };
    let kept = response.headers().get(&keep).cloned();
    let mut answer = if keep == header::ALLOW {
        ApiError::MethodNotAllowed.into_response()
    } else {
        ApiError::UnsupportedMediaType(
            "this Content-Encoding is not accepted; send gzip, deflate or an uncompressed body"
                .into(),
        )
        .into_response()
    };
    if let Some(kept) = kept {
        answer.headers_mut().insert(keep, kept);
    }
    answer
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// The public routes (the `ingest` function): forms, Segment calls, the tracking script.
pub fn public_router(ingest: Ingest, auth: Auth) -> Router {
    public_routes(ingest, auth)
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
}

/// The admin routes (the `review` function, behind IAM on AWS): lead lookup and ranking,
/// outcomes, suggestions under review, rules versions.
pub fn admin_router(review: Review, auth: Auth) -> Router {
    admin_routes(review, auth, None)
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
}

fn public_routes(ingest: Ingest, auth: Auth) -> Router {
    let origins: Vec<HeaderValue> = ingest
        .config()
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
        ])
        .max_age(std::time::Duration::from_secs(3600));
    let state = AppState(Arc::new(Services {
        store: ingest.store().clone(),
        pages: ingest.pages().cloned(),
        ingest: Some(ingest),
        review: None,
        auth: Arc::new(auth),
    }));
    Router::new()
        .route("/v1/forms/{form_id}", post(form))
        .route("/v1/page", segment_route(EventType::Page))
        .route("/v1/screen", segment_route(EventType::Screen))
        .route("/v1/track", segment_route(EventType::Track))
        .route("/v1/identify", segment_route(EventType::Identify))
        .route("/v1/group", segment_route(EventType::Group))
        .route("/v1/alias", segment_route(EventType::Alias))
        .route("/v1/batch", post(batch))
        // gzip and deflate bodies (Segment's and RudderStack's clients send them); the size
        // limits apply to the decompressed body, read as a stream, so a small bomb is a 413.
        .layer(RequestDecompressionLayer::new())
        .layer(cors)
        .route("/hotlead.js", get(tracking_script))
        // The rep's lead page: public, the signed link is the credential.
        .route("/l/{lead_id}", get(lead_page))
        .route("/l/{lead_id}/{action}", get(confirm_action).post(act))
        // A suggestion's read-only page: the signed link of the analysts' note.
        .route("/s/{id}", get(suggestion_page))
        // The ranking of hot and warm leads: the signed link of the daily digest.
        .route("/r", get(ranking_page))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(state)
}

fn admin_routes(
    review: Review,
    auth: Auth,
    pages: Option<Arc<hotlead_app::pages::LeadPages>>,
) -> Router {
    let store: Arc<dyn Store> = review.store().clone();
    let state = AppState(Arc::new(Services {
        store,
        // Only to link the ranking page's leads to their pages.
        pages,
        ingest: None,
        review: Some(review),
        auth: Arc::new(auth),
    }));
    Router::new()
        .route("/v1/leads", get(ranking))
        .route("/v1/leads/{lead_id}", get(lead).delete(erase_lead))
        .route("/v1/leads/{lead_id}/history", get(lead_history))
        .route("/v1/follow-up", get(follow_up_figures))
        .route("/v1/outcomes", post(review::outcomes))
        .route("/v1/suggestions", get(review::suggestions))
        .route("/v1/suggestions/{id}", get(review::suggestion))
        .route("/v1/suggestions/{id}/report", get(review::report))
        .route("/v1/suggestions/{id}/rules", get(review::rules_file))
        .route("/v1/suggestions/{id}/approve", post(review::approve))
        .route("/v1/suggestions/{id}/reject", post(review::reject))
        .route("/v1/rules", get(review::history))
        .route("/v1/rules/{version}", get(review::rules_version))
        .route("/v1/rules/{version}/activate", post(review::activate))
        // The analysts' and team leads' pages (HTML; a sign-in cookie or the token).
        .route("/review", get(review_page::suggestions))
        .route(
            "/review/login",
            get(review_page::login_form).post(review_page::login),
        )
        .route("/review/leads", get(review_page::leads))
        .route("/review/suggestions/{id}", get(review_page::suggestion))
        .route("/review/suggestions/{id}/report", get(review_page::report))
        .route(
            "/review/suggestions/{id}/{decision}",
            post(review_page::decide),
        )
        .with_state(state)
}

impl Services {
    fn ingest(&self) -> Result<&Ingest, ApiError> {
        self.ingest
            .as_ref()
            .ok_or_else(|| ApiError::NotFound("no such route".into()))
    }

    fn review(&self) -> Result<&Review, ApiError> {
        self.review
            .as_ref()
            .ok_or_else(|| ApiError::NotFound("no such route".into()))
    }
}

/// `POST /v1/<type>`: one Segment call of that type.
fn segment_route(kind: EventType) -> axum::routing::MethodRouter<AppState> {
    post(
        move |state: State<AppState>,
              peer: Option<axum::Extension<ClientAddr>>,
              headers: HeaderMap,
              body: Body| { call(state, peer, headers, body, Some(kind)) },
    )
}

/// Reads a body up to `limit` bytes; more is 413, whatever the client claimed.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("{what} is larger than {} KB", limit / 1024));
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && length > limit
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        let over =
            std::iter::successors(Some(&*error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if over {
            too_large()
        } else {
            // A compressed body that does not decompress, or a connection cut short.
            ApiError::Malformed(
                "the body could not be read (is its Content-Encoding right?)".into(),
            )
        }
    })
}

pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_string())
        })
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The fields of a form body by its media type (lower-cased, without parameters):
/// `application/x-www-form-urlencoded`, a plain HTML form (fields in the order sent;
/// `true` beside them), or `application/json`, an object of field names and scalar values
/// (`null` values left out). Anything else is 415. The fields' validation is
/// [`Ingest::form`]'s.
pub fn parse_form_fields(
    media_type: &str,
    bytes: &[u8],
) -> Result<(Vec<(String, String)>, bool), ApiError> {
    match media_type {
        "application/x-www-form-urlencoded" => Ok((
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            true,
        )),
        "application/json" => {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))?;
            let Value::Object(object) = value else {
                return Err(ApiError::Malformed(
                    "expected a JSON object of field names and values".into(),
                ));
            };
            let mut fields = Vec::new();
            for (name, value) in object {
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(ApiError::invalid(
                            name,
                            "expected a string, a number or a boolean",
                        ));
                    }
                };
                fields.push((name, text));
            }
            Ok((fields, false))
        }
        other => Err(unsupported(
            other,
            "application/x-www-form-urlencoded or application/json",
        )),
    }
}

async fn form(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ClientAddr>>,
    Path(form_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    admit(&state, peer, &headers, hotlead_app::throttle::Route::Forms).await?;
    let bytes = read_body(&headers, body, MAX_FORM_BYTES, "a form submission").await?;
    let (fields, plain_form) = parse_form_fields(&media_type(&headers), &bytes)?;
    let accepts_html = header_text(&headers, "accept").is_some_and(|a| a.contains("text/html"));
    let wants_redirect = fields
        .iter()
        .any(|(n, v)| n == "_redirect" && !matches!(v.as_str(), "" | "0" | "false"))
        || (plain_form && accepts_html);
    let submission = FormSubmission {
        form_id,
        fields,
        cookie_anonymous_id: cookie(&headers, "hl_anon"),
        idempotency_key: idempotency_key(&headers)?,
        wants_redirect,
    };
    match state.ingest()?.form(submission).await? {
        FormOutcome::Stored {
            redirect: Some(url),
            ..
        }
        | FormOutcome::Ignored {
            redirect: Some(url),
        } => Ok(Redirect::to(&url).into_response()),
        FormOutcome::Stored {
            lead_id,
            duplicate,
            redirect: None,
            dropped_attributes,
        } => {
            let mut body = json!({"status": "stored", "lead_id": lead_id, "duplicate": duplicate});
            if !dropped_attributes.is_empty() {
                body["attributes_not_stored"] = json!(dropped_attributes);
            }
            Ok(Json(body).into_response())
        }
        FormOutcome::Ignored { redirect: None } => {
            Ok(Json(json!({"status": "stored"})).into_response())
        }
    }
}

/// The `Idempotency-Key` header; one that is not visible ASCII text is refused rather
/// than taken for none.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_string))
            .map_err(|_| ApiError::invalid("Idempotency-Key", "expected visible ASCII text")),
    }
}

/// Checks the write key: Basic auth user name, or `writeKey` in the body (beacons).
fn check_write_key(
    auth: &Auth,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<(), ApiError> {
    let Some(expected) = &auth.write_key else {
        return Ok(());
    };
    let given = match header_text(headers, "authorization") {
        Some(value) => {
            let encoded = value.strip_prefix("Basic ").ok_or(ApiError::Unauthorized(
                "use Basic auth with the write key as user name",
            ))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or(ApiError::Unauthorized(
                    "the Authorization header is not valid Basic auth",
                ))?;
            decoded
                .split_once(':')
                .map_or(decoded.clone(), |(user, _)| user.to_string())
        }
        None => body_key
            .map(str::to_string)
            .ok_or(ApiError::Unauthorized("a write key is required"))?,
    };
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("the write key is not valid"))
    }
}

/// Compares secrets in time that depends on neither their contents nor their lengths: both
/// are hashed to 32 bytes first, and the digests compared without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub(crate) fn check_admin(auth: &Auth, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &auth.admin_token else {
        return Ok(());
    };
    // A browser signed in on the review pages (an HTTP-only, same-site cookie).
    if review_page::has_session(auth, headers) {
        return Ok(());
    }
    let given = header_text(headers, "authorization").ok_or(ApiError::Unauthorized(
        "an admin token is required (Authorization: Bearer ...)",
    ))?;
    let token = given.strip_prefix("Bearer ").ok_or(ApiError::Unauthorized(
        "use Authorization: Bearer <admin token>",
    ))?;
    if constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("the admin token is not valid"))
    }
}

/// 415, saying what to send instead.
pub(crate) fn unsupported(media: &str, accepted: &str) -> ApiError {
    ApiError::UnsupportedMediaType(match media {
        "" => format!("send {accepted}"),
        other => format!("{other} is not accepted; send {accepted}"),
    })
}

/// Parses a JSON body of a Segment endpoint (`application/json`, or `text/plain` as
/// beacons send it).
fn segment_json(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    match media_type(headers).as_str() {
        "application/json" | "text/plain" => {}
        other => return Err(unsupported(other, "application/json")),
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))
}

/// The visitor's address as far as it can be known: the platform's peer, or behind the
/// configured trusted proxies, the address they forwarded.
fn client_ip(
    state: &AppState,
    peer: Option<axum::Extension<ClientAddr>>,
    headers: &HeaderMap,
) -> Option<std::net::IpAddr> {
    let config = state.ingest.as_ref()?.config();
    let forwarded = header_text(headers, "x-forwarded-for");
    config.client_ip(peer.map(|p| p.0.0), forwarded.as_deref())
}

/// Counts the request against its client's per-minute limit (429 past it), before its
/// body is read; returns the client's address as far as it is known.
async fn admit(
    state: &AppState,
    peer: Option<axum::Extension<ClientAddr>>,
    headers: &HeaderMap,
    route: hotlead_app::throttle::Route,
) -> Result<Option<std::net::IpAddr>, ApiError> {
    let ip = client_ip(state, peer, headers);
    state.ingest()?.admit(ip, route, 1).await?;
    Ok(ip)
}

/// Drops the body's write key, and fills `context.ip` with the visitor's address for calls
/// of the tracking script (a browser cannot know its address). Server-side callers set
/// their own context: their request address is their server, not the visitor.
fn with_request_context(mut call: Value, ip: Option<&str>) -> Value {
    if let Value::Object(object) = &mut call {
        object.remove("writeKey");
        if let Some(Value::Object(context)) = object.get_mut("context") {
            let from_script = context
                .get("library")
                .and_then(|l| l.get("name"))
                .and_then(Value::as_str)
                == Some("hotlead.js");
            if let (true, Some(ip)) = (from_script, ip) {
                context.entry("ip").or_insert(json!(ip));
            }
        }
    }
    call
}

/// The JSON body of a Segment endpoint, within `limit`, once its write key is checked.
async fn authorised_segment_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<Value, ApiError> {
    let bytes = read_body(headers, body, limit, what).await?;
    let value = segment_json(headers, &bytes)?;
    let body_key = match value.get("writeKey") {
        None => None,
        Some(Value::String(key)) => Some(key.as_str()),
        Some(_) => return Err(ApiError::invalid("writeKey", "expected a string")),
    };
    check_write_key(&state.auth, headers, body_key)?;
    Ok(value)
}

pub(crate) fn recorded_json(recorded: &Recorded) -> Value {
    let mut body = json!({"duplicate": recorded.duplicate, "lead_id": recorded.lead_id});
    if recorded.conflicting {
        body["conflict"] = json!(true);
        body["message"] =
            json!("this message id was used before for another call; this call was not stored");
    }
    if !recorded.dropped_attributes.is_empty() {
        body["attributes_not_stored"] = json!(recorded.dropped_attributes);
    }
    body
}

async fn call(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
    route: Option<EventType>,
) -> Result<Response, ApiError> {
    let ip = admit(&state, peer, &headers, hotlead_app::throttle::Route::Calls)
        .await?
        .map(|ip| ip.to_string());
    let value =
        authorised_segment_body(&state, &headers, body, MAX_EVENT_BYTES, "an event").await?;
    let recorded = state
        .ingest()?
        .call_value(with_request_context(value, ip.as_deref()), route)
        .await?;
    let mut body = recorded_json(&recorded);
    body["success"] = json!(true);
    Ok(Json(body).into_response())
}

async fn batch(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = admit(&state, peer, &headers, hotlead_app::throttle::Route::Calls).await?;
    let ip = client.map(|ip| ip.to_string());
    let value = authorised_segment_body(&state, &headers, body, MAX_BATCH_BYTES, "a batch").await?;
    let Some(calls) = value.get("batch").and_then(Value::as_array) else {
        return Err(ApiError::invalid("batch", "expected an array of calls"));
    };
    // A batch counts each of its calls against the limit (one was counted before reading).
    let further = u32::try_from(calls.len().saturating_sub(1)).unwrap_or(u32::MAX);
    state
        .ingest()?
        .admit(client, hotlead_app::throttle::Route::Calls, further)
        .await?;
    check_batch_shared(&value)?;
    let mut prepared = Vec::with_capacity(calls.len());
    for (i, call) in calls.iter().enumerate() {
        let size = serde_json::to_vec(call)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_EVENT_BYTES {
            return Err(ApiError::TooLarge(format!(
                "batch[{i}] is larger than {} KB",
                MAX_EVENT_BYTES / 1024
            )));
        }
        if call.get("writeKey").is_some_and(|k| !k.is_string()) {
            return Err(ApiError::invalid(
                format!("batch[{i}].writeKey"),
                "expected a string",
            ));
        }
        let mut call = call.clone();
        if let Value::Object(call) = &mut call {
            // A batch's own context and `sentAt` hold for each of its calls.
            for shared in ["context", "sentAt"] {
                if let Some(value) = value.get(shared) {
                    call.entry(shared).or_insert_with(|| value.clone());
                }
            }
        }
        prepared.push(with_request_context(call, ip.as_deref()));
    }
    let results = state.ingest()?.batch(&prepared).await?;
    let results: Vec<Value> = results.iter().map(recorded_json).collect();
    let reused = results.iter().filter(|r| r["conflict"] == true).count();
    if reused > 0 {
        let message = format!(
            "{reused} calls of the batch reuse message ids of other calls and were not stored \
             (see `results`); the others were stored"
        );
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({"error": "conflict", "message": message, "results": results})),
        )
            .into_response());
    }
    Ok(Json(json!({"success": true, "results": results})).into_response())
}

/// A batch's own `sentAt` and `context` (which hold for its calls that have none) are
/// checked as a call's are, whether or not a call takes them.
fn check_batch_shared(batch: &Value) -> Result<(), ApiError> {
    match batch.get("sentAt") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "sentAt",
                "expected an RFC 3339 date-time",
            ));
        }
    }
    if let Some(context) = batch.get("context").filter(|c| !c.is_null()) {
        // A call that is valid but for its context says what is wrong with the context.
        let probe = json!({
            "type": "page", "messageId": "batch", "anonymousId": "batch",
            "timestamp": "2000-01-01T00:00:00Z", "context": context,
        });
        hotlead_core::Event::from_segment(&probe)
            .map_err(|e| ApiError::invalid(e.field, e.message))?;
    }
    Ok(())
}

fn lead_summary(stored: &StoredLead) -> Value {
    let attribute = |name: &str| stored.attributes.get(name).cloned();
    let score = stored.score.as_ref();
    json!({
        "lead_id": stored.id,
        "score": score.map(|s| s.score),
        "band": score.map(|s| s.band),
        "grade": score.map(|s| s.grade.clone()),
        "scored_at": score.map(|s| s.at),
        "company": attribute("company"),
        "name": attribute("name"),
        "title": attribute("title"),
        "stage": stored.stage,
        "reasons": score.map(|s| s.contributions.iter().filter(|c| !c.rule.starts_with("cap:")).take(3).map(|c| format!("{} {}", c.points, c.label)).collect::<Vec<_>>()),
    })
}

/// A `limit` query parameter: 1 to 500, 50 when absent; anything else is 422.
pub(crate) fn page_limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text {
        None => Ok(50),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", "expected a number from 1 to 500")),
    }
}

/// Query of `GET /v1/leads`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RankingQuery {
    pub band: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

async fn ranking(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<RankingQuery>,
) -> Result<Response, ApiError> {
    check_admin(&state.auth, &headers)?;
    let band = match query.band.as_deref() {
        None | Some("") => None,
        Some("hot") => Some(Band::Hot),
        Some("warm") => Some(Band::Warm),
        Some("cold") => Some(Band::Cold),
        Some(other) => {
            return Err(ApiError::invalid(
                "band",
                format!("expected hot, warm or cold, got {other:?}"),
            ));
        }
    };
    let limit = page_limit(query.limit.as_deref())?;
    let cursor = query.cursor.filter(|c| !c.is_empty());
    if let Some(cursor) = &cursor {
        let valid = hotlead_app::ports::RankCursor::parse(cursor).is_some();
        if !valid {
            return Err(ApiError::invalid(
                "cursor",
                "expected the `next` value of a previous page",
            ));
        }
    }
    let page = state.store.ranking(band, limit, cursor.as_deref()).await?;
    Ok(Json(json!({"leads": page.leads.iter().map(lead_summary).collect::<Vec<_>>(), "next": page.next})).into_response())
}

async fn lead(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(lead_id): Path<String>,
) -> Result<Response, ApiError> {
    check_admin(&state.auth, &headers)?;
    let Some(stored) = state.store.lead(&lead_id).await? else {
        return Err(ApiError::NotFound(format!("no lead {lead_id:?}")));
    };
    let events = state.store.events(&stored.id).await?;
    let profile: Lead = stored.to_lead();
    let mut body = lead_summary(&stored);
    body["requested_id"] = json!(lead_id);
    body["created_at"] = json!(stored.created_at);
    body["updated_at"] = json!(stored.updated_at);
    body["identities"] = json!(stored.identities);
    body["hot_crossings"] = json!(stored.hot_crossings);
    body["profile"] = json!(profile.attributes);
    body["explanation"] = match &stored.score {
        Some(score) => json!({
            "rules": score.rules,
            "groups": score.groups,
            "contributions": score.contributions,
            "band_limit": score.band_limit,
            "alerts": score.alerts,
            "events": score.events,
            "excluded": score.excluded,
        }),
        None => Value::Null,
    };
    body["timeline"] = json!(
        events
            .iter()
            .rev()
            .take(TIMELINE_EVENTS)
            .collect::<Vec<_>>()
    );
    Ok(Json(body).into_response())
}

/// The query of a lead page link (see [`hotlead_app::links`]).
#[derive(Debug, Default)]
struct PageQuery {
    /// Until when the link works (Unix seconds).
    e: Option<String>,
    /// Its language (`ja` or `en`).
    l: Option<String>,
    /// Its signature.
    s: Option<String>,
    /// The action just recorded (not signed: it only shows a notice).
    done: Option<String>,
}

impl PageQuery {
    /// Reads a link's query by hand: a query that does not parse is a refused link (an
    /// HTML page), not an API error. A parameter given twice is no link this server made.
    fn parse(raw: Option<String>) -> PageQuery {
        let mut query = PageQuery::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let slot = match key.as_ref() {
                "e" => &mut query.e,
                "l" => &mut query.l,
                "s" => &mut query.s,
                "done" => &mut query.done,
                _ => continue,
            };
            if slot.is_some() {
                *slot = Some(String::new());
            } else {
                *slot = Some(value.into_owned());
            }
        }
        query
    }

    /// The language the link asks for; a link without one is answered in both.
    fn language(&self) -> Option<hotlead_core::alert::Language> {
        self.l
            .as_deref()
            .and_then(hotlead_core::alert::Language::from_code)
    }

    fn refused(&self, refusal: page::Refusal) -> Response {
        page::response(refusal.status(), page::refusal(refusal, self.language()))
    }

    fn parts(&self) -> page::LinkParts {
        page::LinkParts {
            expires: self.e.clone().unwrap_or_default(),
            language: self.l.clone().unwrap_or_default(),
            signature: self.s.clone().unwrap_or_default(),
        }
    }
}

/// What a lead page link opens: the view, or the page refusing it (no lead pages here,
/// an invalid, expired or dead link).
async fn open_view(
    state: &AppState,
    lead_id: &str,
    query: &PageQuery,
) -> Result<Result<hotlead_app::pages::PageView, Response>, ApiError> {
    let Some(pages) = &state.pages else {
        return Ok(Err(query.refused(page::Refusal::Off)));
    };
    Ok(pages
        .open(
            lead_id,
            query.e.as_deref(),
            query.l.as_deref(),
            query.s.as_deref(),
        )
        .await?
        .map_err(|refusal| query.refused(refusal.into())))
}

/// `GET /l/{lead_id}`: the rep's lead page, opened by the signed link an alert ends with
/// (no login, no admin token: the link is the credential). HTML; its buttons lead to
/// confirmation pages.
async fn lead_page(
    State(state): State<AppState>,
    Path(lead_id): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(raw);
    let view = match open_view(&state, &lead_id, &query).await? {
        Ok(view) => view,
        Err(refused) => return Ok(refused),
    };
    let stages = view.stages();
    let body = page::lead_page(&page::LeadPage {
        lead: &view.lead,
        events: &view.events,
        rules: view.rules.as_ref(),
        language: view.link.language,
        now: view.now,
        expires: view.link.expires,
        history: &view.history,
        stages: &stages,
        routing: &view.routing,
        link: &query.parts(),
        done: query.done.as_deref().and_then(RepAction::parse),
    });
    Ok(page::response(StatusCode::OK, body))
}

/// `GET /r`: the ranking page of hot and warm leads, opened by the signed link the team
/// lead's daily digest ends with (on AWS, where the admin routes are IAM-only).
async fn ranking_page(
    State(state): State<AppState>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(raw);
    let language = state
        .pages
        .as_ref()
        .map_or(hotlead_core::alert::Language::Ja, |p| p.config().language);
    let refused = |refusal: page::Refusal| {
        page::response(refusal.status(), page::refusal(refusal, Some(language)))
    };
    let Some(pages) = &state.pages else {
        return Ok(refused(page::Refusal::Off));
    };
    match pages
        .open_ranking(query.e.as_deref(), query.s.as_deref())
        .await?
    {
        Ok(view) => Ok(page::response(
            StatusCode::OK,
            page::page(
                language,
                page::t(language, "ホット・ウォームリード", "Hot and warm leads"),
                &review_page::ranking_body(&view, Some(pages)),
            ),
        )),
        Err(refusal) => Ok(refused(refusal.into())),
    }
}

/// `GET /s/{id}`: a suggestion under review, read-only, opened by the signed link the
/// analysts' note ends with (on AWS the review API is IAM-only, so a browser cannot open
/// it). Deciding stays with the review API.
async fn suggestion_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(raw);
    let refused = |refusal: page::Refusal| {
        page::response(
            refusal.status(),
            page::refusal(refusal, Some(hotlead_core::alert::Language::En)),
        )
    };
    let Some(pages) = &state.pages else {
        return Ok(refused(page::Refusal::Off));
    };
    match pages
        .open_suggestion(&id, query.e.as_deref(), query.s.as_deref())
        .await?
    {
        Ok(stored) => Ok(page::response(
            StatusCode::OK,
            review_page::suggestion_view(&stored, None, None, review_page::Mode::ReadOnly),
        )),
        Err(refusal) => Ok(refused(refusal.into())),
    }
}

/// `GET /l/{lead_id}/{action}`: the page confirming a rep's action (accept, reject,
/// contacted), behind the same signed link. Showing it changes nothing.
async fn confirm_action(
    State(state): State<AppState>,
    Path((lead_id, action)): Path<(String, String)>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let query = PageQuery::parse(raw);
    confirmation_page(&state, &lead_id, &action, &query, None).await
}

/// The confirmation page, with what was wrong with the last try (422) or fresh (200).
async fn confirmation_page(
    state: &AppState,
    lead_id: &str,
    action: &str,
    query: &PageQuery,
    problem: Option<(&str, &str)>,
) -> Result<Response, ApiError> {
    let view = match open_view(state, lead_id, query).await? {
        Ok(view) => view,
        Err(refused) => return Ok(refused),
    };
    let stages = view.stages();
    let Some(action) = RepAction::parse(action).filter(|a| stages.offers(*a)) else {
        return Ok(query.refused(page::Refusal::Invalid));
    };
    let token = hotlead_app::pages::new_token();
    let body = page::confirmation(&page::Confirmation {
        lead: &view.lead,
        action,
        language: view.link.language,
        link: &query.parts(),
        reasons: &stages.reject_reasons,
        token: &token,
        by: problem
            .map(|(_, by)| by)
            .or(view.routing.owner.as_deref())
            .unwrap_or_default(),
        problem: problem.map(|(message, _)| message),
    });
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(page::response(status, body))
}

/// The longest confirmation form body accepted.
const ACTION_FORM_LIMIT: usize = 4 * 1024;

/// `POST /l/{lead_id}/{action}`: records a confirmed action (form fields `by`, `token`,
/// and `reason` for a reject), then sends the rep back to the lead page (303).
async fn act(
    State(state): State<AppState>,
    Path((lead_id, action)): Path<(String, String)>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    use hotlead_app::pages::{ActionRefusal, ActionRequest};
    let query = PageQuery::parse(raw);
    let Some(pages) = &state.pages else {
        return Ok(query.refused(page::Refusal::Off));
    };
    let Some(parsed) = RepAction::parse(&action) else {
        return Ok(query.refused(page::Refusal::Invalid));
    };
    let body = read_body(&headers, body, ACTION_FORM_LIMIT, "the form").await?;
    let (mut by, mut reason, mut token) = (String::new(), None, String::new());
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "by" => by = value.into_owned(),
            "reason" => reason = Some(value.into_owned()).filter(|r| !r.is_empty()),
            "token" => token = value.into_owned(),
            _ => {}
        }
    }
    let request = ActionRequest {
        action: parsed,
        reason: reason.as_deref(),
        by: &by,
        token: &token,
    };
    let link = (query.e.as_deref(), query.l.as_deref(), query.s.as_deref());
    match pages.act(&lead_id, link, &request).await? {
        Ok(acted) => {
            let location = format!(
                "../{}?{}&done={}",
                hotlead_app::links::percent_encoded(&acted.lead_id, b"-._~"),
                query.parts().query(),
                parsed.as_str()
            );
            let mut response = page::response(StatusCode::SEE_OTHER, String::new());
            if let Ok(value) = header::HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Ok(response)
        }
        Err(ActionRefusal::Page(refusal)) => Ok(query.refused(refusal.into())),
        Err(ActionRefusal::Invalid(message)) => {
            confirmation_page(&state, &lead_id, &action, &query, Some((&message, &by))).await
        }
    }
}

/// The period of follow-up figures: `since` and `until` (RFC 3339), by default the 30 days
/// to now.
#[derive(Debug, serde::Deserialize)]
struct FollowUpQuery {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /v1/follow-up?since&until`: how fast reps act on hot alerts, per territory.
async fn follow_up_figures(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<FollowUpQuery>,
) -> Result<Response, ApiError> {
    check_admin(&state.auth, &headers)?;
    let review = state.review()?;
    let now = review.now();
    let time = |field: &'static str,
                text: &Option<String>|
     -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        text.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        ApiError::invalid(
                            field,
                            "expected an RFC 3339 time, e.g. 2026-12-01T00:00:00+09:00",
                        )
                    })
            })
            .transpose()
    };
    let until = time("until", &query.until)?.unwrap_or(now);
    let since = match time("since", &query.since)? {
        Some(since) => since,
        None => until
            .checked_sub_signed(chrono::Duration::days(30))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
    };
    // A period that ends before it starts holds no alert (the answer echoes both ends).
    let since = since.min(until);
    let figures = hotlead_app::follow_up::load(review.store().as_ref(), since, until, now).await?;
    Ok(Json(figures).into_response())
}

/// `GET /v1/leads/{id}/history`: the lead's band and stage changes and reps' actions,
/// oldest first, with its stage now.
async fn lead_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(lead_id): Path<String>,
) -> Result<Response, ApiError> {
    check_admin(&state.auth, &headers)?;
    let Some(stored) = state.store.lead(&lead_id).await? else {
        return Err(ApiError::NotFound(format!("no lead {lead_id:?}")));
    };
    let history = state.store.history(&stored.id).await?;
    Ok(Json(json!({
        "lead_id": stored.id,
        "requested_id": lead_id,
        "stage": stored.stage,
        "band": stored.band(),
        "history": history,
    }))
    .into_response())
}

/// `DELETE /v1/leads/{id}`: erases the person (see [`hotlead_app::erase`]). A lead that is
/// not there (never stored, or erased before) is a 404: erasing twice erases once.
async fn erase_lead(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(lead_id): Path<String>,
) -> Result<Response, ApiError> {
    check_admin(&state.auth, &headers)?;
    let target = hotlead_app::erase::EraseTarget::Id(lead_id.clone());
    match state.review()?.erase(&target).await? {
        Some(erasure) => {
            let mut body = json!(erasure);
            body["status"] = json!("erased");
            Ok(Json(body).into_response())
        }
        None => Err(ApiError::NotFound(format!(
            "no lead {lead_id:?}: never stored, or erased already"
        ))),
    }
}

async fn tracking_script() -> impl IntoResponse {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        TRACKING_SCRIPT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets compare equal only when equal, whatever their lengths (a prefix, a longer
    /// value, the empty string are all different).
    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(constant_time_eq(b"s3cret-token", b"s3cret-token"));
        for other in [
            &b"s3cret-toke"[..],
            b"s3cret-token!",
            b"",
            b"S3cret-token",
            b"s3cret-token\0",
        ] {
            assert!(!constant_time_eq(other, b"s3cret-token"), "{other:?}");
        }
        assert!(constant_time_eq(b"", b""));
    }
}
