//! The rep's lead page: what a signed link from an alert opens (`GET /l/{lead_id}`). Plain
//! HTML with its styles inline: no script, no third-party resource, readable on a phone.
//! Everything a lead typed is escaped. An expired, altered or dead link gets a page that
//! says so and shows nothing of the lead.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use hotlead_app::ports::{HistoryEntry, StoredLead};
use hotlead_core::alert::{Language, Routing, action_words};
use hotlead_core::rules::{Dropped, RuleSet};
use hotlead_core::score::Evidence;
use hotlead_core::stage::{Change, RepAction, Stages};
use hotlead_core::{Event, Lead};

/// Events shown on the page, newest first.
pub const PAGE_EVENTS: usize = 50;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// An address for a `mailto:` link, percent-encoded but for letters, digits and `@._+-`:
/// an address a form gave with `?`, `&` or `%` in it cannot add headers (a `bcc`, a
/// body) to the rep's mail.
pub fn mailto_address(email: &str) -> String {
    hotlead_app::links::percent_encoded(email, b"@._+-")
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Hiragino Sans','Noto Sans JP',sans-serif;margin:0;background:#f5f6f8;color:#1d2433;line-height:1.5}\
main{max-width:44rem;margin:0 auto;padding:1rem}\
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}\
.card{background:#fff;border-radius:.6rem;padding:1rem;box-shadow:0 1px 2px rgba(0,0,0,.08)}\
.score{display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}.total{font-size:2.4rem;font-weight:700}\
.band{padding:.1rem .6rem;border-radius:1rem;font-weight:600;color:#fff}.hot{background:#c62828}.warm{background:#ef6c00}.cold{background:#546e7a}\
table{width:100%;border-collapse:collapse}td{padding:.45rem .3rem;border-top:1px solid #e6e8ec;vertical-align:top}\
td.pts{text-align:right;white-space:nowrap;font-weight:600;width:4.5rem}.neg{color:#c62828}\
.ev{color:#5b6474;font-size:.9rem}.muted{color:#8a93a3}.tag{font-size:.75rem;border:1px solid #c5cad3;border-radius:.3rem;padding:0 .3rem;margin-left:.3rem;color:#5b6474}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:.6rem 0 0}dt{color:#5b6474}dd{margin:0;overflow-wrap:anywhere}\
footer{margin:1.5rem 0;color:#8a93a3;font-size:.8rem}.actions{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:.8rem}.actions form{margin:0}button,.button{font:inherit;font-weight:600;border:0;border-radius:.4rem;padding:.6rem 1rem;background:#1d4ed8;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}button.secondary,.button.secondary{background:#e6e8ec;color:#1d2433}button.danger{background:#b91c1c}.notice{background:#e8f5e9;border-left:4px solid #2e7d32;padding:.6rem .8rem;border-radius:.3rem;margin-bottom:1rem}.caution{background:#fff4e0;border-left:4px solid #b45309;padding:.6rem .8rem;border-radius:.3rem;margin-bottom:1rem}.problem{background:#fdecea;border-left:4px solid #c62828;padding:.6rem .8rem;border-radius:.3rem;margin-bottom:1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}input[type=text],select{font:inherit;width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #c5cad3;border-radius:.3rem}";

pub(crate) fn page(language: Language, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        language.code(),
        escape(title)
    )
}

/// Why a link opens no lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Altered, malformed, or signed with another secret.
    Invalid,
    Expired,
    /// The lead is no longer stored (erased).
    Gone,
    /// This server makes no links (no link secret is configured).
    Off,
}

impl From<hotlead_app::pages::PageRefusal> for Refusal {
    fn from(refused: hotlead_app::pages::PageRefusal) -> Self {
        use hotlead_app::pages::PageRefusal;
        match refused {
            PageRefusal::Invalid => Refusal::Invalid,
            PageRefusal::Expired => Refusal::Expired,
            PageRefusal::Gone => Refusal::Gone,
        }
    }
}

impl Refusal {
    /// The status its page is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Invalid => StatusCode::FORBIDDEN,
            Refusal::Expired => StatusCode::GONE,
            Refusal::Gone | Refusal::Off => StatusCode::NOT_FOUND,
        }
    }
}

/// An HTML page as sent: never cached, never framed, no referrer, no script allowed, not
/// indexed.
pub fn response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
    response
}

/// The page of a link that opens nothing: what happened, and nothing of the lead; in the
/// link's language, or in both when it names none.
pub fn refusal(refusal: Refusal, language: Option<Language>) -> String {
    match language {
        Some(language) => {
            let (title, text) = refusal_words(refusal, language);
            page(language, title, &refusal_card(title, text))
        }
        None => {
            let (title, text) = refusal_words(refusal, Language::Ja);
            let (title_en, text_en) = refusal_words(refusal, Language::En);
            page(
                Language::Ja,
                &format!("{title} / {title_en}"),
                &format!(
                    "{}<div lang=\"en\">{}</div>",
                    refusal_card(title, text),
                    refusal_card(title_en, text_en)
                ),
            )
        }
    }
}

fn refusal_card(title: &str, text: &str) -> String {
    format!(
        "<div class=\"card\"><h1>{}</h1><p>{}</p></div>",
        escape(title),
        escape(text)
    )
}

fn refusal_words(refusal: Refusal, language: Language) -> (&'static str, &'static str) {
    match (refusal, language) {
        (Refusal::Invalid, Language::Ja) => (
            "リンクが無効です",
            "このリンクは無効です。アラートのリンクをそのまま開いてください。",
        ),
        (Refusal::Invalid, Language::En) => (
            "This link is not valid",
            "This link is not valid. Open the link from the alert as it is.",
        ),
        (Refusal::Expired, Language::Ja) => (
            "リンクの有効期限が切れています",
            "このリンクの有効期限が切れています。新しいアラートのリンクを使ってください。",
        ),
        (Refusal::Expired, Language::En) => (
            "This link has expired",
            "This link has expired. Use the link of a newer alert.",
        ),
        (Refusal::Gone, Language::Ja) => (
            "このリードは表示できません",
            "このリードはもう保存されていません。",
        ),
        (Refusal::Gone, Language::En) => (
            "This lead is not available",
            "This lead is no longer stored.",
        ),
        (Refusal::Off, Language::Ja) => (
            "リードページは利用できません",
            "このサーバーではリードページが設定されていません。",
        ),
        (Refusal::Off, Language::En) => (
            "Lead pages are not available",
            "Lead pages are not set up on this server.",
        ),
    }
}

/// What the page shows of a lead.
#[derive(Debug)]
pub struct LeadPage<'a> {
    pub lead: &'a StoredLead,
    /// The lead's events, any order.
    pub events: &'a [Event],
    /// The active rules: their time zone for dates, their filters to mark bots and
    /// internal traffic.
    pub rules: Option<&'a RuleSet>,
    pub language: Language,
    pub now: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// Band and stage changes and reps' actions, oldest first.
    pub history: &'a [HistoryEntry],
    /// The active rules' stages (none without rules).
    pub stages: &'a Stages,
    /// Whose lead it is.
    pub routing: &'a Routing,
    /// The link's own query (`e=..&l=..&s=..`), carried by the action forms.
    pub link: &'a LinkParts,
    /// The action just recorded (the page after a confirmation).
    pub done: Option<RepAction>,
}

/// A link's query values, as the page's forms carry them on.
#[derive(Debug, Clone)]
pub struct LinkParts {
    pub expires: String,
    pub language: String,
    pub signature: String,
}

impl LinkParts {
    /// `e=..&l=..&s=..`, encoded for a URL.
    pub fn query(&self) -> String {
        let keep = b"-._~";
        format!(
            "e={}&l={}&s={}",
            hotlead_app::links::percent_encoded(&self.expires, keep),
            hotlead_app::links::percent_encoded(&self.language, keep),
            hotlead_app::links::percent_encoded(&self.signature, keep)
        )
    }

    /// Hidden inputs carrying the link on (a GET form's query).
    fn hidden(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"e\" value=\"{}\"><input type=\"hidden\" name=\"l\" value=\"{}\"><input type=\"hidden\" name=\"s\" value=\"{}\">",
            escape(&self.expires),
            escape(&self.language),
            escape(&self.signature)
        )
    }
}

/// A lead id as one segment of a relative URL.
fn segment(id: &str) -> String {
    hotlead_app::links::percent_encoded(id, b"-._~")
}

fn action_name(action: RepAction, language: Language) -> &'static str {
    match action {
        RepAction::Accept => t(language, "受け入れる", "Accept"),
        RepAction::Reject => t(language, "却下する", "Reject"),
        RepAction::Contacted => t(language, "連絡済みにする", "Mark contacted"),
    }
}

fn action_done(action: RepAction, language: Language) -> &'static str {
    match action {
        RepAction::Accept => t(language, "受け入れ", "Accepted"),
        RepAction::Reject => t(language, "却下", "Rejected"),
        RepAction::Contacted => t(language, "連絡済み", "Contacted"),
    }
}

fn local_time(at: DateTime<Utc>, offset: FixedOffset) -> String {
    at.with_timezone(&offset)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn offset_of(rules: Option<&RuleSet>) -> FixedOffset {
    rules
        .map(|r| r.utc_offset)
        .unwrap_or_else(|| FixedOffset::east_opt(9 * 3600).unwrap_or_else(|| unreachable!()))
}

/// One history entry in words.
fn history_words(entry: &HistoryEntry, stages: &Stages, language: Language) -> String {
    match &entry.change {
        Change::Band {
            from, to, score, ..
        } => format!(
            "{} {} → {} ({score})",
            t(language, "バンド", "Band"),
            from.map_or("—".to_string(), |b| b.as_str().to_uppercase()),
            to.as_str().to_uppercase()
        ),
        Change::Stage { from, to } => format!(
            "{} {} → {}",
            t(language, "ステージ", "Stage"),
            from.as_deref().map_or("—", |f| stages.label(f)),
            stages.label(to)
        ),
        Change::Action { action, reason } => match reason {
            Some(reason) => format!("{}: {reason}", action_done(*action, language)),
            None => action_done(*action, language).to_string(),
        },
    }
}

pub(crate) fn t(language: Language, ja: &'static str, en: &'static str) -> &'static str {
    match language {
        Language::Ja => ja,
        Language::En => en,
    }
}

/// The lead's page.
pub fn lead_page(view: &LeadPage<'_>) -> String {
    let language = view.language;
    let offset = offset_of(view.rules);
    let lead: Lead = view.lead.to_lead();
    let value = |name: &str| {
        lead.get(name)
            .map(|v| v.raw.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let company = value("company");
    let name = value("name");
    let heading = match (&company, &name) {
        (Some(c), Some(n)) => format!("{c} {n}{}", t(language, " 様", "")),
        (Some(c), None) => c.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => t(language, "(氏名未登録)", "(no name yet)").to_string(),
    };
    let mut body = String::new();
    if let Some(done) = view.done {
        body.push_str(&format!(
            "<div class=\"notice\" role=\"status\">{}: {}</div>",
            t(language, "記録しました", "Recorded"),
            action_done(done, language)
        ));
    }
    body.push_str("<div class=\"card\">");
    body.push_str(&format!("<h1>{}</h1>", escape(&heading)));
    if let Some(title) = value("title") {
        body.push_str(&format!("<div class=\"muted\">{}</div>", escape(&title)));
    }
    body.push_str("<dl>");
    let mut row = |label: &str, value: String| {
        body.push_str(&format!("<dt>{}</dt><dd>{value}</dd>", escape(label)));
    };
    if let Some(email) = lead.email() {
        row(
            t(language, "メール", "E-mail"),
            format!(
                "<a href=\"mailto:{}\">{}</a>",
                mailto_address(email),
                escape(email)
            ),
        );
    }
    if let Some(phone) = value("phone") {
        let digits: String = phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        row(
            t(language, "電話", "Phone"),
            format!("<a href=\"tel:{}\">{}</a>", escape(&digits), escape(&phone)),
        );
    }
    for (label_ja, label_en, attribute) in [
        ("従業員数", "Employees", "employees"),
        ("業種", "Industry", "industry"),
        ("所在地", "Location", "prefecture"),
    ] {
        if let Some(v) = value(attribute) {
            row(t(language, label_ja, label_en), escape(&v));
        }
    }
    body.push_str("</dl></div>");

    match &view.lead.score {
        None => body.push_str(&format!(
            "<h2>{}</h2><div class=\"card muted\">{}</div>",
            t(language, "スコア", "Score"),
            t(language, "まだスコアがありません。", "Not scored yet.")
        )),
        Some(score) => {
            let band = score.band.as_str();
            body.push_str(&format!(
                "<h2>{}</h2><div class=\"card\"><div class=\"score\"><span class=\"total\">{}</span>\
                 <span class=\"band {band}\">{}</span><span>{} {}</span></div>",
                t(language, "スコア", "Score"),
                escape(&score.score.to_string()),
                escape(&band.to_uppercase()),
                t(language, "グレード", "Grade"),
                escape(&score.grade),
            ));
            if let Some(excluded) = &score.excluded {
                body.push_str(&format!("<p class=\"muted\">{}</p>", escape(excluded)));
            }
            body.push_str(&format!("<h2>{}</h2><table>", t(language, "理由", "Why")));
            for contribution in &score.contributions {
                let class = if contribution.points.is_negative() {
                    "pts neg"
                } else {
                    "pts"
                };
                let sign = if contribution.points.is_negative() {
                    ""
                } else {
                    "+"
                };
                let evidence = evidence_text(&contribution.evidence, offset, language);
                let note = contribution
                    .note
                    .as_deref()
                    .map(|n| format!(" · {}", escape(n)))
                    .unwrap_or_default();
                body.push_str(&format!(
                    "<tr><td class=\"{class}\">{sign}{}</td><td>{}<div class=\"ev\">{}{note}</div></td></tr>",
                    escape(&contribution.points.to_string()),
                    escape(&contribution.label),
                    escape(&evidence),
                ));
            }
            body.push_str("</table>");
            body.push_str(&format!(
                "<p class=\"ev\">{} {} · {} {}</p></div>",
                t(language, "ルール", "Rules"),
                escape(&format!("{} v{}", score.rules.name, score.rules.version)),
                t(language, "計算", "Scored"),
                escape(
                    &score
                        .at
                        .with_timezone(&offset)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                ),
            ));
        }
    }

    body.push_str(&follow_up_card(view, offset));

    let mut events: Vec<&Event> = view.events.iter().collect();
    events.sort_by(|a, b| (b.timestamp, &b.message_id).cmp(&(a.timestamp, &a.message_id)));
    body.push_str(&format!(
        "<h2>{}</h2><div class=\"card\"><table>",
        t(language, "最近の行動", "Recent activity")
    ));
    if events.is_empty() {
        body.push_str(&format!(
            "<tr><td class=\"muted\">{}</td></tr>",
            t(language, "まだありません。", "None yet.")
        ));
    }
    for event in events.iter().take(PAGE_EVENTS) {
        let mark = match view.rules.and_then(|r| r.filters.drops(event)) {
            Some(dropped) => format!(
                "<span class=\"tag\">{}</span>",
                dropped_words(dropped, language)
            ),
            None if event.timestamp > view.now => format!(
                "<span class=\"tag\">{}</span>",
                t(language, "未来の時刻", "future time")
            ),
            None => String::new(),
        };
        body.push_str(&format!(
            "<tr><td class=\"ev\" style=\"white-space:nowrap;width:8.5rem\">{}</td><td>{}{mark}</td></tr>",
            escape(
                &event
                    .timestamp
                    .with_timezone(&offset)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            ),
            escape(&action_words(event, language)),
        ));
    }
    body.push_str("</table></div>");
    body.push_str(&format!(
        "<footer>{} {} · {}</footer>",
        t(language, "このリンクの有効期限:", "This link works until"),
        escape(
            &view
                .expires
                .with_timezone(&offset)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        ),
        escape(&view.lead.id),
    ));
    page(language, &heading, &body)
}

/// The stage, the owner, the actions a rep can take, and the lead's history.
fn follow_up_card(view: &LeadPage<'_>, offset: FixedOffset) -> String {
    let language = view.language;
    let mut body = format!(
        "<h2>{}</h2><div class=\"card\" id=\"follow-up\"><dl>",
        t(language, "フォローアップ", "Follow-up")
    );
    let stage = view.lead.stage.as_ref();
    let stage_text = match stage {
        Some(stage) => {
            let owner = view
                .stages
                .get(&stage.id)
                .and_then(|s| s.owner.as_deref())
                .map(|o| format!(" · {}", escape(o)))
                .unwrap_or_default();
            format!(
                "<strong id=\"stage\">{}</strong>{owner} <span class=\"ev\">{} {}</span>",
                escape(view.stages.label(&stage.id)),
                t(language, "から", "since"),
                escape(&local_time(stage.since, offset))
            )
        }
        None => format!(
            "<span id=\"stage\" class=\"muted\">{}</span>",
            t(language, "なし", "none")
        ),
    };
    body.push_str(&format!(
        "<dt>{}</dt><dd>{stage_text}</dd>",
        t(language, "ステージ", "Stage")
    ));
    let owner = view
        .routing
        .owner
        .as_deref()
        .map(escape)
        .unwrap_or_else(|| t(language, "(未割り当て)", "(unassigned)").to_string());
    body.push_str(&format!(
        "<dt>{}</dt><dd>{owner} <span class=\"ev\">{} {}</span></dd></dl>",
        t(language, "担当", "Owner"),
        t(language, "テリトリー", "territory"),
        escape(&view.routing.territory)
    ));
    body.push_str("<div class=\"actions\">");
    for action in RepAction::ALL {
        if !view.stages.offers(action) {
            continue;
        }
        let class = match action {
            RepAction::Accept => "",
            RepAction::Reject => " class=\"danger\"",
            RepAction::Contacted => " class=\"secondary\"",
        };
        body.push_str(&format!(
            "<form method=\"get\" action=\"{}/{}\">{}<button type=\"submit\"{class}>{}</button></form>",
            segment(&view.lead.id),
            action.as_str(),
            view.link.hidden(),
            action_name(action, language)
        ));
    }
    body.push_str("</div>");
    body.push_str(&format!(
        "<h2>{}</h2><table id=\"history\">",
        t(language, "履歴", "History")
    ));
    if view.history.is_empty() {
        body.push_str(&format!(
            "<tr><td class=\"muted\">{}</td></tr>",
            t(language, "まだありません。", "None yet.")
        ));
    }
    for entry in view.history.iter().rev() {
        body.push_str(&format!(
            "<tr><td class=\"ev\" style=\"white-space:nowrap;width:8.5rem\">{}</td><td>{}<div class=\"ev\">{}</div></td></tr>",
            escape(&local_time(entry.at, offset)),
            escape(&history_words(entry, view.stages, language)),
            escape(&entry.by)
        ));
    }
    body.push_str("</table></div>");
    body
}

/// What a confirmation page shows.
#[derive(Debug)]
pub struct Confirmation<'a> {
    pub lead: &'a StoredLead,
    pub action: RepAction,
    pub language: Language,
    pub link: &'a LinkParts,
    /// The reasons a reject picks from.
    pub reasons: &'a [String],
    /// The one-time token of this confirmation.
    pub token: &'a str,
    /// The name the form starts with (the lead's routed owner).
    pub by: &'a str,
    /// What was wrong with the last try, when it is shown again.
    pub problem: Option<&'a str>,
}

/// The page that confirms a rep's action: one more click records it. A GET shows it, so
/// a mail scanner that follows links changes nothing.
pub fn confirmation(view: &Confirmation<'_>) -> String {
    let language = view.language;
    let lead = view.lead.to_lead();
    let who = ["company", "name"]
        .iter()
        .filter_map(|name| lead.get(name).map(|v| v.raw.trim().to_string()))
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let title = format!("{}: {}", action_name(view.action, language), who);
    let mut body = String::new();
    if let Some(problem) = view.problem {
        body.push_str(&format!(
            "<div class=\"problem\" role=\"alert\">{}</div>",
            escape(problem)
        ));
    }
    body.push_str(&format!(
        "<div class=\"card\"><h1>{}</h1><p>{}</p>",
        escape(&title),
        escape(
            match &view.lead.score {
                Some(score) => format!(
                    "{} {} · {}",
                    t(language, "スコア", "Score"),
                    score.score,
                    score.band.as_str().to_uppercase()
                ),
                None => String::new(),
            }
            .as_str()
        )
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}?{}\">",
        view.action.as_str(),
        escape(&view.link.query())
    ));
    body.push_str(&format!(
        "<input type=\"hidden\" name=\"token\" value=\"{}\">",
        escape(view.token)
    ));
    body.push_str(&format!(
        "<label for=\"by\">{}</label><input type=\"text\" id=\"by\" name=\"by\" required maxlength=\"{}\" value=\"{}\">",
        t(language, "あなたの名前", "Your name"),
        hotlead_app::pages::MAX_BY_CHARS,
        escape(view.by)
    ));
    if view.action == RepAction::Reject {
        body.push_str(&format!(
            "<label for=\"reason\">{}</label><select id=\"reason\" name=\"reason\" required><option value=\"\"></option>",
            t(language, "理由", "Reason")
        ));
        for reason in view.reasons {
            body.push_str(&format!(
                "<option value=\"{0}\">{0}</option>",
                escape(reason)
            ));
        }
        body.push_str("</select>");
    }
    body.push_str(&format!(
        "<div class=\"actions\"><button type=\"submit\" id=\"confirm\">{}</button>\
         <a class=\"button secondary\" href=\"../{}?{}\">{}</a></div></form></div>",
        t(language, "確定する", "Confirm"),
        segment(&view.lead.id),
        escape(&view.link.query()),
        t(language, "戻る", "Back")
    ));
    page(language, &title, &body)
}

/// What the rules dropped an event as (a bot, the company's own network), in words.
fn dropped_words(dropped: Dropped, language: Language) -> &'static str {
    match dropped {
        Dropped::Bot => t(language, "ボット", "bot"),
        Dropped::InternalNetwork => t(language, "社内アクセス", "internal"),
    }
}

/// A contribution's evidence in words (as the explanation has it).
fn evidence_text(evidence: &Evidence, offset: FixedOffset, language: Language) -> String {
    match evidence {
        Evidence::Attributes { attributes } => attributes
            .iter()
            .map(|a| match &a.raw {
                Some(raw) => format!("{}: {raw}", a.attribute),
                None => format!("{}: {}", a.attribute, t(language, "未回答", "not given")),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Evidence::Events { count, last, .. } => match language {
            Language::Ja => format!(
                "{count}件, 最終 {}",
                last.with_timezone(&offset).format("%Y-%m-%d")
            ),
            Language::En => format!(
                "{count} event(s), last {}",
                last.with_timezone(&offset).format("%Y-%m-%d")
            ),
        },
        Evidence::GroupCap { uncapped, limit } => match language {
            Language::Ja => format!("上限 {limit} (合計 {uncapped})"),
            Language::En => format!("capped at {limit} (from {uncapped})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailto_link_carries_the_address_only() {
        assert_eq!(
            mailto_address("sato.h+sales@example.co.jp"),
            "sato.h+sales@example.co.jp"
        );
        let hostile = mailto_address("ceo@big.example?bcc=spy%40evil.example&body=x\"><b>");
        assert!(
            !hostile.contains(['?', '&', '"', '<', '>', ' ']),
            "{hostile}"
        );
        assert!(
            hostile.starts_with("ceo@big.example%3Fbcc%3Dspy%2540evil.example%26"),
            "{hostile}"
        );
    }

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>\u{7}"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
