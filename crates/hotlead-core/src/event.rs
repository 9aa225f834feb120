//! Web events, in the shape of the Segment spec (`page`, `track`, `identify`, ...).
//!
//! [`Event::from_segment`] is the one place where a Segment JSON object becomes a domain
//! event; its errors name the offending field.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::normalize;

/// The Segment call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Page,
    Screen,
    Track,
    Identify,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Page,
        EventType::Screen,
        EventType::Track,
        EventType::Identify,
        EventType::Group,
        EventType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Page => "page",
            EventType::Screen => "screen",
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Group => "group",
            EventType::Alias => "alias",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// UTM campaign fields (`context.campaign`, or the page URL's `utm_*` parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One web event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Shared: a score's evidence lists message ids without copying them.
    pub message_id: std::sync::Arc<str>,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The `event` of a `track` call, or the `name` of a `page`/`screen` call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// URL path of the page (`context.page.path`, `properties.path`, or from the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(default)]
    pub campaign: Campaign,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Why a Segment object is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct EventError {
    /// The Segment field at fault, dotted (`context.page.path`).
    pub field: String,
    pub message: String,
}

impl EventError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        EventError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

fn str_at<'a>(object: &'a Map<String, Value>, path: &str) -> Result<Option<&'a str>, EventError> {
    let mut current = object;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(value) = current.get(part) else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            return match value {
                Value::Null => Ok(None),
                Value::String(s) if s.trim().is_empty() => Ok(None),
                Value::String(s) => Ok(Some(s.as_str())),
                _ => Err(EventError::new(path, "expected a string")),
            };
        }
        match value {
            Value::Object(next) => current = next,
            Value::Null => return Ok(None),
            _ => return Err(EventError::new(path, "expected an object on the way")),
        }
    }
    Ok(None)
}

fn object_at(object: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, EventError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(EventError::new(key, "expected an object")),
    }
}

/// An id may be a string or a number in Segment payloads.
/// Longest accepted id (`messageId`, `userId`, `anonymousId`, `previousId`, an
/// idempotency key), in characters: ids become store keys, which have limits of their own.
pub const MAX_ID_CHARS: usize = 200;

/// Checks an id's length and characters: at most [`MAX_ID_CHARS`], no control characters.
pub fn check_id(field: &str, id: &str) -> Result<(), EventError> {
    if id.chars().count() > MAX_ID_CHARS {
        return Err(EventError::new(
            field,
            format!("is longer than {MAX_ID_CHARS} characters"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(EventError::new(field, "contains control characters"));
    }
    Ok(())
}

fn id_at(object: &Map<String, Value>, key: &str) -> Result<Option<String>, EventError> {
    let id = match object.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(EventError::new(key, "expected a string or a number")),
    };
    check_id(key, &id)?;
    Ok(Some(id))
}

fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            EventError::new(
                field,
                format!("expected an RFC 3339 date-time, got {text:?}"),
            )
        })
}

/// Splits `https://host/a/b?x=1#f` into its path and query.
fn path_and_query(url: &str) -> (Option<String>, Option<&str>) {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (before_query, query) = match without_fragment.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (without_fragment, None),
    };
    let after_scheme = before_query
        .split_once("://")
        .map_or(before_query, |(_, rest)| rest);
    let path = if before_query.contains("://") {
        after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
    } else {
        after_scheme
    };
    let path = (!path.is_empty()).then(|| path.to_string());
    (path, query)
}

fn campaign_from_query(query: &str) -> Campaign {
    let mut campaign = Campaign::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if value.is_empty() {
            continue;
        }
        let value = Some(percent_decode(value));
        match key {
            "utm_source" => campaign.source = value,
            "utm_medium" => campaign.medium = value,
            "utm_campaign" => campaign.name = value,
            "utm_term" => campaign.term = value,
            "utm_content" => campaign.content = value,
            _ => {}
        }
    }
    campaign
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the allocator adds to each block it gives, about: its header and rounding.
const BLOCK: usize = 16;

/// About how many bytes a heap block of `capacity` bytes takes (none when empty).
fn block_footprint(capacity: usize) -> usize {
    if capacity == 0 { 0 } else { capacity + BLOCK }
}

fn option_footprint(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, |t| block_footprint(t.capacity()))
}

/// About how many bytes a JSON object holds on the heap: `serde_json`'s map is a B-tree
/// whose nodes each have room for 11 keys and values, allocated whole, and at least half
/// full but for the first.
fn map_footprint(map: &Map<String, Value>) -> usize {
    const NODE: usize = 11 * (size_of::<String>() + size_of::<Value>()) + 16 + BLOCK;
    if map.is_empty() {
        return 0;
    }
    let nodes = if map.len() <= 11 {
        1
    } else {
        map.len().div_ceil(6)
    };
    let entries: usize = map
        .iter()
        .map(|(key, value)| block_footprint(key.capacity()) + value_footprint(value))
        .sum();
    nodes * NODE + entries
}

/// About how many bytes a JSON value holds on the heap, besides itself.
fn value_footprint(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(text) => block_footprint(text.capacity()),
        Value::Array(values) => {
            block_footprint(values.capacity() * size_of::<Value>())
                + values.iter().map(value_footprint).sum::<usize>()
        }
        Value::Object(map) => map_footprint(map),
    }
}

impl Event {
    /// About how many bytes the event takes in memory, itself and what it points to (its
    /// texts and JSON objects): what a cache of events counts against its budget. An
    /// estimate (the allocator's own rounding is guessed), but one that grows with
    /// everything a sender can make large.
    pub fn footprint(&self) -> usize {
        let campaign = &self.campaign;
        size_of::<Event>()
            // The message id's counts are beside its text.
            + block_footprint(self.message_id.len() + 2 * size_of::<usize>())
            + [
                &self.name,
                &self.user_id,
                &self.anonymous_id,
                &self.path,
                &self.url,
                &self.referrer,
                &self.user_agent,
                &campaign.source,
                &campaign.medium,
                &campaign.name,
                &campaign.term,
                &campaign.content,
            ]
            .into_iter()
            .map(option_footprint)
            .sum::<usize>()
            + map_footprint(&self.properties)
            + map_footprint(&self.traits)
    }

    /// Reads one Segment call (`type`, `messageId`, `timestamp`, `userId`/`anonymousId`,
    /// `event`/`name`, `properties`, `traits`, `context.page`, `context.campaign`,
    /// `context.ip`, `context.userAgent`).
    pub fn from_segment(value: &Value) -> Result<Event, EventError> {
        let Value::Object(object) = value else {
            return Err(EventError::new("(root)", "expected a JSON object"));
        };
        let kind_text =
            str_at(object, "type")?.ok_or_else(|| EventError::new("type", "is required"))?;
        let kind = EventType::parse(kind_text).ok_or_else(|| {
            EventError::new(
                "type",
                format!(
                    "expected one of page, screen, track, identify, group, alias; got {kind_text:?}"
                ),
            )
        })?;
        let message_id = id_at(object, "messageId")?
            .ok_or_else(|| EventError::new("messageId", "is required (it is the dedupe key)"))?;
        let (time_field, time_text) = ["timestamp", "originalTimestamp", "sentAt", "receivedAt"]
            .into_iter()
            .find_map(|f| str_at(object, f).ok().flatten().map(|t| (f, t)))
            .ok_or_else(|| EventError::new("timestamp", "is required"))?;
        let timestamp = parse_time(time_field, time_text)?;
        let user_id = id_at(object, "userId")?;
        let anonymous_id = id_at(object, "anonymousId")?;
        if user_id.is_none() && anonymous_id.is_none() && kind != EventType::Alias {
            return Err(EventError::new(
                "userId",
                "either `userId` or `anonymousId` is required",
            ));
        }
        let name = match kind {
            EventType::Track => Some(
                str_at(object, "event")?
                    .ok_or_else(|| EventError::new("event", "is required for a track call"))?
                    .trim()
                    .to_string(),
            ),
            _ => str_at(object, "name")?.map(|s| s.trim().to_string()),
        };
        let properties = object_at(object, "properties")?;
        // `context.traits` is checked whether or not top-level `traits` take its place.
        let context_traits = object
            .get("context")
            .and_then(Value::as_object)
            .map(|c| object_at(c, "traits"))
            .transpose()
            .map_err(|e| EventError::new("context.traits", e.message))?;
        let traits = match object.get("traits") {
            Some(_) => object_at(object, "traits")?,
            None => context_traits.unwrap_or_default(),
        };
        let context = object_at(object, "context")?;

        let url = str_at(object, "context.page.url")?
            .or(str_at(object, "properties.url")?)
            .map(str::to_string);
        let (url_path, url_query) = match url.as_deref() {
            Some(u) => path_and_query(u),
            None => (None, None),
        };
        let path = str_at(object, "context.page.path")?
            .or(str_at(object, "properties.path")?)
            .map(|p| path_and_query(p).0.unwrap_or_else(|| p.to_string()))
            .or(url_path);
        let referrer = str_at(object, "context.page.referrer")?
            .or(str_at(object, "properties.referrer")?)
            .map(str::to_string);

        let campaign = if context.get("campaign").is_some() {
            let get = |k: &str| -> Result<Option<String>, EventError> {
                Ok(str_at(object, &format!("context.campaign.{k}"))?.map(str::to_string))
            };
            Campaign {
                source: get("source")?,
                medium: get("medium")?,
                name: get("name")?,
                term: get("term")?,
                content: get("content")?,
            }
        } else {
            url_query.map(campaign_from_query).unwrap_or_default()
        };

        let ip = match str_at(object, "context.ip")? {
            Some(text) => Some(text.trim().parse::<IpAddr>().map_err(|_| {
                EventError::new(
                    "context.ip",
                    format!("expected an IP address, got {text:?}"),
                )
            })?),
            None => None,
        };
        let user_agent = str_at(object, "context.userAgent")?.map(str::to_string);

        Ok(Event {
            message_id: message_id.into(),
            kind,
            name,
            timestamp,
            user_id,
            anonymous_id,
            path,
            url,
            referrer,
            campaign,
            properties,
            traits,
            ip,
            user_agent,
        })
    }

    /// A property as text for matching: strings folded, numbers and booleans printed.
    pub fn property_text(&self, key: &str) -> Option<String> {
        match self.properties.get(key)? {
            Value::String(s) => Some(normalize::text(s)),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What a cache counts an event as grows with everything a sender can make large: a
    /// text, a property, a nested object, many properties.
    #[test]
    fn an_events_footprint_grows_with_what_it_holds() {
        let page = |extra: Value| {
            let mut call = json!({"type": "track", "event": "Viewed", "messageId": "m-1",
                "timestamp": "2026-10-01T10:00:00Z",
                "anonymousId": "a-1", "properties": {"plan": "pro"}});
            if let (Value::Object(call), Value::Object(extra)) = (&mut call, extra) {
                call.extend(extra);
            }
            Event::from_segment(&call).unwrap()
        };
        let small = page(json!({})).footprint();
        assert!(
            small > size_of::<Event>() + 11 * size_of::<Value>(),
            "{small}"
        );
        let long_text = page(json!({"properties": {"plan": "p".repeat(10_000)}})).footprint();
        assert!(long_text >= small + 9_990, "{long_text} against {small}");
        let nested = page(json!({"properties": {"plan": {"a": ["x".repeat(5_000)]}}})).footprint();
        assert!(nested >= small + 4_990, "{nested} against {small}");
        let many: Map<String, Value> = (0..100).map(|i| (format!("p{i}"), json!(i))).collect();
        let wide = page(json!({"properties": many})).footprint();
        assert!(
            wide >= small + 100 * (size_of::<String>() + size_of::<Value>()),
            "{wide} against {small}"
        );
        let agent = page(json!({"context": {"userAgent": "u".repeat(2_000)}})).footprint();
        assert!(agent >= small + 2_000, "{agent} against {small}");
    }

    #[test]
    fn reads_a_segment_page_call() {
        let event = Event::from_segment(&json!({
            "type": "page", "messageId": "m-1", "anonymousId": "a-1",
            "timestamp": "2026-10-01T10:00:00+09:00", "name": "Pricing",
            "context": {
                "page": {"url": "https://example.com/pricing?utm_source=google&utm_campaign=spring%20sale", "referrer": "https://google.com/"},
                "ip": "203.0.113.9", "userAgent": "Mozilla/5.0"
            }
        }))
        .unwrap();
        assert_eq!(event.kind, EventType::Page);
        assert_eq!(event.path.as_deref(), Some("/pricing"));
        assert_eq!(event.timestamp.to_rfc3339(), "2026-10-01T01:00:00+00:00");
        assert_eq!(event.campaign.source.as_deref(), Some("google"));
        assert_eq!(event.campaign.name.as_deref(), Some("spring sale"));
        assert_eq!(event.ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(event.name.as_deref(), Some("Pricing"));
    }

    #[test]
    fn reads_a_track_call_with_properties_and_campaign() {
        let event = Event::from_segment(&json!({
            "type": "track", "messageId": 42, "userId": "L1", "event": "Document Downloaded",
            "timestamp": "2026-10-01T10:00:00Z", "properties": {"document": "Whitepaper", "pages": 12},
            "context": {"campaign": {"source": "newsletter", "medium": "email"}}
        }))
        .unwrap();
        assert_eq!(&*event.message_id, "42");
        assert_eq!(event.name.as_deref(), Some("Document Downloaded"));
        assert_eq!(
            event.property_text("document").as_deref(),
            Some("whitepaper")
        );
        assert_eq!(event.property_text("pages").as_deref(), Some("12"));
        assert_eq!(event.campaign.medium.as_deref(), Some("email"));
        assert_eq!(event.path, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!([]), "(root)"),
            (
                json!({"messageId": "m", "userId": "u", "timestamp": "2026-10-01T00:00:00Z"}),
                "type",
            ),
            (
                json!({"type": "click", "messageId": "m", "userId": "u", "timestamp": "2026-10-01T00:00:00Z"}),
                "type",
            ),
            (
                json!({"type": "page", "userId": "u", "timestamp": "2026-10-01T00:00:00Z"}),
                "messageId",
            ),
            (
                json!({"type": "page", "messageId": "m", "userId": "u"}),
                "timestamp",
            ),
            (
                json!({"type": "page", "messageId": "m", "userId": "u", "timestamp": "yesterday"}),
                "timestamp",
            ),
            (
                json!({"type": "page", "messageId": "m", "timestamp": "2026-10-01T00:00:00Z"}),
                "userId",
            ),
            (
                json!({"type": "track", "messageId": "m", "userId": "u", "timestamp": "2026-10-01T00:00:00Z"}),
                "event",
            ),
            (
                json!({"type": "page", "messageId": "m", "userId": "u", "timestamp": "2026-10-01T00:00:00Z", "context": {"ip": "nope"}}),
                "context.ip",
            ),
            (
                json!({"type": "page", "messageId": "m", "userId": "u", "timestamp": "2026-10-01T00:00:00Z", "properties": "x"}),
                "properties",
            ),
            (
                json!({"type": "page", "messageId": "m", "userId": "u", "timestamp": "2026-10-01T00:00:00Z", "context": {"page": {"path": 3}}}),
                "context.page.path",
            ),
        ];
        for (value, field) in cases {
            let err = Event::from_segment(&value).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn path_comes_from_path_or_url() {
        assert_eq!(
            path_and_query("https://a.example/x/y?q=1#f"),
            (Some("/x/y".into()), Some("q=1"))
        );
        assert_eq!(
            path_and_query("https://a.example"),
            (Some("/".into()), None)
        );
        assert_eq!(
            path_and_query("/pricing?x"),
            (Some("/pricing".into()), Some("x"))
        );
        assert_eq!(percent_decode("a%20b+c%zz%"), "a b c%zz%");
    }
}
