//! The alert a rep reads: who, why (the top reasons in plain words), what they did
//! recently, score and band, and a link to the lead; in Japanese or English.
//!
//! Composing is pure: the caller decides *when* an alert is due (a hot crossing or an
//! instant-alert event) and passes the routing it looked up.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType};
use crate::lead::Lead;
use crate::rules::RuleSet;
use crate::score::{AlertTrigger, Score};

/// How many reasons and recent actions an alert lists.
pub const TOP_REASONS: usize = 5;
pub const RECENT_ACTIONS: usize = 5;
/// Longest subject, in characters (SNS takes fewer than 100).
pub const MAX_SUBJECT_CHARS: usize = 99;
/// Longest line of an alert's body, in characters.
pub const MAX_LINE_CHARS: usize = 300;
/// Longest value a lead gave (a name, a company) as an alert shows it, in characters.
pub const MAX_VALUE_CHARS: usize = 80;

/// Characters that change how text around them displays without being seen: zero-width
/// characters and bidirectional overrides (which can make a name read backwards).
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Text made safe for one line of an alert: control characters (tabs, line breaks),
/// line and paragraph separators and invisible characters become spaces, runs of spaces
/// one, and the result is cut on a character boundary to at most `max_chars` characters
/// (the last one `…` when cut). Emoji and markup stay as text.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut words = String::new();
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() || invisible(c) {
            if !words.is_empty() && !words.ends_with(' ') {
                words.push(' ');
            }
        } else {
            words.push(c);
        }
    }
    let words = words.trim_end();
    if words.chars().count() <= max_chars {
        return words.to_string();
    }
    let mut cut: String = words.chars().take(max_chars.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// The language of alert texts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Ja,
    En,
}

impl Language {
    /// `ja` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        match code {
            "ja" => Some(Language::Ja),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// Why an alert goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertReason {
    /// The lead entered the hot band; `crossing` counts its entries (1 = first time).
    BecameHot { crossing: u32 },
    /// A high-intent action matched an instant-alert rule.
    Instant(AlertTrigger),
    /// The hot alert of `crossing` had no rep's action by its deadline: the one re-alert.
    FollowUpMissed {
        crossing: u32,
        alerted_at: DateTime<Utc>,
    },
}

impl AlertReason {
    /// A key unique per crossing or per triggering event: the outbox keeps one alert per key.
    pub fn dedupe_key(&self, lead_id: &str) -> String {
        match self {
            AlertReason::BecameHot { crossing } => format!("hot:{lead_id}:{crossing}"),
            AlertReason::Instant(t) => format!("instant:{lead_id}:{}:{}", t.alert, t.message_id),
            AlertReason::FollowUpMissed { crossing, .. } => format!("sla:{lead_id}:{crossing}"),
        }
    }

    /// `hot`, or `instant:<alert id>`.
    pub fn code(&self) -> String {
        match self {
            AlertReason::BecameHot { .. } => "hot".to_string(),
            AlertReason::Instant(t) => format!("instant:{}", t.alert),
            AlertReason::FollowUpMissed { .. } => "sla".to_string(),
        }
    }
}

/// The last instant alert of one rule for a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastInstant {
    /// When it was raised (the scorer's "now").
    pub raised_at: DateTime<Utc>,
    /// The action it was about.
    pub action_at: DateTime<Utc>,
    pub message_id: String,
    /// Matching actions since that raised no alert of their own (within the rule's
    /// look-back).
    #[serde(default)]
    pub held_back: u32,
}

/// Which instant alerts to raise now, and the state to carry to the next score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Throttled {
    pub raise: Vec<AlertTrigger>,
    pub state: BTreeMap<String, LastInstant>,
}

impl Throttled {
    /// Actions held back in all, over every rule.
    pub fn held_back(&self) -> u32 {
        self.state.values().map(|l| l.held_back).sum()
    }
}

/// Flood control for instant alerts: per lead and alert rule, at most one alert per the
/// rule's `once_per_hours`, about the newest action not alerted before. Actions no newer
/// than the last alerted one never raise again (a replayed or back-dated call cannot
/// re-alert); actions within the quiet time are held back and counted. Pure: the same
/// previous state, triggers and `now` give the same answer.
pub fn throttle(
    rules: &RuleSet,
    previous: &BTreeMap<String, LastInstant>,
    triggers: &[AlertTrigger],
    now: DateTime<Utc>,
) -> Throttled {
    let mut throttled = Throttled {
        raise: Vec::new(),
        state: previous.clone(),
    };
    for rule in &rules.alerts {
        let last = previous.get(&rule.id);
        let mut fresh: Vec<&AlertTrigger> = triggers
            .iter()
            .filter(|t| t.alert == rule.id)
            .filter(|t| {
                last.is_none_or(|l| {
                    (t.timestamp, t.message_id.as_str()) > (l.action_at, l.message_id.as_str())
                })
            })
            .collect();
        fresh.sort_by(|a, b| (a.timestamp, &a.message_id).cmp(&(b.timestamp, &b.message_id)));
        let Some(newest) = fresh.last() else {
            continue;
        };
        let quiet = last.is_some_and(|l| now < l.raised_at + rule.once_per);
        let raised: &[&AlertTrigger] = if quiet {
            &[]
        } else if rule.once_per.is_zero() {
            // Every action alerts.
            &fresh
        } else {
            std::slice::from_ref(newest)
        };
        throttled.raise.extend(raised.iter().map(|t| (*t).clone()));
        let held_back = u32::try_from(fresh.len() - raised.len()).unwrap_or(u32::MAX);
        let state = match last {
            Some(l) if quiet => LastInstant {
                held_back,
                ..l.clone()
            },
            _ => LastInstant {
                raised_at: now,
                action_at: newest.timestamp,
                message_id: newest.message_id.clone(),
                held_back,
            },
        };
        throttled.state.insert(rule.id.clone(), state);
    }
    throttled
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

/// A lead's value as an alert shows it: one line, bounded; `None` when empty.
fn attribute(lead: &Lead, name: &str) -> Option<String> {
    lead.get(name)
        .map(|v| one_line(&v.raw, MAX_VALUE_CHARS))
        .filter(|v| !v.is_empty())
}

/// What an event was, in a few words (`Viewed /pricing`, `ページ閲覧 /pricing`).
pub fn action_words(event: &Event, language: Language) -> String {
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
    let company = attribute(lead, "company").unwrap_or_default();
    let name = attribute(lead, "name").unwrap_or_default();
    let title = attribute(lead, "title");
    let who = match (company.as_str(), name.as_str(), language) {
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
        (AlertReason::FollowUpMissed { .. }, Language::Ja) => {
            format!("[未対応のホットリード] {who} (スコア {})", score.score)
        }
        (AlertReason::FollowUpMissed { .. }, Language::En) => {
            format!("[Hot lead not followed up] {who} (score {})", score.score)
        }
    };
    let subject = one_line(&subject, MAX_SUBJECT_CHARS);

    let mut body = String::new();
    // Every line is one line: nothing a lead typed can start a line of its own.
    let line = |body: &mut String, text: String| {
        let indent = &text[..text.len() - text.trim_start_matches(' ').len()];
        body.push_str(indent);
        body.push_str(&one_line(&text, MAX_LINE_CHARS));
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
        (AlertReason::FollowUpMissed { alerted_at, .. }, Language::Ja) => line(
            &mut body,
            format!(
                "{who} は {} にホットリードとして通知されましたが、期限までに担当者の対応が記録されていません。",
                alerted_at.with_timezone(&offset).format("%Y-%m-%d %H:%M")
            ),
        ),
        (AlertReason::FollowUpMissed { alerted_at, .. }, Language::En) => line(
            &mut body,
            format!(
                "{who} was alerted as a hot lead at {}, and no rep's action is recorded by the deadline.",
                alerted_at.with_timezone(&offset).format("%Y-%m-%d %H:%M")
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
    if let Some(email) = lead.email().map(|e| one_line(e, MAX_VALUE_CHARS)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::SEED;

    fn demo(id: &str, minutes: i64) -> AlertTrigger {
        AlertTrigger {
            alert: "demo".into(),
            label: "Demo".into(),
            message_id: id.into(),
            timestamp: DateTime::UNIX_EPOCH + chrono::Duration::minutes(minutes),
        }
    }

    #[test]
    fn instant_alerts_are_limited_per_rule_and_counted_when_held_back() {
        let rules = RuleSet::from_toml(
            "t",
            "name = \"t\"\nversion = 1\n[bands]\nhot = 50\nwarm = 20\n[groups.e]\naxis = \"engagement\"\n\
             [[alerts]]\nid = \"demo\"\nevent = { name = \"Demo Requested\" }\nonce_per_hours = 24\n",
        )
        .expect("rules");
        let at = |minutes| DateTime::UNIX_EPOCH + chrono::Duration::minutes(minutes);
        // Three requests in one minute: one alert, about the newest; two held back.
        let first = throttle(
            &rules,
            &BTreeMap::new(),
            &[demo("a", 0), demo("b", 1), demo("c", 1)],
            at(1),
        );
        assert_eq!(
            first
                .raise
                .iter()
                .map(|t| t.message_id.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(first.held_back(), 2);
        // The same triggers again (a replay, an aged rescore): nothing new.
        let again = throttle(
            &rules,
            &first.state,
            &[demo("a", 0), demo("b", 1), demo("c", 1)],
            at(30),
        );
        assert!(again.raise.is_empty());
        // More requests within the day: held back, counted.
        let more: Vec<_> = (0..30).map(|i| demo(&format!("m{i:02}"), 60 + i)).collect();
        let later = throttle(&rules, &first.state, &more, at(120));
        assert!(later.raise.is_empty());
        assert_eq!(later.held_back(), 30);
        // A back-dated call never re-alerts.
        let back = throttle(&rules, &later.state, &[demo("old", -5)], at(3_000));
        assert!(back.raise.is_empty());
        // After the quiet day, the newest action alerts.
        let next = throttle(&rules, &later.state, &more, at(25 * 60));
        assert_eq!(next.raise.len(), 1);
        assert_eq!(next.raise[0].message_id, "m29");
        assert_eq!(next.state["demo"].raised_at, at(25 * 60));
    }

    #[test]
    fn one_line_takes_out_control_and_invisible_characters_and_cuts_on_a_character() {
        assert_eq!(one_line("a\tb\r\nc\u{7}d", 99), "a b c d");
        assert_eq!(
            one_line("  株式会社\u{202E}テスト\u{200B} ", 99),
            "株式会社 テスト"
        );
        assert_eq!(one_line("😀😀😀😀", 3), "😀😀…");
        let long = one_line(&"長".repeat(300), 99);
        assert_eq!(long.chars().count(), 99);
        assert!(long.ends_with('…'));
        assert_eq!(one_line("<b>x</b>", 99), "<b>x</b>", "markup stays as text");
    }

    #[test]
    fn a_hostile_name_still_makes_a_deliverable_alert() {
        let rules = RuleSet::from_toml("seed", SEED).expect("seed rules");
        let name = format!(
            "山田\t太郎\n\r<script>alert(1)</script>😀{}",
            "x".repeat(300)
        );
        let lead = Lead::from_raw(
            "L-1",
            [
                ("email", "taro@example.co.jp"),
                ("name", name.as_str()),
                ("company", "株式会社\tテスト\n\nBcc: someone@example.com"),
                ("title", "部長\u{202E}"),
            ],
        );
        let score = crate::score(&rules, &lead, &[], chrono::DateTime::UNIX_EPOCH, None);
        for language in [Language::Ja, Language::En] {
            let alert = compose(
                &lead,
                &score,
                &AlertReason::BecameHot { crossing: 1 },
                &[],
                Routing::default(),
                &Presentation {
                    language,
                    offset: rules.utc_offset,
                    lead_url: "https://leads.example.com/v1/leads/L-1".into(),
                },
            );
            assert!(alert.subject.chars().count() < 100, "{}", alert.subject);
            assert!(
                !alert.subject.chars().any(char::is_control),
                "{:?}",
                alert.subject
            );
            assert!(alert.subject.contains("山田 太郎"), "{}", alert.subject);
            for line in alert.body.lines() {
                assert!(!line.chars().any(char::is_control), "{line:?}");
                assert!(line.chars().count() <= MAX_LINE_CHARS, "{line}");
                assert!(
                    !line.starts_with("Bcc:"),
                    "a value started a line of its own"
                );
            }
            assert!(alert.body.contains("<script>"), "markup is shown as text");
        }
    }
}
