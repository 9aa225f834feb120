//! Ingestion: web forms and Segment calls become stored events, leads and identity links.
//! Validation happens here, once, before anything is stored: a rejected call changes
//! nothing.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hotlead_core::event::{Event, EventType, check_id};
use hotlead_core::identity::IdentityKey;
use hotlead_core::lead::attribute_name;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::config::Config;
use crate::ports::{
    Clock, IdSource, Record, Recorded, RequestCounter, Store, StoreError, content_digest,
};

/// Longest accepted form value, in characters.
pub const MAX_FIELD_CHARS: usize = 2_000;
/// Most fields accepted in one form submission.
pub const MAX_FIELDS: usize = 200;
/// Most calls accepted in one Segment `batch` (the size limits apply too).
pub const MAX_BATCH_CALLS: usize = 100;
/// Longest accepted form field name, in characters.
pub const MAX_FIELD_NAME_CHARS: usize = 100;
/// A form submission without an id of its own is told apart by its form, browser and
/// values within one hour: a double submit is one event, the same form sent again later
/// is another.
pub const FORM_REPEAT_WINDOW_SECONDS: i64 = 3_600;
/// How far ahead of the time received a call's (corrected) timestamp may be.
pub const MAX_FUTURE: Duration = Duration::days(1);
/// How far back a call's timestamp may be.
pub const MAX_PAST: Duration = Duration::days(730);

/// Why a call was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The client sent something unusable; `field` names it.
    #[error("field `{field}`: {message}")]
    Invalid { field: String, message: String },
    /// More items than accepted in one request.
    #[error("at most {limit} {what} are accepted in one request")]
    TooMany { what: &'static str, limit: usize },
    /// The message id was used before by a call that said something else: nothing was
    /// stored (a message id names one call; send a new one for a new call).
    #[error("message id {message_id:?} was used before for another call; nothing was stored")]
    Reused { message_id: String },
    /// A batch stopped part way: the first `stored.len()` calls are stored (a retry of
    /// the whole batch stores the rest and repeats none); the others are not.
    #[error("stored {} calls of the batch, then: {source}", stored.len())]
    Interrupted {
        stored: Vec<Recorded>,
        source: StoreError,
    },
    /// The client made more requests this minute than its limit
    /// ([`crate::throttle`]): nothing was stored; it may try again after `retry_after`
    /// seconds.
    #[error("too many requests from this address; try again in {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn within(self, prefix: &str) -> Self {
        match self {
            IngestError::Invalid { field, message } => IngestError::Invalid {
                field: format!("{prefix}.{field}"),
                message,
            },
            other => other,
        }
    }
}

/// A web form submission as received.
#[derive(Debug, Clone, Default)]
pub struct FormSubmission {
    pub form_id: String,
    /// Field name and value pairs, in order.
    pub fields: Vec<(String, String)>,
    /// The anonymous id from the tracking cookie, when the browser sent one.
    pub cookie_anonymous_id: Option<String>,
    /// An idempotency key from the client (`Idempotency-Key` header).
    pub idempotency_key: Option<String>,
    /// The client asked to be sent to the thank-you page (a plain HTML form).
    pub wants_redirect: bool,
}

/// What happened to a form submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormOutcome {
    Stored {
        lead_id: String,
        duplicate: bool,
        redirect: Option<String>,
        /// Attributes not stored: the lead holds as many as it may.
        dropped_attributes: Vec<String>,
    },
    /// The honeypot was filled in: a bot. Nothing was stored; it is told nothing.
    Ignored { redirect: Option<String> },
}

/// Where a call came from: the public endpoints (forms, the tracking script: anyone can
/// send anything) or a trusted channel (an operator's CRM import).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    Public,
    Trusted,
}

/// A checked call, ready to store.
#[derive(Debug)]
struct Accepted {
    event: Event,
    keys: Vec<IdentityKey>,
    attributes: Vec<(String, String)>,
    /// See [`content_digest`].
    digest: String,
}

/// Checks an id the client gave, naming the field it came in.
fn checked_id(field: &str, id: &str) -> Result<(), IngestError> {
    check_id(field, id).map_err(|e| IngestError::invalid(e.field, e.message))
}

/// The time of a Segment call, as Segment takes it: the call's `timestamp` corrected by
/// the sender's clock skew (`received - sentAt`) when it says when it was sent, or the
/// time received when it has none; refused when far outside the present.
fn call_time(
    object: &Map<String, Value>,
    received: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, IngestError> {
    let time_of = |field: &str| -> Result<Option<DateTime<Utc>>, IngestError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| {
                    IngestError::invalid(
                        field,
                        format!("expected an RFC 3339 date-time, got {text:?}"),
                    )
                }),
            Some(_) => Err(IngestError::invalid(
                field,
                "expected an RFC 3339 date-time",
            )),
        }
    };
    let timestamp = match (time_of("timestamp")?, time_of("sentAt")?) {
        (None, _) => return Ok(None),
        (Some(timestamp), None) => timestamp,
        (Some(timestamp), Some(sent)) => timestamp
            .checked_add_signed(received - sent)
            .ok_or_else(|| IngestError::invalid("sentAt", "is too far from the time received"))?,
    };
    if timestamp > received + MAX_FUTURE {
        return Err(IngestError::invalid(
            "timestamp",
            "is more than a day after the time received (send `sentAt` if the sender's clock is off)",
        ));
    }
    if timestamp < received - MAX_PAST {
        return Err(IngestError::invalid(
            "timestamp",
            "is more than two years before the time received",
        ));
    }
    Ok(Some(timestamp))
}

/// The name of the `track` event a form submission is stored as.
pub const FORM_SUBMITTED: &str = "Form Submitted";

/// The ingestion service.
#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    config: Arc<Config>,
    wake: Arc<Notify>,
    /// Notified, beside `wake`, by a call that may raise an alert at once (see
    /// [`Ingest::with_urgent`]).
    urgent: Option<(Arc<Notify>, crate::scorer::Scorer)>,
    /// Counts each client's requests for its per-minute limit; `None`: no limit (tools
    /// and tests that call the service directly).
    counter: Option<Arc<dyn RequestCounter>>,
    /// The rep's lead pages, served beside the public routes; `None`: no pages.
    pages: Option<Arc<crate::pages::LeadPages>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

const ANONYMOUS_ID_FIELDS: &[&str] = &["anonymousId", "anonymous_id", "hl_anon"];
const SUBMISSION_ID_FIELDS: &[&str] = &["_submission_id", "messageId"];

/// FNV-1a, 64 bits: a stable digest (unlike `DefaultHasher`) for derived submission ids.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// An event the service makes itself (a form submission, a CRM import), with one
/// property saying where it came from.
fn own_event(
    message_id: String,
    kind: EventType,
    name: Option<&str>,
    timestamp: chrono::DateTime<chrono::Utc>,
    anonymous_id: Option<String>,
    (property, value): (&str, Value),
) -> Event {
    Event {
        message_id: message_id.into(),
        kind,
        name: name.map(str::to_string),
        timestamp,
        user_id: None,
        anonymous_id,
        path: None,
        url: None,
        referrer: None,
        campaign: Default::default(),
        properties: Map::from_iter([(property.to_string(), value)]),
        traits: Map::new(),
        ip: None,
        user_agent: None,
    }
}

impl Ingest {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        config: Arc<Config>,
        wake: Arc<Notify>,
    ) -> Self {
        Ingest {
            store,
            clock,
            ids,
            config,
            wake,
            urgent: None,
            counter: None,
            pages: None,
        }
    }

    /// Also notifies `urgent` for each stored call that may raise an alert at once with
    /// `scorer`'s rules (see [`crate::scorer::Scorer::may_alert_at_once`]): the scorer then
    /// rescores its lead without waiting out its gap between rounds (see
    /// [`crate::scorer::until_next_round`]).
    pub fn with_urgent(mut self, urgent: Arc<Notify>, scorer: crate::scorer::Scorer) -> Self {
        self.urgent = Some((urgent, scorer));
        self
    }

    /// Serves the rep's lead pages (signed links) beside the public routes.
    pub fn with_pages(mut self, pages: Arc<crate::pages::LeadPages>) -> Self {
        self.pages = Some(pages);
        self
    }

    /// The lead pages, when served.
    pub fn pages(&self) -> Option<&Arc<crate::pages::LeadPages>> {
        self.pages.as_ref()
    }

    /// Limits each client address's requests per minute (`[client_limits]`), counted by
    /// `counter`.
    pub fn with_client_limits(mut self, counter: Arc<dyn RequestCounter>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Counts `weight` requests of `client` on `route` (1; a batch's further calls once
    /// it is read) against its per-minute limit: `Throttled` past the limit. An unknown
    /// address, a limit turned off, or no counter admits. A counter that fails admits too
    /// (and is logged): the limit protects the service, it must not be what takes it
    /// down (a counter refused for one address's flood refuses, see the adapters).
    pub async fn admit(
        &self,
        client: Option<std::net::IpAddr>,
        route: crate::throttle::Route,
        weight: u32,
    ) -> Result<(), IngestError> {
        if weight == 0 {
            return Ok(());
        }
        let (Some(counter), Some(client)) = (&self.counter, client) else {
            return Ok(());
        };
        let Some(limit) = self.config.client_limits.limit(route) else {
            return Ok(());
        };
        let now = self.clock.now();
        let key = crate::throttle::client_key(client, route);
        match counter
            .count(&key, crate::throttle::window_end(now), limit, weight)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(IngestError::Throttled {
                retry_after: crate::throttle::retry_after(now),
            }),
            Err(error) => {
                tracing::warn!(
                    error = %crate::ports::with_causes(&error),
                    "the request counter failed; the request is admitted"
                );
                Ok(())
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stores a form submission: the lead (by e-mail), its attributes, the anonymous id's
    /// earlier behaviour, and a `Form Submitted` event.
    pub async fn form(&self, submission: FormSubmission) -> Result<FormOutcome, IngestError> {
        let form_id = submission.form_id.trim();
        let redirect = if submission.wants_redirect {
            self.config.thank_you_url(form_id).map(str::to_string)
        } else {
            None
        };
        if form_id.is_empty() || form_id.len() > 100 {
            return Err(IngestError::invalid(
                "form_id",
                "expected a form id of 1 to 100 characters",
            ));
        }
        if submission.fields.len() > MAX_FIELDS {
            return Err(IngestError::invalid(
                "(form)",
                format!("at most {MAX_FIELDS} fields are accepted"),
            ));
        }
        let honeypot = self.config.honeypot(form_id);
        if submission
            .fields
            .iter()
            .any(|(name, value)| name == honeypot && !value.trim().is_empty())
        {
            return Ok(FormOutcome::Ignored { redirect });
        }

        if let Some(key) = &submission.idempotency_key {
            checked_id("Idempotency-Key", key)?;
        }
        let mut anonymous_id = None;
        let mut submission_id = submission.idempotency_key.clone();
        let mut attributes: Vec<(String, String)> = Vec::new();
        let mut email_field = None;
        for (name, value) in &submission.fields {
            if name.chars().count() > MAX_FIELD_NAME_CHARS {
                let start: String = name.chars().take(40).collect();
                return Err(IngestError::invalid(
                    format!("{start}…"),
                    format!("field names are at most {MAX_FIELD_NAME_CHARS} characters"),
                ));
            }
            if value.chars().count() > MAX_FIELD_CHARS {
                return Err(IngestError::invalid(
                    name,
                    format!("longer than {MAX_FIELD_CHARS} characters"),
                ));
            }
            let value = value.trim();
            if ANONYMOUS_ID_FIELDS.contains(&name.as_str()) {
                checked_id(name, value)?;
                anonymous_id = (!value.is_empty()).then(|| value.to_string());
                continue;
            }
            if SUBMISSION_ID_FIELDS.contains(&name.as_str()) {
                checked_id(name, value)?;
                submission_id = (!value.is_empty())
                    .then(|| value.to_string())
                    .or(submission_id);
                continue;
            }
            if name.starts_with('_') || name == honeypot || value.is_empty() {
                continue;
            }
            let attribute = self.config.attribute_for(form_id, name);
            if attribute.is_empty() {
                continue;
            }
            if attribute == "email" {
                email_field = Some((name.clone(), value.to_string()));
            }
            attributes.retain(|(a, _)| a != &attribute);
            attributes.push((attribute, value.to_string()));
        }
        // A cookie the visitor cannot fix is not a reason to refuse their form: an unusable
        // one is left out.
        let cookie = submission
            .cookie_anonymous_id
            .clone()
            .filter(|c| check_id("hl_anon", c).is_ok());
        let anonymous_id = anonymous_id.or(cookie);
        let Some((email_name, email_value)) = email_field else {
            return Err(IngestError::invalid(
                "email",
                "is required: a form submission must carry an e-mail address",
            ));
        };
        let email = IdentityKey::email(&email_value).ok_or_else(|| {
            IngestError::invalid(
                email_name,
                "expected an e-mail address like name@example.co.jp",
            )
        })?;

        let now = self.clock.now();
        let mut parts: Vec<String> = submission
            .fields
            .iter()
            .filter(|(n, _)| !SUBMISSION_ID_FIELDS.contains(&n.as_str()))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        parts.sort();
        let submission_id = submission_id.unwrap_or_else(|| {
            let bucket = now
                .timestamp()
                .div_euclid(FORM_REPEAT_WINDOW_SECONDS)
                .to_string();
            let mut refs: Vec<&str> = vec![form_id, anonymous_id.as_deref().unwrap_or(""), &bucket];
            refs.extend(parts.iter().map(String::as_str));
            format!("form-{:016x}", fnv1a(&refs))
        });
        let event = own_event(
            submission_id,
            EventType::Track,
            Some(FORM_SUBMITTED),
            now,
            anonymous_id.clone(),
            ("form_id", json!(form_id)),
        );
        let mut keys = vec![email];
        keys.extend(anonymous_id.map(IdentityKey::Anonymous));
        let values: Vec<(&str, &str)> = parts.iter().map(|p| ("field", p.as_str())).collect();
        let digest = content_digest(&event, &values);
        let message_id = event.message_id.clone();
        let recorded = self
            .save(
                Accepted {
                    event,
                    keys,
                    attributes,
                    digest,
                },
                Channel::Public,
            )
            .await?;
        if recorded.conflicting {
            return Err(IngestError::Reused {
                message_id: message_id.to_string(),
            });
        }
        let lead_id = recorded.lead_id.unwrap_or_default();
        Ok(FormOutcome::Stored {
            lead_id,
            duplicate: recorded.duplicate,
            redirect,
            dropped_attributes: recorded.dropped_attributes,
        })
    }

    /// Stores a lead's attributes from a trusted channel (an operator's CRM import): the
    /// lead of `email` (created if new) takes `attributes`, the routing attributes
    /// included, through an `identify` event. The same row imported again is a duplicate;
    /// a changed row updates the lead.
    pub async fn import(
        &self,
        email: &str,
        attributes: &[(String, String)],
    ) -> Result<Recorded, IngestError> {
        let key = IdentityKey::email(email).ok_or_else(|| {
            IngestError::invalid(
                "email",
                "expected an e-mail address like name@example.co.jp",
            )
        })?;
        if attributes.len() > MAX_FIELDS {
            return Err(IngestError::invalid(
                "(row)",
                format!("at most {MAX_FIELDS} attributes are accepted"),
            ));
        }
        let mut parts = vec![format!("email={}", key.storage_key())];
        let mut cleaned = Vec::new();
        for (name, value) in attributes {
            if value.chars().count() > MAX_FIELD_CHARS {
                return Err(IngestError::invalid(
                    name,
                    format!("longer than {MAX_FIELD_CHARS} characters"),
                ));
            }
            let (name, value) = (attribute_name(name), value.trim());
            if name.is_empty() || name == "email" || value.is_empty() {
                continue;
            }
            parts.push(format!("{name}={value}"));
            cleaned.push((name, value.to_string()));
        }
        parts.sort();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let event = own_event(
            format!("import-{:016x}", fnv1a(&refs)),
            EventType::Identify,
            None,
            self.clock.now(),
            None,
            ("source", json!("import")),
        );
        let digest = content_digest(&event, &[]);
        self.save(
            Accepted {
                event,
                keys: vec![key],
                attributes: cleaned,
                digest,
            },
            Channel::Trusted,
        )
        .await
    }

    /// Stores one Segment call. `route` is the call type of the endpoint it came to
    /// (`/v1/page` -> page); a body without `type` takes it.
    pub async fn call(
        &self,
        value: &Value,
        route: Option<EventType>,
    ) -> Result<Recorded, IngestError> {
        self.call_value(value.clone(), route).await
    }

    /// [`Ingest::call`] of a call the caller gives away (the HTTP handler's parsed body):
    /// not copied.
    pub async fn call_value(
        &self,
        value: Value,
        route: Option<EventType>,
    ) -> Result<Recorded, IngestError> {
        let accepted = self.parse_call(value, route)?;
        let message_id = accepted.event.message_id.clone();
        let recorded = self.save(accepted, Channel::Public).await?;
        if recorded.conflicting {
            return Err(IngestError::Reused {
                message_id: message_id.to_string(),
            });
        }
        Ok(recorded)
    }

    /// Stores a Segment batch: every call is checked first; one invalid call rejects the
    /// batch and nothing is stored. Calls are stored in order; when the store fails part
    /// way, the error says which were stored ([`IngestError::Interrupted`]), and since
    /// each call is stored once by its message id, the client retries the whole batch.
    /// A call whose message id was used for another call is reported in its result
    /// (`conflicting`); the others are stored.
    pub async fn batch(&self, calls: &[Value]) -> Result<Vec<Recorded>, IngestError> {
        if calls.len() > MAX_BATCH_CALLS {
            return Err(IngestError::TooMany {
                what: "calls",
                limit: MAX_BATCH_CALLS,
            });
        }
        let parsed = calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                self.parse_call(call.clone(), None)
                    .map_err(|e| e.within(&format!("batch[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut results = Vec::with_capacity(parsed.len());
        for accepted in parsed {
            match self.save(accepted, Channel::Public).await {
                Ok(recorded) => results.push(recorded),
                Err(IngestError::Store(source)) => {
                    return Err(IngestError::Interrupted {
                        stored: results,
                        source,
                    });
                }
                Err(other) => return Err(other),
            }
        }
        Ok(results)
    }

    async fn save(&self, accepted: Accepted, channel: Channel) -> Result<Recorded, IngestError> {
        let Accepted {
            event,
            keys,
            mut attributes,
            digest,
        } = accepted;
        let urgent =
            (self.urgent.as_ref()).is_some_and(|(_, scorer)| scorer.may_alert_at_once(&event));
        if channel == Channel::Public {
            // Routing attributes come from trusted channels only: a public form or a
            // tracking call cannot choose where alerts go, whatever it names its fields.
            let trusted = self.config.trusted_attributes();
            attributes.retain(|(name, _)| !trusted.contains(name));
        }
        let record = Record {
            event,
            keys,
            attributes,
            received_at: self.clock.now(),
            new_lead_id: self.ids.new_lead_id(),
            digest,
            retention: self.config.retention,
        };
        let recorded = self.store.record(record).await?;
        if !recorded.duplicate && recorded.lead_id.is_some() {
            self.wake.notify_one();
            if let Some((notify, _)) = self.urgent.as_ref().filter(|_| urgent) {
                notify.notify_one();
            }
        }
        Ok(recorded)
    }

    fn parse_call(&self, value: Value, route: Option<EventType>) -> Result<Accepted, IngestError> {
        let Value::Object(mut object) = value else {
            return Err(IngestError::invalid("(body)", "expected a JSON object"));
        };
        if let Some(route) = route {
            match object.get("type") {
                None | Some(Value::Null) => {
                    object.insert("type".into(), json!(route.as_str()));
                }
                Some(Value::String(kind)) if kind == route.as_str() => {}
                Some(kind) => {
                    return Err(IngestError::invalid(
                        "type",
                        format!("this endpoint takes `{}` calls, not {kind}", route.as_str()),
                    ));
                }
            }
        }
        // In the Segment spec `timestamp` is optional: a call without one happened when
        // it was received. A sender's clock skew is corrected by `sentAt`.
        let received = self.clock.now();
        let timestamp = call_time(&object, received)?.unwrap_or(received);
        object.insert(
            "timestamp".into(),
            json!(timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        let value = Value::Object(object);
        let event =
            Event::from_segment(&value).map_err(|e| IngestError::invalid(e.field, e.message))?;
        let digest = content_digest(&event, &[]);
        let mut keys = Vec::new();
        keys.extend(event.user_id.clone().map(IdentityKey::User));
        keys.extend(event.anonymous_id.clone().map(IdentityKey::Anonymous));
        let mut attributes = Vec::new();
        match event.kind {
            EventType::Identify => {
                check_trait_sizes(&event.traits)?;
                attributes = traits_to_attributes(&event.traits);
                for (name, value) in &attributes {
                    if name.chars().count() > MAX_FIELD_NAME_CHARS {
                        return Err(IngestError::invalid(
                            "traits",
                            format!("trait names are at most {MAX_FIELD_NAME_CHARS} characters"),
                        ));
                    }
                    if value.chars().count() > MAX_FIELD_CHARS {
                        return Err(IngestError::invalid(
                            format!("traits.{name}"),
                            format!("longer than {MAX_FIELD_CHARS} characters"),
                        ));
                    }
                }
                if let Some(raw) = event.traits.get("email") {
                    let text = raw.as_str().unwrap_or_default();
                    let email = IdentityKey::email(text).ok_or_else(|| {
                        IngestError::invalid("traits.email", "expected an e-mail address")
                    })?;
                    keys.push(email);
                }
            }
            EventType::Alias => {
                let previous = value.get("previousId").and_then(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                let previous = previous.ok_or_else(|| {
                    IngestError::invalid("previousId", "is required for an alias call")
                })?;
                checked_id("previousId", &previous)?;
                if event.user_id.is_none() {
                    return Err(IngestError::invalid(
                        "userId",
                        "is required for an alias call",
                    ));
                }
                keys.push(IdentityKey::Anonymous(previous.clone()));
                keys.push(IdentityKey::User(previous));
            }
            _ => {}
        }
        Ok(Accepted {
            event,
            keys,
            attributes,
            digest,
        })
    }
}

/// The limits of traits as sent, before anything is trimmed or skipped: names of at most
/// [`MAX_FIELD_NAME_CHARS`], text values (and those of `company` and `address`) of at
/// most [`MAX_FIELD_CHARS`].
fn check_trait_sizes(traits: &Map<String, Value>) -> Result<(), IngestError> {
    let too_long = |field: String| {
        IngestError::invalid(field, format!("longer than {MAX_FIELD_CHARS} characters"))
    };
    for (name, value) in traits {
        if name.chars().count() > MAX_FIELD_NAME_CHARS {
            return Err(IngestError::invalid(
                "traits",
                format!("trait names are at most {MAX_FIELD_NAME_CHARS} characters"),
            ));
        }
        match value {
            Value::String(text) if text.chars().count() > MAX_FIELD_CHARS => {
                return Err(too_long(format!("traits.{name}")));
            }
            Value::Object(nested) if name == "company" || name == "address" => {
                for (key, value) in nested {
                    if value
                        .as_str()
                        .is_some_and(|t| t.chars().count() > MAX_FIELD_CHARS)
                    {
                        return Err(too_long(format!("traits.{name}.{key}")));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Segment traits as attributes: scalar traits by their canonical names, plus the common
/// nested ones (`company.name`, `company.employee_count`, `address.state`).
fn traits_to_attributes(traits: &Map<String, Value>) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut attributes = Vec::new();
    for (name, value) in traits {
        let attribute = match attribute_name(name).as_str() {
            "firstname" | "first_name" | "lastname" | "last_name" => continue,
            "employee_count" | "employees" => "employees".to_string(),
            "company_name" => "company".to_string(),
            "job_title" => "title".to_string(),
            other => other.to_string(),
        };
        if let Some(text) = text(value) {
            attributes.push((attribute, text));
        }
    }
    if let Some(Value::Object(company)) = traits.get("company") {
        attributes.extend(
            company
                .get("name")
                .and_then(text)
                .map(|n| ("company".to_string(), n)),
        );
        attributes.extend(
            company
                .get("employee_count")
                .and_then(text)
                .map(|n| ("employees".to_string(), n)),
        );
        attributes.extend(
            company
                .get("industry")
                .and_then(text)
                .map(|n| ("industry".to_string(), n)),
        );
    }
    if let Some(Value::Object(address)) = traits.get("address") {
        attributes.extend(
            address
                .get("state")
                .and_then(text)
                .map(|n| ("prefecture".to_string(), n)),
        );
        attributes.extend(
            address
                .get("country")
                .and_then(text)
                .map(|n| ("country".to_string(), n)),
        );
    }
    if !traits.contains_key("name") {
        let first = traits
            .get("firstName")
            .or(traits.get("first_name"))
            .and_then(text);
        let last = traits
            .get("lastName")
            .or(traits.get("last_name"))
            .and_then(text);
        let name = [last, first]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            attributes.push(("name".to_string(), name));
        }
    }
    attributes
}
