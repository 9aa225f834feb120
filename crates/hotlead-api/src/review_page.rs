//! The analysts' and team leads' pages (on the admin routes): suggestions under review
//! with approve / reject, and the ranking of hot and warm leads. Plain HTML, no script.
//!
//! Sign-in: with an admin token set, `/review/login` takes it once and sets an HTTP-only,
//! same-site (`Strict`) cookie holding a digest of it (never the token); the admin routes
//! take that cookie as they take `Authorization: Bearer`. Without an admin token (a
//! loopback-only `serve`), the pages are open like the other admin routes. Every form
//! POST must come from a page of this origin (`Origin` equal to the request's host): a
//! page elsewhere cannot make a signed-in browser approve, reject or sign in.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use hmac::{Hmac, KeyInit, Mac};
use hotlead_app::ports::{StoredSuggestion, SuggestionStatus};
use hotlead_core::Band;
use hotlead_core::alert::Language;
use sha2::Sha256;

use crate::extract::Path;
use crate::page::{escape, page, response};
use crate::{ApiError, AppState, Auth, constant_time_eq, read_body};

/// The session cookie's name.
pub const COOKIE: &str = "hotlead_review";
/// How long a sign-in lasts, in seconds (12 hours).
const SESSION_SECONDS: u32 = 12 * 3600;
/// The longest form a review page posts.
const FORM_LIMIT: usize = 8 * 1024;

/// The cookie value of a signed-in browser: HMAC-SHA256 of a fixed text under the admin
/// token (URL-safe base64). It changes when the token changes, and does not reveal it.
pub fn session_value(admin_token: &str) -> String {
    use base64::Engine;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(admin_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"hotlead review session v1");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The session cookie the request carries, if any.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// Whether the request carries the session cookie of `auth`'s admin token.
pub(crate) fn has_session(auth: &Auth, headers: &HeaderMap) -> bool {
    match (&auth.admin_token, cookie(headers)) {
        (Some(token), Some(given)) => {
            constant_time_eq(given.as_bytes(), session_value(token).as_bytes())
        }
        _ => false,
    }
}

/// Whether a page may be shown: no admin token is set, or the browser signed in.
fn signed_in(auth: &Auth, headers: &HeaderMap) -> bool {
    auth.admin_token.is_none()
        || has_session(auth, headers)
        || crate::check_admin(auth, headers).is_ok()
}

/// Whether a form POST comes from a page of this origin. A browser says so with
/// `Sec-Fetch-Site: same-origin` (every current browser sends it); an `Origin` it sends
/// must then name the request's host (or be `null`, as under a no-referrer policy).
/// Without `Sec-Fetch-Site`, `Origin` must name the request's host.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text("host");
    let origin_matches = |origin: &str| {
        let named = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        named.is_some() && named == host
    };
    match (text("sec-fetch-site"), text("origin")) {
        (Some("same-origin"), None | Some("null")) => true,
        (Some("same-origin"), Some(origin)) => origin_matches(origin),
        (Some(_), _) => false,
        (None, Some(origin)) => origin_matches(origin),
        (None, None) => false,
    }
}

/// A review page as sent: as [`response`], but the referrer goes to this origin (so a
/// browser names it in `Origin` on the page's forms).
fn review_response(status: StatusCode, body: String) -> Response {
    let mut answer = response(status, body);
    answer.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    answer
}

fn see_other(location: &str) -> Response {
    let mut answer = response(StatusCode::SEE_OTHER, String::new());
    if let Ok(value) = HeaderValue::from_str(location) {
        answer.headers_mut().insert(header::LOCATION, value);
    }
    answer
}

/// A page of the review area, with its navigation.
fn review_page(title: &str, body: &str) -> String {
    page(
        Language::En,
        title,
        &format!(
            "<nav class=\"actions\" style=\"margin:0 0 1rem\"><a class=\"button secondary\" href=\"/review\">Suggestions</a>\
             <a class=\"button secondary\" href=\"/review/leads\">Hot and warm leads</a></nav>{body}"
        ),
    )
}

fn refused(status: StatusCode, message: &str) -> Response {
    response(
        status,
        review_page(
            "Not allowed",
            &format!(
                "<div class=\"card\"><h1>Not allowed</h1><p>{}</p></div>",
                escape(message)
            ),
        ),
    )
}

/// Form fields of a posted body.
fn fields(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `GET /review/login`: the sign-in form (with no admin token set: straight in).
pub(crate) async fn login_form(State(state): State<AppState>) -> Response {
    if state.auth.admin_token.is_none() {
        return see_other("/review");
    }
    review_response(StatusCode::OK, login_page(None))
}

fn login_page(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!("<div class=\"problem\" role=\"alert\">{}</div>", escape(p)))
        .unwrap_or_default();
    page(
        Language::En,
        "Sign in",
        &format!(
            "{problem}<div class=\"card\"><h1>Sign in to review</h1><form method=\"post\" action=\"/review/login\">\
             <label for=\"token\">Admin token</label><input type=\"password\" id=\"token\" name=\"token\" required autocomplete=\"current-password\" \
             style=\"font:inherit;width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #c5cad3;border-radius:.3rem\">\
             <div class=\"actions\"><button type=\"submit\" id=\"sign-in\">Sign in</button></div></form></div>"
        ),
    )
}

/// `POST /review/login`: checks the admin token and sets the session cookie.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "Sign in from this server's own sign-in page.",
        ));
    }
    let Some(token) = &state.auth.admin_token else {
        return Ok(see_other("/review"));
    };
    let body = read_body(&headers, body, FORM_LIMIT, "the form").await?;
    let given = fields(&body).remove("token").unwrap_or_default();
    if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        tracing::warn!("a review sign-in with a wrong admin token");
        return Ok(review_response(
            StatusCode::FORBIDDEN,
            login_page(Some("That is not the admin token.")),
        ));
    }
    let secure = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"));
    let mut answer = see_other("/review");
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{}",
        session_value(token),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        answer.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(answer)
}

/// `GET /review`: the suggestions, newest first.
pub(crate) async fn suggestions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !signed_in(&state.auth, &headers) {
        return Ok(see_other("/review/login"));
    }
    let review = state.review()?;
    let list = review.store().suggestions(50).await?;
    let active = review.store().active_rules().await?;
    let mut body = String::from("<div class=\"card\"><h1>Suggestions</h1>");
    if let Some(active) = &active {
        body.push_str(&format!(
            "<p>Active rules: <b id=\"active-rules\">{} v{}</b></p>",
            escape(&active.name),
            active.version
        ));
    }
    if list.is_empty() {
        body.push_str("<p class=\"muted\">No suggestion yet: the learning job makes one from closed deals.</p>");
    }
    body.push_str("<table>");
    for head in &list {
        body.push_str(&format!(
            "<tr><td><a href=\"/review/suggestions/{id}\">{id}</a><div class=\"ev\">{}</div></td><td>{}</td><td class=\"pts\">AUC {} → {:.3}</td></tr>",
            escape(&head.created_at.format("%Y-%m-%d %H:%M UTC").to_string()),
            escape(head.review.name()),
            head.current_auc.map_or("–".to_string(), |a| format!("{a:.3}")),
            head.suggested_auc,
            id = escape(&head.id),
        ));
    }
    body.push_str("</table></div>");
    Ok(review_response(
        StatusCode::OK,
        review_page("Suggestions", &body),
    ))
}

/// `GET /review/suggestions/{id}`: one suggestion to review.
pub(crate) async fn suggestion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    if !signed_in(&state.auth, &headers) {
        return Ok(see_other("/review/login"));
    }
    let review = state.review()?;
    let stored = review.suggestion(&id).await?;
    let done = query
        .as_deref()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "done"))
        .map(|(_, v)| v.into_owned());
    Ok(review_response(
        StatusCode::OK,
        suggestion_page(&stored, done.as_deref(), None),
    ))
}

/// Whether a suggestion's page offers the decision (the review area) or only shows it
/// (the signed link of the analysts' note, on the public API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Decide,
    ReadOnly,
}

fn suggestion_page(stored: &StoredSuggestion, done: Option<&str>, problem: Option<&str>) -> String {
    suggestion_view(stored, done, problem, Mode::Decide)
}

/// A suggestion's page in `mode`.
pub(crate) fn suggestion_view(
    stored: &StoredSuggestion,
    done: Option<&str>,
    problem: Option<&str>,
    mode: Mode,
) -> String {
    let s = &stored.suggestion;
    let id = escape(&stored.id);
    let mut body = String::new();
    if let Some(done) = done {
        let text = match done {
            "approved" => "Approved: the suggested rules are the active version now.",
            "rejected" => "Rejected: the active rules stay as they were.",
            _ => "",
        };
        if !text.is_empty() {
            body.push_str(&format!(
                "<div class=\"notice\" role=\"status\">{text}</div>"
            ));
        }
    }
    if let Some(problem) = problem {
        body.push_str(&format!(
            "<div class=\"problem\" role=\"alert\">{}</div>",
            escape(problem)
        ));
    }
    let status = match &stored.review {
        SuggestionStatus::Pending => "pending review".to_string(),
        SuggestionStatus::Approved {
            at,
            by,
            rules_version,
        } => format!(
            "approved by {by} on {} (rules version {rules_version})",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
        SuggestionStatus::Rejected { at, by, reason } => format!(
            "rejected by {by} on {}: {reason}",
            at.format("%Y-%m-%d %H:%M UTC")
        ),
    };
    body.push_str(&format!(
        "<div class=\"card\"><h1>Suggestion {id}</h1><p><span id=\"status\">{}</span>{}</p>",
        escape(&status),
        s.base
            .as_ref()
            .map(|b| format!(" · for rules {} v{}", escape(&b.name), b.version))
            .unwrap_or_default()
    ));
    // The review starts with what changes.
    body.push_str(&format!(
        "</div><div class=\"card\" id=\"diff\">{}</div><div class=\"card\">",
        hotlead_learn::report::diff_html(s)
    ));
    // The headline: what the analyst weighs.
    let d = &s.data;
    let auc = |e: Option<&hotlead_learn::Evaluation>| {
        e.map_or("–".to_string(), |e| format!("{:.3}", e.auc))
    };
    let lift = |e: Option<&hotlead_learn::Evaluation>| {
        e.map_or("–".to_string(), |e| format!("{:.2}×", e.top_decile_lift))
    };
    let share = |e: Option<&hotlead_learn::Evaluation>| {
        e.map_or("–".to_string(), |e| {
            format!("{:.1} %", e.hot_share * 100.0)
        })
    };
    let threshold = |e: Option<&hotlead_learn::Evaluation>| {
        e.map_or("–".to_string(), |e| format!("{}", e.threshold))
    };
    let current = s.current.as_ref();
    let suggested = Some(&s.suggested);
    body.push_str(&format!(
        "<p>Learned from <b>{}</b> closed deals ({} won, {} lost); {} held out and never seen while fitting.</p>\
         <table id=\"headline\"><tr><td></td><td class=\"pts\">current</td><td class=\"pts\">suggested</td></tr>\
         <tr><td>Hold-out AUC</td><td class=\"pts\">{}</td><td class=\"pts\">{}</td></tr>\
         <tr><td>Top-decile lift</td><td class=\"pts\">{}</td><td class=\"pts\">{}</td></tr>\
         <tr><td>Hot at</td><td class=\"pts\">{}</td><td class=\"pts\">{}</td></tr>\
         <tr><td>Hot share of the hold-out</td><td class=\"pts\">{}</td><td class=\"pts\">{}</td></tr></table>\
         <p class=\"ev\">Thresholds: {}</p></div>",
        d.outcomes,
        d.won,
        d.lost,
        d.holdout,
        auc(current),
        auc(suggested),
        lift(current),
        lift(suggested),
        threshold(current),
        threshold(suggested),
        share(current),
        share(suggested),
        escape(&s.thresholds.reason),
    ));
    // Current against suggested points, side by side.
    body.push_str("<h2>Points: current and suggested</h2><div class=\"card\"><table id=\"weights\"><tr><td>rule</td><td class=\"pts\">current</td><td class=\"pts\">suggested</td><td class=\"pts\">range</td></tr>");
    let mut weights: Vec<_> = s
        .weights
        .iter()
        .filter(|w| w.suggested_points != 0 || w.current_points.is_some())
        .collect();
    weights.sort_by_key(|w| std::cmp::Reverse(w.suggested_points.abs()));
    for w in weights {
        let changed = w.current_points.map(|c| c.round() as i64) != Some(w.suggested_points);
        body.push_str(&format!(
            "<tr><td>{}<div class=\"ev\">{} · {} leads{}{}</div></td><td class=\"pts\">{}</td><td class=\"pts\"{}>{}</td><td class=\"pts ev\">{}</td></tr>",
            escape(&w.label),
            escape(&w.rule),
            w.leads,
            w.stability
                .map(|f| format!(" · chosen in {:.0} % of refits", f * 100.0))
                .unwrap_or_default(),
            w.flag
                .as_deref()
                .map(|f| format!(" · <span class=\"neg\">{}</span>", escape(f)))
                .unwrap_or_default(),
            w.current_points.map_or("–".to_string(), |c| format!("{c}")),
            if changed { " style=\"color:#1d4ed8\"" } else { "" },
            w.suggested_points,
            match (w.low, w.high) {
                (Some(l), Some(h)) => format!("{l} … {h}"),
                _ => "–".into(),
            },
        ));
    }
    body.push_str("</table></div>");
    let report = match mode {
        Mode::Decide => format!(
            " <a href=\"/review/suggestions/{id}/report\">The full report</a> (calibration tables, the suggested rules file)."
        ),
        Mode::ReadOnly => String::new(),
    };
    body.push_str(&format!(
        "<h2>Hold-out charts</h2><div class=\"card\" style=\"overflow-x:auto\">{}<p class=\"ev\">Grey: current rules; red: suggested.{report}</p></div>",
        hotlead_learn::report::charts(s)
    ));
    if mode == Mode::ReadOnly {
        if matches!(stored.review, SuggestionStatus::Pending) {
            body.push_str(&format!(
                "<h2>Decision</h2><div class=\"card\"><p>This page only shows the suggestion. Approving changes the live rules, so it takes the review API, \
                 signed by an analyst's AWS credentials with multi-factor authentication:</p>\
                 <pre style=\"white-space:pre-wrap;overflow-wrap:anywhere\">hotlead suggestions approve {id} --backend aws\nhotlead suggestions reject {id} --reason \"...\" --backend aws</pre></div>"
            ));
        }
        return page(Language::En, &format!("Suggestion {}", stored.id), &body);
    }
    if matches!(stored.review, SuggestionStatus::Pending) {
        body.push_str(&format!(
            "<h2>Decision</h2><div class=\"card\">\
             <form method=\"post\" action=\"/review/suggestions/{id}/approve\">\
             <label for=\"approve-by\">Your name</label><input type=\"text\" id=\"approve-by\" name=\"by\" required maxlength=\"100\">\
             <div class=\"actions\"><button type=\"submit\" id=\"approve\">Approve: make these rules active</button></div></form>\
             <form method=\"post\" action=\"/review/suggestions/{id}/reject\" style=\"margin-top:1.2rem\">\
             <label for=\"reject-by\">Your name</label><input type=\"text\" id=\"reject-by\" name=\"by\" required maxlength=\"100\">\
             <label for=\"reason\">Why not</label><input type=\"text\" id=\"reason\" name=\"reason\" required maxlength=\"500\">\
             <div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"reject\">Reject</button></div></form></div>"
        ));
    }
    review_page(&format!("Suggestion {}", stored.id), &body)
}

/// `GET /review/suggestions/{id}/report`: the suggestion's full report (printable).
pub(crate) async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !signed_in(&state.auth, &headers) {
        return Ok(see_other("/review/login"));
    }
    let stored = state.review()?.suggestion(&id).await?;
    Ok(response(
        StatusCode::OK,
        hotlead_learn::report::render(&stored.id, &stored.suggestion),
    ))
}

/// `POST /review/suggestions/{id}/{decision}`: approve, or reject with a reason; then
/// back to the suggestion (303).
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "Decide from this server's own review page.",
        ));
    }
    if !signed_in(&state.auth, &headers) {
        return Ok(refused(StatusCode::FORBIDDEN, "Sign in first."));
    }
    let review = state.review()?;
    let body = read_body(&headers, body, FORM_LIMIT, "the form").await?;
    let mut form = fields(&body);
    let by = hotlead_core::alert::one_line(form.remove("by").as_deref().unwrap_or(""), 101);
    let reason = form.remove("reason").unwrap_or_default();
    let problem = if by.is_empty() || by.chars().count() > 100 {
        Some("Give your name (1 to 100 characters).")
    } else if decision == "reject" && reason.trim().is_empty() {
        Some("Say why the suggestion is rejected.")
    } else {
        None
    };
    let outcome = match (problem, decision.as_str()) {
        (Some(problem), _) => Err(problem.to_string()),
        (None, "approve") => match review.approve(&id, &by).await {
            Ok(version) => {
                tracing::info!(suggestion = %id, version = version.version, "suggestion approved on the review page; rules version active");
                Ok("approved")
            }
            Err(hotlead_app::review::ReviewError::Conflict(message)) => Err(message),
            Err(error) => return Err(error.into()),
        },
        (None, "reject") => match review.reject(&id, &by, reason.trim()).await {
            Ok(()) => Ok("rejected"),
            Err(hotlead_app::review::ReviewError::Conflict(message)) => Err(message),
            Err(error) => return Err(error.into()),
        },
        _ => return Err(ApiError::NotFound("no such route".into())),
    };
    match outcome {
        Ok(done) => Ok(see_other(&format!(
            "/review/suggestions/{}?done={done}",
            hotlead_app::links::percent_encoded(&id, b"-._~")
        ))),
        Err(problem) => {
            let stored = review.suggestion(&id).await?;
            Ok(review_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                suggestion_page(&stored, None, Some(&problem)),
            ))
        }
    }
}

/// `GET /review/leads`: the team lead's list of hot, then warm leads, by score, with their
/// stage, top reasons and a link to each lead's page.
pub(crate) async fn leads(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !signed_in(&state.auth, &headers) {
        return Ok(see_other("/review/login"));
    }
    let view = hotlead_app::pages::RankingView {
        hot: state
            .store
            .ranking(Some(Band::Hot), hotlead_app::pages::RANKING_LEADS, None)
            .await?,
        warm: state
            .store
            .ranking(Some(Band::Warm), hotlead_app::pages::RANKING_LEADS, None)
            .await?,
        now: state.review()?.now(),
    };
    Ok(review_response(
        StatusCode::OK,
        review_page(
            "Hot and warm leads",
            &ranking_body(&view, state.pages.as_deref()),
        ),
    ))
}

/// The ranking of hot and warm leads: score, who, grade, stage, when scored, top
/// reasons; each lead linked to its signed page when `pages` makes links.
pub(crate) fn ranking_body(
    view: &hotlead_app::pages::RankingView,
    pages: Option<&hotlead_app::pages::LeadPages>,
) -> String {
    let mut body = String::new();
    for (band, page) in [(Band::Hot, &view.hot), (Band::Warm, &view.warm)] {
        body.push_str(&format!(
            "<h2>{} <span class=\"muted\">({}{})</span></h2><div class=\"card\"><table id=\"{}\">",
            band.as_str().to_uppercase(),
            page.leads.len(),
            if page.next.is_some() { "+" } else { "" },
            band.as_str()
        ));
        if page.leads.is_empty() {
            body.push_str("<tr><td class=\"muted\">None.</td></tr>");
        }
        for lead in &page.leads {
            let Some(score) = &lead.score else { continue };
            let profile = lead.to_lead();
            let who = ["company", "name"]
                .iter()
                .filter_map(|n| profile.get(n).map(|v| v.raw.trim().to_string()))
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let who = if who.is_empty() { lead.id.clone() } else { who };
            let link = match pages {
                Some(pages) => {
                    let links = pages.links();
                    let url = links.url(&links.link(&lead.id, view.now, pages.config().language));
                    format!("<a href=\"{}\">{}</a>", escape(&url), escape(&who))
                }
                None => escape(&who),
            };
            let reasons: Vec<String> = score
                .contributions
                .iter()
                .filter(|c| !c.rule.starts_with("cap:"))
                .take(3)
                .map(|c| format!("{} {}", c.points, c.label))
                .collect();
            body.push_str(&format!(
                "<tr><td class=\"pts\">{}</td><td>{link}<div class=\"ev\">{} · {} · {}</div><div class=\"ev\">{}</div></td></tr>",
                score.score,
                escape(&score.grade),
                escape(lead.stage.as_ref().map_or("no stage", |s| s.id.as_str())),
                escape(&score.at.format("%Y-%m-%d %H:%M UTC").to_string()),
                escape(&reasons.join(" · ")),
            ));
        }
        body.push_str("</table></div>");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_form_post_must_come_from_this_origin() {
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(same_origin(&headers(&[
            ("origin", "https://leads.example.com"),
            ("host", "leads.example.com"),
            ("sec-fetch-site", "same-origin")
        ])));
        for bad in [
            headers(&[("host", "127.0.0.1:8080")]),
            headers(&[
                ("origin", "https://evil.example"),
                ("host", "127.0.0.1:8080"),
            ]),
            headers(&[("origin", "null"), ("host", "127.0.0.1:8080")]),
            headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site"),
            ]),
            headers(&[
                ("origin", "https://evil.example"),
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ]),
            headers(&[("sec-fetch-site", "same-site"), ("host", "127.0.0.1:8080")]),
        ] {
            assert!(!same_origin(&bad), "{bad:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_a_digest_of_the_token_and_only_it_signs_in() {
        let auth = Auth {
            admin_token: Some("s3cret-token".into()),
            ..Auth::default()
        };
        let value = session_value("s3cret-token");
        assert!(!value.contains("s3cret"));
        assert_ne!(value, session_value("other-token"));
        assert!(has_session(
            &auth,
            &headers(&[("cookie", &format!("a=b; {COOKIE}={value}"))])
        ));
        assert!(!has_session(
            &auth,
            &headers(&[("cookie", &format!("{COOKIE}={}", session_value("x")))])
        ));
        assert!(!has_session(&auth, &headers(&[])));
        assert!(!signed_in(&auth, &headers(&[])));
        assert!(
            signed_in(&Auth::default(), &headers(&[])),
            "no token: open like the admin routes"
        );
    }
}
