//! The alert a rep reads: who, why (the top reasons in plain words), what they did
//! recently, score and band, and a link to the lead; in Japanese or English.
//!
//! Composing is pure: the caller decides *when* an alert is due (a hot crossing or an
//! instant-alert event) and passes the routing it looked up.

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType};
use crate::lead::Lead;
use crate::score::{AlertTrigger, Score};

/// How many reasons and recent actions an alert lists.
pub const TOP_REASONS: usize = 5;
pub const RECENT_ACTIONS: usize = 5;

/// The language of alert texts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Ja,
    En,
}

/// Why an alert goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertReason {
    /// The lead entered the hot band; `crossing` counts its entries (1 = first time).
    BecameHot { crossing: u32 },
    /// A high-intent action matched an instant-alert rule.
    Instant(AlertTrigger),
}

impl AlertReason {
    /// A key unique per crossing or per triggering event: the outbox keeps one alert per key.
    pub fn dedupe_key(&self, lead_id: &str) -> String {
        match self {
            AlertReason::BecameHot { crossing } => format!("hot:{lead_id}:{crossing}"),
            AlertReason::Instant(t) => format!("instant:{lead_id}:{}:{}", t.alert, t.message_id),
        }
    }

    /// `hot`, or `instant:<alert id>`.
    pub fn code(&self) -> String {
        match self {
            AlertReason::BecameHot { .. } => "hot".to_string(),
            AlertReason::Instant(t) => format!("instant:{}", t.alert),
        }
    }
}

/// Where an alert goes: SNS message attributes / e-mail filter policies use these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    pub territory: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// A composed alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub lead_id: String,
    /// `hot` or `instant:<alert id>`.
    pub reason: String,
    pub subject: String,
    pub body: String,
    pub score: f64,
    pub band: String,
    pub grade: String,
    pub routing: Routing,
    pub lead_url: String,
}

fn attribute<'a>(lead: &'a Lead, name: &str) -> Option<&'a str> {
    lead.get(name).map(|v| v.raw.trim())
}

fn action_words(event: &Event, language: Language) -> String {
    let what = match (event.kind, language) {
        (EventType::Page, Language::Ja) => "ページ閲覧",
        (EventType::Page, Language::En) => "Viewed",
        (EventType::Track, _) => "",
        (EventType::Identify, Language::Ja) => "情報更新",
        (EventType::Identify, Language::En) => "Identified",
        (_, _) => event.kind.as_str(),
    };
    let detail = match event.kind {
        EventType::Page | EventType::Screen => event
            .path
            .clone()
            .or(event.name.clone())
            .unwrap_or_default(),
        _ => event.name.clone().unwrap_or_default(),
    };
    [what, detail.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How an alert is written: language, time zone of its dates, and the link to the lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    pub language: Language,
    pub offset: FixedOffset,
    pub lead_url: String,
}

/// Composes the alert for `lead` at `score`. `recent` are the lead's events (any order).
pub fn compose(
    lead: &Lead,
    score: &Score,
    reason: &AlertReason,
    recent: &[Event],
    routing: Routing,
    presentation: &Presentation,
) -> AlertMessage {
    let Presentation {
        language,
        offset,
        lead_url,
    } = presentation;
    let (language, offset, lead_url) = (*language, *offset, lead_url.as_str());
    let company = attribute(lead, "company").unwrap_or("");
    let name = attribute(lead, "name").unwrap_or("");
    let title = attribute(lead, "title");
    let who = match (company, name, language) {
        ("", "", Language::Ja) => "(氏名未登録)".to_string(),
        ("", "", Language::En) => "(no name yet)".to_string(),
        (c, "", _) => c.to_string(),
        ("", n, Language::Ja) => format!("{n} 様"),
        ("", n, Language::En) => n.to_string(),
        (c, n, Language::Ja) => format!("{c} {n} 様"),
        (c, n, Language::En) => format!("{n}, {c}"),
    };
    let band = score.band.as_str().to_uppercase();
    let subject = match (reason, language) {
        (AlertReason::BecameHot { .. }, Language::Ja) => {
            format!("[ホットリード] {who} (スコア {})", score.score)
        }
        (AlertReason::BecameHot { .. }, Language::En) => {
            format!("[Hot lead] {who} (score {})", score.score)
        }
        (AlertReason::Instant(t), Language::Ja) => format!("[即時アラート] {}: {who}", t.label),
        (AlertReason::Instant(t), Language::En) => format!("[Instant alert] {}: {who}", t.label),
    };

    let mut body = String::new();
    let line = |body: &mut String, text: String| {
        body.push_str(&text);
        body.push('\n');
    };
    match (reason, language) {
        (AlertReason::BecameHot { .. }, Language::Ja) => {
            line(&mut body, format!("{who} がホットリードになりました。"))
        }
        (AlertReason::BecameHot { .. }, Language::En) => {
            line(&mut body, format!("{who} is now a hot lead."))
        }
        (AlertReason::Instant(t), Language::Ja) => line(
            &mut body,
            format!(
                "{who}: {} ({})",
                t.label,
                t.timestamp.with_timezone(&offset).format("%Y-%m-%d %H:%M")
            ),
        ),
        (AlertReason::Instant(t), Language::En) => line(
            &mut body,
            format!(
                "{who}: {} ({})",
                t.label,
                t.timestamp.with_timezone(&offset).format("%Y-%m-%d %H:%M")
            ),
        ),
    }
    if let Some(title) = title {
        line(
            &mut body,
            format!(
                "{}: {title}",
                if language == Language::Ja {
                    "役職"
                } else {
                    "Title"
                }
            ),
        );
    }
    if let Some(email) = lead.email() {
        line(
            &mut body,
            format!(
                "{}: {email}",
                if language == Language::Ja {
                    "メール"
                } else {
                    "E-mail"
                }
            ),
        );
    }
    if let Some(phone) = attribute(lead, "phone") {
        line(
            &mut body,
            format!(
                "{}: {phone}",
                if language == Language::Ja {
                    "電話"
                } else {
                    "Phone"
                }
            ),
        );
    }
    line(
        &mut body,
        match language {
            Language::Ja => format!("スコア: {} ({band}, グレード {})", score.score, score.grade),
            Language::En => format!("Score: {} ({band}, grade {})", score.score, score.grade),
        },
    );
    body.push('\n');
    line(
        &mut body,
        (if language == Language::Ja {
            "理由:"
        } else {
            "Why:"
        })
        .to_string(),
    );
    let mut reasons: Vec<_> = score
        .contributions
        .iter()
        .filter(|c| !c.rule.starts_with("cap:"))
        .collect();
    reasons.sort_by_key(|c| std::cmp::Reverse(c.points));
    for contribution in reasons.iter().take(TOP_REASONS) {
        line(&mut body, format!("  {}", contribution.describe(offset)));
    }
    let mut events: Vec<&Event> = recent.iter().collect();
    events.sort_by(|a, b| (b.timestamp, &b.message_id).cmp(&(a.timestamp, &a.message_id)));
    if !events.is_empty() {
        body.push('\n');
        line(
            &mut body,
            (if language == Language::Ja {
                "最近の行動:"
            } else {
                "Recent activity:"
            })
            .to_string(),
        );
        for event in events.iter().take(RECENT_ACTIONS) {
            line(
                &mut body,
                format!(
                    "  {}  {}",
                    event
                        .timestamp
                        .with_timezone(&offset)
                        .format("%Y-%m-%d %H:%M"),
                    action_words(event, language)
                ),
            );
        }
    }
    body.push('\n');
    line(
        &mut body,
        format!(
            "{}: {lead_url}",
            if language == Language::Ja {
                "リード詳細"
            } else {
                "Lead"
            }
        ),
    );

    AlertMessage {
        lead_id: score.lead_id.clone(),
        reason: reason.code(),
        subject,
        body,
        score: score.score.as_f64(),
        band: score.band.to_string(),
        grade: score.grade.clone(),
        routing,
        lead_url: lead_url.to_string(),
    }
}
