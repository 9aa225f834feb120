//! The [`Store`] port on one DynamoDB table.
//!
//! Items (PK / SK):
//! - `LEAD#<id>` / `LEAD`: the lead: attributes, identities, anonymous-history sources,
//!   merged leads, score JSON, ranking keys, change counters (`dirty_seq` / `scored_seq`,
//!   also the version for optimistic concurrency).
//! - `ID#<key>` / `ID`: identity key -> lead.
//! - `MSG#<message id>` / `MSG`: the dedupe key of a call.
//! - `LEAD#<id>` or `ANON#<anonymous id>` / `EVENT#<time>#<message id>`: an event, in its
//!   lead's partition, or its browser's while anonymous (read when the lead links it).
//! - `ALERT#<key>` / `ALERT`: an outbox entry.
//!
//! Storing a web event is one `TransactWriteItems` request: the dedupe item, the event,
//! and the lead's change counter.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use chrono::{DateTime, SecondsFormat, Utc};
use hotlead_app::ports::{
    ActionOutcome, ActionRecord, Dirty, EraseSubject, Erased, FailedAlert, FollowUpRecord,
    HistoryEntry, OutboxEntry, Pending, RankCursor, RankingPage, Record, Recorded, Retention,
    SaveOutcome, ScoreUpdate, SetAside, Store, StoreError, StoredLead, Swept,
};
use hotlead_core::identity::{self, IdentityKey, KnownLead, LeadIdentity, LinkChange, Resolution};
use hotlead_core::{Band, Event};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Attempts of a `record` whose transaction lost a race. Concurrent writers of one lead
/// win one at a time, so this must exceed the writers one lead may see at once.
const RECORD_ATTEMPTS: u32 = 16;
/// The longest wait between two attempts.
const MAX_RECORD_BACKOFF_MS: u64 = 1_000;

/// "Full jitter" backoff: a random wait up to 10 ms × 2^attempt (at most a second), so
/// writers that lost the same race do not retry in lockstep.
fn record_backoff(attempt: u32) -> StdDuration {
    use std::hash::{BuildHasher, Hasher};
    let cap = (10u64 << attempt.min(16)).min(MAX_RECORD_BACKOFF_MS);
    // Each RandomState is freshly seeded: a source of jitter without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    StdDuration::from_millis(1 + random % cap)
}
/// Scores are offset so that an ascending sort key orders them highest first.
const SCORE_OFFSET: i64 = 1_000_000_000_000_000;

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn get_n(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::corrupt(format!("item lacks {what}"))
}

pub(crate) fn json_of<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
) -> Result<T, StoreError> {
    let text = get_s(item, name).ok_or_else(|| corrupt(name))?;
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(name).because(e))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt("writing JSON").because(e))
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::corrupt(format!("time {text:?}")).because(e))
}

/// Maps an SDK error: throttling and service trouble can be retried, the rest cannot.
pub(crate) fn sdk<E, R>(error: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.code().unwrap_or_default().to_string();
    let message = if code.is_empty() {
        "DynamoDB request failed".to_string()
    } else {
        format!("DynamoDB: {code}")
    };
    match code.as_str() {
        "ConditionalCheckFailedException"
        | "TransactionCanceledException"
        | "TransactionConflictException" => StoreError::conflict(message),
        // The request itself is wrong for DynamoDB (an item over 400 KB, a key over its
        // limit): the same request would fail again.
        "ValidationException" | "ItemCollectionSizeLimitExceededException" => {
            StoreError::rejected(message)
        }
        _ => StoreError::unavailable(message),
    }
    .because(error)
}

/// The result of a conditional write whose condition may fail harmlessly (the item moved
/// on, or is gone): `Ok(false)` then; other errors mapped by [`sdk`].
pub(crate) fn conditional<T, E, R>(
    out: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match out {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(error) => Err(sdk(error)),
    }
}

/// Why a `record` transaction was cancelled, from its cancellation reasons (one per write,
/// in order; the first write is the message's dedupe item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// The dedupe item exists: the message id was stored before.
    Duplicate,
    /// An item is invalid as it stands (too large, a key too long): the same call can never
    /// be stored; retrying it is pointless.
    Rejected,
    /// Another writer changed the lead or a key first: re-read and retry.
    LostRace,
    /// Throttled: retry with backoff (the SDK retries too).
    Throttled,
    /// Not a cancellation (no reasons).
    Other,
}

/// The cancellation reasons of a cancelled transaction, one code per write in order
/// (`None` for a write that did not fail); `None` when the error is not a cancellation.
pub(crate) fn cancellation_reasons<R>(
    error: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<Vec<String>> {
    match error.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) fn cancellation(reasons: &[String]) -> Cancelled {
    let has = |code: &str| reasons.iter().any(|r| r == code);
    if has("ValidationError") || has("ItemCollectionSizeLimitExceeded") {
        Cancelled::Rejected
    } else if reasons.first().map(String::as_str) == Some("ConditionalCheckFailed")
        // The event itself (the second write) is stored: the same message id at the same
        // time, sent again after its dedupe key expired.
        || reasons.get(1).map(String::as_str) == Some("ConditionalCheckFailed")
    {
        Cancelled::Duplicate
    } else if has("ConditionalCheckFailed") || has("TransactionConflict") {
        Cancelled::LostRace
    } else if has("ThrottlingError") || has("ProvisionedThroughputExceeded") {
        Cancelled::Throttled
    } else if reasons.is_empty() {
        Cancelled::Other
    } else {
        // Only "None" reasons, or codes DynamoDB may add later: treat as a lost race, which
        // is retried a bounded number of times.
        Cancelled::LostRace
    }
}

/// DynamoDB's limit on one item.
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The size DynamoDB counts for an item: names and values, in UTF-8 bytes (numbers are
/// counted as their text, an over-estimate).
pub(crate) fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
                    AttributeValue::B(blob) => blob.as_ref().len(),
                    _ => 8,
                }
        })
        .sum()
}

/// A lead item as read: what identity decides ([`LeadIdentity`]; its `history` is the
/// anonymous partitions it reads), its change counter, and the item's size.
#[derive(Debug, Clone)]
struct LeadItem {
    identity: LeadIdentity,
    seq: i64,
    bytes: usize,
}

impl LeadItem {
    fn from_item(item: &Item) -> Result<LeadItem, StoreError> {
        Ok(LeadItem {
            identity: LeadIdentity {
                id: get_s(item, "id").ok_or_else(|| corrupt("id"))?.to_string(),
                created_at: parse_time(
                    get_s(item, "created_at").ok_or_else(|| corrupt("created_at"))?,
                )?,
                identities: json_of(item, "identities")?,
                history: json_of(item, "anon_sources")?,
                merged_from: json_of(item, "merged_from")?,
                attributes: json_of(item, "attributes")?,
                hot_crossings: get_n(item, "hot_crossings").try_into().unwrap_or(0),
            },
            seq: get_n(item, "dirty_seq"),
            bytes: item_bytes(item),
        })
    }

    fn id(&self) -> &str {
        &self.identity.id
    }

    /// The item's size once its identity fields are `after`'s.
    fn bytes_after(&self, after: &LeadIdentity) -> Result<usize, StoreError> {
        let before = &self.identity;
        let size = |l: &LeadIdentity| -> Result<usize, StoreError> {
            Ok(to_json(&l.attributes)?.len()
                + to_json(&l.identities)?.len()
                + to_json(&l.history)?.len()
                + to_json(&l.merged_from)?.len())
        };
        Ok((self.bytes + size(after)?).saturating_sub(size(before)?))
    }
}

/// What the identity links of a call's keys point at (see `DynamoStore::known`).
#[derive(Debug, Default)]
struct Known {
    leads: Vec<(IdentityKey, String, LeadItem)>,
    dangling: Vec<(IdentityKey, String)>,
}

/// The DynamoDB store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.item)
    }

    /// The lead item an id stands for, following merges.
    pub(crate) async fn current_lead(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let mut id = id.to_string();
        for _ in 0..32 {
            let Some(item) = self.get(&format!("LEAD#{id}"), "LEAD").await? else {
                return Ok(None);
            };
            // A lead being erased is gone for every reader (see `erase`).
            if item.contains_key("erasing_at") {
                return Ok(None);
            }
            match get_s(&item, "merged_into") {
                Some(next) => id = next.to_string(),
                None => return Ok(Some(item)),
            }
        }
        Err(StoreError::corrupt(format!("merge chain of {id} too long")))
    }

    /// The leads the keys point at now: `(key, linked id, lead item)`; and the keys whose
    /// link points at a lead that is gone (being erased), with the id they point at, so
    /// that a new lead can take them over (conditioned on that id) instead of waiting.
    async fn known(&self, keys: &[IdentityKey]) -> Result<Known, StoreError> {
        if keys.is_empty() {
            return Ok(Known::default());
        }
        let mut request = KeysAndAttributes::builder().consistent_read(true);
        for k in keys {
            request = request.keys(key(&format!("ID#{}", k.storage_key()), "ID"));
        }
        let request = request
            .build()
            .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(sdk)?;
        let items = out
            .responses
            .and_then(|mut r| r.remove(&self.table))
            .unwrap_or_default();
        let mut known = Known::default();
        let mut leads: HashMap<String, Option<LeadItem>> = HashMap::new();
        for k in keys {
            let storage = format!("ID#{}", k.storage_key());
            let Some(item) = items
                .iter()
                .find(|i| get_s(i, "PK") == Some(storage.as_str()))
            else {
                continue;
            };
            let Some(linked) = get_s(item, "lead_id") else {
                continue;
            };
            // Keys of one person usually point at one lead: read it once.
            if !leads.contains_key(linked) {
                let lead = self.current_lead(linked).await?;
                leads.insert(
                    linked.to_string(),
                    lead.map(|l| LeadItem::from_item(&l)).transpose()?,
                );
            }
            match leads.get(linked) {
                Some(Some(lead)) => known
                    .leads
                    .push((k.clone(), linked.to_string(), lead.clone())),
                _ => known.dangling.push((k.clone(), linked.to_string())),
            }
        }
        Ok(known)
    }

    pub(crate) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
        values: Option<Item>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(crate) fn update(
        &self,
        key: Item,
        expression: &str,
        condition: &str,
        values: Item,
        names: Option<HashMap<String, String>>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .set_expression_attribute_names(names)
            .build()
            .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A conditional delete, as one write of a transaction: `condition` on `:from`.
    pub(crate) fn delete(
        &self,
        key: Item,
        condition: &str,
        from: AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .expression_attribute_values(":from", from)
            .build()
            .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// One attempt of `record`: `Ok(None)` when a race was lost and it should be retried.
    async fn try_record(&self, record: &Record) -> Result<Option<Recorded>, StoreError> {
        let Known {
            leads: known,
            dangling,
        } = self.known(&record.keys).await?;
        let known_leads: Vec<KnownLead> = known
            .iter()
            .map(|(k, _, lead)| KnownLead {
                lead_id: lead.id().to_string(),
                created_at: lead.identity.created_at,
                via: k.clone(),
                email: lead.identity.email().map(str::to_string),
            })
            .collect();
        let now = time(record.received_at);
        let resolution = identity::resolve(&record.keys, &known_leads);
        let find = |id: &str| known.iter().map(|(_, _, l)| l).find(|l| l.id() == id);
        let plan = match &resolution {
            Resolution::Anonymous => None,
            Resolution::Create => Some((
                None,
                LeadIdentity::new(record.new_lead_id.clone(), record.received_at),
                Vec::new(),
            )),
            Resolution::Use { survivor, merged } => {
                let Some(lead) = find(survivor) else {
                    return Ok(None);
                };
                let merging: Vec<LeadIdentity> = merged
                    .iter()
                    .filter_map(|id| find(id).map(|l| l.identity.clone()))
                    .collect();
                Some((Some(lead), lead.identity.clone(), merging))
            }
        };
        let links: Vec<(IdentityKey, Option<String>)> = record
            .keys
            .iter()
            .map(|k| {
                let linked = known
                    .iter()
                    .find(|(kk, _, _)| kk == k)
                    .map(|(_, linked, _)| linked.clone())
                    // A link to a lead being erased is taken over: `Move` from it.
                    .or_else(|| {
                        dangling
                            .iter()
                            .find(|(kk, _)| kk == k)
                            .map(|(_, linked)| linked.clone())
                    });
                (k.clone(), linked)
            })
            .collect();
        let applied = plan.as_ref().map(|(_, survivor, merging)| {
            identity::apply(survivor, merging, &links, &record.attributes)
        });
        let survivor_id = applied.as_ref().map(|a| a.lead.id.clone());
        let event = &record.event;
        let owner = match (&survivor_id, &event.anonymous_id) {
            (Some(id), _) => format!("LEAD#{id}"),
            (None, Some(anonymous)) => format!("ANON#{anonymous}"),
            (None, None) => "ANON#".to_string(),
        };
        let mut writes = Vec::new();
        let mut message = key(&format!("MSG#{}", event.message_id), "MSG");
        message.insert("owner".into(), s(&owner));
        message.insert("digest".into(), s(&record.digest));
        // Retention: DynamoDB's TTL deletes the dedupe key, and an anonymous visitor's
        // event, once expired (a lead's reading of its history copies the latter into the
        // lead's partition first: see `events`).
        let expires = |at: DateTime<Utc>| n(at.timestamp());
        message.insert(
            "expires_at".into(),
            expires(record.retention.dedupe_until(record.received_at)),
        );
        if let Some(id) = &survivor_id {
            message.insert("lead_id".into(), s(id));
        }
        writes.push(self.put(message, Some("attribute_not_exists(PK)"), None)?);
        let mut event_item = key(
            &owner,
            &format!("EVENT#{}#{}", time(event.timestamp), event.message_id),
        );
        event_item.insert("body".into(), s(to_json(event)?));
        if survivor_id.is_none() {
            event_item.insert(
                "expires_at".into(),
                expires(record.retention.anonymous_until(record.received_at)),
            );
        }
        let event_bytes = item_bytes(&event_item);
        if event_bytes > MAX_ITEM_BYTES {
            return Err(StoreError::rejected(format!(
                "message {}: the event is {} KB, over DynamoDB's 400 KB item limit",
                event.message_id,
                event_bytes / 1024
            )));
        }
        writes.push(self.put(event_item, Some("attribute_not_exists(PK)"), None)?);

        if let (Some(applied), Some((before, _, _))) = (&applied, &plan) {
            let survivor_id = &applied.lead.id;
            let lead = &applied.lead;
            for from_id in &applied.merged {
                let Some(from) = find(from_id) else { continue };
                writes.push(self.update(
                    key(&format!("LEAD#{from_id}"), "LEAD"),
                    "SET merged_into = :into, updated_at = :now REMOVE rank_pk, rank_sk, band_pk, dirty_pk, dirty_sk, scored_pk, scored_sk",
                    "dirty_seq = :seq AND attribute_not_exists(merged_into)",
                    HashMap::from([(":into".into(), s(survivor_id)), (":now".into(), s(&now)), (":seq".into(), n(from.seq))]),
                    None,
                )?);
            }
            for link in &applied.links {
                let write = match link {
                    LinkChange::Claim { key: k } => {
                        let mut item = key(&format!("ID#{k}"), "ID");
                        item.insert("lead_id".into(), s(survivor_id));
                        item.insert("linked_at".into(), s(&now));
                        self.put(item, Some("attribute_not_exists(PK)"), None)?
                    }
                    LinkChange::Move { key: k, from } => {
                        let mut item = key(&format!("ID#{k}"), "ID");
                        item.insert("lead_id".into(), s(survivor_id));
                        item.insert("linked_at".into(), s(&now));
                        // Taken over from a lead whose erasure is unfinished: named, so
                        // that erasing this person again finishes that one too.
                        if dangling
                            .iter()
                            .any(|(dk, linked)| dk.storage_key() == *k && linked == from)
                        {
                            item.insert(crate::erase::UNFINISHED.into(), s(from));
                        }
                        self.put(
                            item,
                            Some("lead_id = :from"),
                            Some(HashMap::from([(":from".into(), s(from))])),
                        )?
                    }
                    LinkChange::Unlink { key: k, from } => {
                        self.delete(key(&format!("ID#{k}"), "ID"), "lead_id = :from", s(from))?
                    }
                };
                writes.push(write);
            }
            let values = HashMap::from([
                (":attributes".into(), s(to_json(&lead.attributes)?)),
                (":identities".into(), s(to_json(&lead.identities)?)),
                (":anon".into(), s(to_json(&lead.history)?)),
                (":merged".into(), s(to_json(&lead.merged_from)?)),
                (":now".into(), s(&now)),
                (":dirty".into(), s("DIRTY")),
                (":dirty_sk".into(), s(format!("{now}#{survivor_id}"))),
            ]);
            match before {
                None => {
                    let mut item = key(&format!("LEAD#{survivor_id}"), "LEAD");
                    item.insert("id".into(), s(survivor_id));
                    item.insert("created_at".into(), s(&now));
                    item.insert("hot_crossings".into(), n(0));
                    item.insert("scored_seq".into(), n(0));
                    item.insert("dirty_seq".into(), n(1));
                    for (name, value) in [
                        ("attributes", ":attributes"),
                        ("identities", ":identities"),
                        ("anon_sources", ":anon"),
                        ("merged_from", ":merged"),
                        ("updated_at", ":now"),
                        ("dirty_pk", ":dirty"),
                        ("dirty_sk", ":dirty_sk"),
                    ] {
                        item.insert(name.into(), values[value].clone());
                    }
                    writes.push(self.put(item, Some("attribute_not_exists(PK)"), None)?);
                }
                Some(before) if applied.changes_only_the_counter(&before.identity) => {
                    // A plain event of a known lead (a page view, a track call): nothing of
                    // the lead but its change counter changes, so it is counted atomically
                    // rather than conditioned on the counter. A burst of events for one
                    // lead then never loses races against itself.
                    let values = HashMap::from([
                        (":now".into(), s(&now)),
                        (":one".into(), n(1)),
                        (":dirty".into(), s("DIRTY")),
                        (":dirty_sk".into(), s(format!("{now}#{survivor_id}"))),
                    ]);
                    writes.push(self.update(
                        key(&format!("LEAD#{survivor_id}"), "LEAD"),
                        "SET updated_at = :now, dirty_pk = :dirty, dirty_sk = :dirty_sk ADD dirty_seq :one",
                        "attribute_exists(PK) AND attribute_not_exists(merged_into)",
                        values,
                        None,
                    )?);
                }
                Some(before) => {
                    let bytes = before.bytes_after(lead)?;
                    if bytes > MAX_ITEM_BYTES {
                        return Err(StoreError::rejected(format!(
                            "lead {survivor_id}: its item would be {} KB, over DynamoDB's 400 KB item limit",
                            bytes / 1024
                        )));
                    }
                    let mut values = values;
                    values.insert(":seq".into(), n(before.seq));
                    values.insert(":next".into(), n(before.seq + 1));
                    let mut expression = "SET attributes = :attributes, identities = :identities, anon_sources = :anon, merged_from = :merged, \
                         updated_at = :now, dirty_seq = :next, dirty_pk = :dirty, dirty_sk = :dirty_sk".to_string();
                    let mut condition =
                        "dirty_seq = :seq AND attribute_not_exists(merged_into)".to_string();
                    if lead.hot_crossings != before.identity.hot_crossings {
                        // A merge brings a higher hot-crossing count; a score saved meanwhile
                        // (which counts crossings) makes this attempt lose and re-read.
                        expression.push_str(", hot_crossings = :hot");
                        condition.push_str(" AND hot_crossings = :seen_hot");
                        values.insert(":hot".into(), n(lead.hot_crossings));
                        values.insert(":seen_hot".into(), n(before.identity.hot_crossings));
                    }
                    writes.push(self.update(
                        key(&format!("LEAD#{survivor_id}"), "LEAD"),
                        &expression,
                        &condition,
                        values,
                        None,
                    )?);
                }
            }
        }

        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        let Err(error) = result else {
            let (merged, dropped_attributes) = applied
                .map(|a| (a.merged, a.dropped_attributes))
                .unwrap_or_default();
            return Ok(Some(Recorded {
                lead_id: survivor_id,
                merged,
                dropped_attributes,
                ..Recorded::default()
            }));
        };
        let reasons = cancellation_reasons(&error).unwrap_or_default();
        match cancellation(&reasons) {
            Cancelled::Duplicate => {
                // The message id was stored before.
                let message = self
                    .get(&format!("MSG#{}", event.message_id), "MSG")
                    .await?;
                let lead_id = match message.as_ref().and_then(|m| get_s(m, "lead_id")) {
                    Some(id) => self
                        .current_lead(id)
                        .await?
                        .and_then(|l| get_s(&l, "id").map(str::to_string)),
                    None => None,
                };
                let digest = message.as_ref().and_then(|m| get_s(m, "digest"));
                Ok(Some(Recorded::duplicate_of(
                    digest,
                    &record.digest,
                    lead_id,
                )))
            }
            Cancelled::Rejected => Err(StoreError::rejected(format!(
                "message {}: DynamoDB refused an item of this call as it is ({})",
                event.message_id,
                reasons.join(", ")
            ))),
            Cancelled::LostRace | Cancelled::Throttled => Ok(None),
            Cancelled::Other
                if matches!(
                    error.code(),
                    Some(
                        "TransactionConflictException"
                            | "ThrottlingException"
                            | "ProvisionedThroughputExceededException"
                    )
                ) =>
            {
                Ok(None)
            }
            Cancelled::Other => Err(sdk(error)),
        }
    }

    /// Copies a visitor's anonymous events, linked to lead `lead_id` since, into the
    /// lead's partition, where they stay as long as the lead (see `events`). The
    /// originals expire with the visitor's partition: a visitor the lead lets go later
    /// (past [`identity::MAX_HISTORY_SOURCES`]) leaves nothing behind for ever. Not
    /// done for a lead merged or being erased meanwhile.
    async fn adopt(&self, lead_id: &str, items: Vec<Item>) -> Result<bool, StoreError> {
        // One transaction: 100 writes, 4 MB; the lead's condition is one of them.
        const WRITES: usize = 99;
        const BYTES: usize = 3 * 1024 * 1024;
        let mut chunks: Vec<Vec<Item>> = vec![Vec::new()];
        let mut bytes = 0;
        for mut item in items {
            item.remove("expires_at");
            item.insert("PK".into(), s(format!("LEAD#{lead_id}")));
            let size = item_bytes(&item);
            let last = chunks.last_mut().unwrap_or_else(|| unreachable!());
            if !last.is_empty() && (last.len() == WRITES || bytes + size > BYTES) {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            chunks
                .last_mut()
                .unwrap_or_else(|| unreachable!())
                .push(item);
        }
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(&format!("LEAD#{lead_id}"), "LEAD")))
                .condition_expression("attribute_exists(PK) AND attribute_not_exists(merged_into)")
                .build()
                .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
            let mut writes = vec![TransactWriteItem::builder().condition_check(check).build()];
            for item in chunk {
                writes.push(self.put(item, None, None)?);
            }
            let Err(error) = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
            else {
                continue;
            };
            match cancellation_reasons(&error) {
                // Merged or erased meanwhile; or another reader adopting the same events:
                // the next reading adopts what is left.
                Some(reasons)
                    if reasons
                        .iter()
                        .any(|r| r == "ConditionalCheckFailed" || r == "TransactionConflict") =>
                {
                    return Ok(false);
                }
                _ => return Err(sdk(error)),
            }
        }
        Ok(true)
    }

    pub(crate) async fn query_all(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            // An empty prefix: the whole partition.
            request = if sk_prefix.is_empty() {
                request.key_condition_expression("PK = :pk")
            } else {
                request
                    .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                    .expression_attribute_values(":prefix", s(sk_prefix))
            };
            let out = request.send().await.map_err(sdk)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    async fn query_index(
        &self,
        index: &str,
        pk_name: &str,
        pk: &str,
        sk_condition: Option<(&str, AttributeValue)>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        match sk_condition {
            Some((condition, value)) => {
                self.query_index_where(
                    index,
                    pk_name,
                    pk,
                    Some(condition),
                    vec![(":sk", value)],
                    limit,
                )
                .await
            }
            None => {
                self.query_index_where(index, pk_name, pk, None, vec![], limit)
                    .await
            }
        }
    }

    /// An index's items of one partition, in sort-key order, with a sort-key `condition`
    /// on `values`, at most `limit`.
    async fn query_index_where(
        &self,
        index: &str,
        pk_name: &str,
        pk: &str,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut expression = format!("{pk_name} = :pk");
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_values(":pk", s(pk));
        if let Some(condition) = condition {
            expression.push_str(" AND ");
            expression.push_str(condition);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = request
                .clone()
                .key_condition_expression(&expression)
                .limit((limit - items.len()).min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() && items.len() < limit => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Writes a score; with `clean`, also clears the rescoring mark, only if no change
    /// arrived since `seen_seq`. `None` when a condition failed.
    async fn write_score(
        &self,
        update: &ScoreUpdate,
        clean: bool,
    ) -> Result<Option<Item>, StoreError> {
        let score = &update.score;
        let scored_at = time(score.at);
        let history = &update.history;
        let mut expression = String::from(
            "SET score = :score, score_h = :h, band = :band, scored_at = :at, hot_crossings = :crossings, scored_seq = :seen, \
             rank_pk = :rank_pk, rank_sk = :rank_sk, band_pk = :band_pk, scored_pk = :scored_pk, scored_sk = :scored_sk",
        );
        let mut condition = String::from(
            "attribute_exists(PK) AND attribute_not_exists(merged_into) AND scored_seq <= :seen",
        );
        let mut values: Item = HashMap::from([
            (":score".into(), s(to_json(score)?)),
            (":h".into(), n(score.score.hundredths())),
            (":band".into(), s(score.band.as_str())),
            (":at".into(), s(&scored_at)),
            (":crossings".into(), n(update.hot_crossings)),
            (":seen".into(), n(update.seen_seq)),
            (":rank_pk".into(), s("LEADS")),
            (
                ":rank_sk".into(),
                s(rank_key(score.score.hundredths(), &update.lead_id)),
            ),
            (
                ":band_pk".into(),
                s(format!("BAND#{}", score.band.as_str())),
            ),
            (":scored_pk".into(), s("SCORED")),
            (
                ":scored_sk".into(),
                s(format!("{scored_at}#{}", update.lead_id)),
            ),
        ]);
        // Saved only while the lead holds what the score was worked out from.
        if let Some(read) = &history.read {
            match read.band {
                Some(band) => {
                    condition.push_str(" AND band = :read_band");
                    values.insert(":read_band".into(), s(band.as_str()));
                }
                None => condition.push_str(" AND attribute_not_exists(band)"),
            }
            if !history.entries.is_empty() {
                condition.push_str(if read.history_rev == 0 {
                    " AND (attribute_not_exists(history_rev) OR history_rev = :read_rev)"
                } else {
                    " AND history_rev = :read_rev"
                });
                // Nothing is added to the history of a lead being erased.
                condition.push_str(" AND attribute_not_exists(erasing_at)");
                values.insert(":read_rev".into(), n(read.history_rev));
                let last = history.entries.last().map_or(read.history_rev, |e| e.rev);
                expression.push_str(", history_rev = :rev");
                values.insert(":rev".into(), n(last));
            }
            if let Some(stage) = &history.stage {
                expression.push_str(", stage = :stage");
                values.insert(":stage".into(), s(to_json(stage)?));
            }
        } else if !history.entries.is_empty() {
            return Err(StoreError::rejected(
                "history entries without what they were worked out from",
            ));
        }
        // A saved score ends a lead's time aside.
        expression.push_str(" REMOVE aside_reason, aside_failures, aside_since, aside_until");
        if clean {
            expression.push_str(", dirty_pk, dirty_sk");
            condition.push_str(" AND dirty_seq = :seen");
        }
        let lead_key = key(&format!("LEAD#{}", update.lead_id), "LEAD");
        if history.entries.is_empty() {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(lead_key))
                .update_expression(expression)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await;
            return match out {
                Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
                Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
                Err(error) => Err(sdk(error)),
            };
        }
        // With history: the score and the entries in one transaction.
        let mut writes =
            vec![self.update(lead_key.clone(), &expression, &condition, values, None)?];
        for entry in &history.entries {
            writes.push(self.put(history_item(entry)?, Some("attribute_not_exists(PK)"), None)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        {
            // A clean save needs no read back: nothing arrived since `seen_seq`.
            Ok(_) if clean => Ok(Some(Item::new())),
            Ok(_) => Ok(Some(
                self.get(&format!("LEAD#{}", update.lead_id), "LEAD")
                    .await?
                    .unwrap_or_default(),
            )),
            Err(error) => match cancellation_reasons(&error) {
                Some(reasons) if reasons.iter().any(|r| r == "ConditionalCheckFailed") => Ok(None),
                _ => Err(sdk(error)),
            },
        }
    }

    /// A rep's action: its entries, the token, the lead's stage, history count and
    /// rescoring mark, in one transaction.
    async fn write_action(&self, action: &ActionRecord) -> Result<ActionOutcome, StoreError> {
        let now = action
            .entries
            .first()
            .map_or_else(String::new, |e| time(e.at));
        let last = action.entries.last().map_or(action.read_rev, |e| e.rev);
        let mut expression = String::from(
            "SET history_rev = :rev, updated_at = :now, dirty_pk = :dirty, dirty_sk = :dirty_sk ADD dirty_seq :one",
        );
        let mut values: Item = HashMap::from([
            (":rev".into(), n(last)),
            (":read_rev".into(), n(action.read_rev)),
            (":now".into(), s(&now)),
            (":one".into(), n(1)),
            (":dirty".into(), s("DIRTY")),
            (":dirty_sk".into(), s(format!("{now}#{}", action.lead_id))),
        ]);
        if let Some(stage) = &action.stage {
            expression = expression.replace(" ADD", ", stage = :stage ADD");
            values.insert(":stage".into(), s(to_json(stage)?));
        }
        let condition = format!(
            "attribute_exists(PK) AND attribute_not_exists(merged_into) AND attribute_not_exists(erasing_at) AND {}",
            if action.read_rev == 0 {
                "(attribute_not_exists(history_rev) OR history_rev = :read_rev)"
            } else {
                "history_rev = :read_rev"
            }
        );
        let mut token = key(
            &format!("LEAD#{}", action.lead_id),
            &format!("ACTION#{}", action.token),
        );
        token.insert("at".into(), s(&now));
        let mut writes = vec![
            self.update(
                key(&format!("LEAD#{}", action.lead_id), "LEAD"),
                &expression,
                &condition,
                values,
                None,
            )?,
            self.put(token, Some("attribute_not_exists(PK)"), None)?,
        ];
        for entry in &action.entries {
            writes.push(self.put(history_item(entry)?, Some("attribute_not_exists(PK)"), None)?);
        }
        // The first action after a hot alert answers its follow-up (read first: a
        // condition that fails would cancel the action itself).
        let answered = writes.len();
        if action.crossing > 0
            && let Some(record) = self
                .get(
                    &format!("LEAD#{}", action.lead_id),
                    &follow_up_sk(action.crossing),
                )
                .await?
            && !record.contains_key("first_action_at")
        {
            let first = action.entries.iter().find_map(|e| match &e.change {
                hotlead_core::stage::Change::Action { action, .. } => Some(action.as_str()),
                _ => None,
            });
            writes.push(self.update(
                key(
                    &format!("LEAD#{}", action.lead_id),
                    &follow_up_sk(action.crossing),
                ),
                "SET first_action_at = :at, first_action = :action REMOVE pending_pk, pending_sk",
                "attribute_exists(PK) AND attribute_not_exists(first_action_at)",
                HashMap::from([
                    (":at".into(), s(&now)),
                    (":action".into(), s(first.unwrap_or("contacted"))),
                ]),
                None,
            )?);
        }
        let Err(error) = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        else {
            return Ok(ActionOutcome::Recorded);
        };
        let Some(reasons) = cancellation_reasons(&error) else {
            return Err(sdk(error));
        };
        let failed =
            |i: usize| reasons.get(i).map(String::as_str) == Some("ConditionalCheckFailed");
        if failed(1) {
            return Ok(ActionOutcome::Repeated);
        }
        if failed(answered) {
            return Err(StoreError::conflict(format!(
                "the follow-up of lead {} was answered meanwhile",
                action.lead_id
            )));
        }
        if failed(0) {
            return match self
                .get(&format!("LEAD#{}", action.lead_id), "LEAD")
                .await?
            {
                Some(item)
                    if !item.contains_key("merged_into") && !item.contains_key("erasing_at") =>
                {
                    Err(StoreError::conflict(format!(
                        "lead {} changed meanwhile",
                        action.lead_id
                    )))
                }
                _ => Err(StoreError::not_found("lead", action.lead_id.clone())),
            };
        }
        Err(sdk(error))
    }

    fn stored_lead(item: &Item) -> Result<StoredLead, StoreError> {
        let lead = LeadItem::from_item(item)?.identity;
        Ok(StoredLead {
            id: lead.id,
            created_at: lead.created_at,
            updated_at: parse_time(
                get_s(item, "updated_at").ok_or_else(|| corrupt("updated_at"))?,
            )?,
            attributes: lead.attributes,
            identities: lead.identities,
            score: match get_s(item, "score") {
                Some(_) => Some(json_of(item, "score")?),
                None => None,
            },
            hot_crossings: get_n(item, "hot_crossings") as u32,
            stage: match get_s(item, "stage") {
                Some(_) => Some(json_of(item, "stage")?),
                None => None,
            },
            history_rev: get_n(item, "history_rev").try_into().unwrap_or(0),
        })
    }
}

/// An outbox entry's item (`ALERT#<key>` / `ALERT`), pending from its creation; `lead_id`
/// empty for a notice that concerns no lead.
fn outbox_item(lead_id: &str, entry: &OutboxEntry) -> Result<Item, StoreError> {
    let mut item = key(&format!("ALERT#{}", entry.key), "ALERT");
    item.insert("key".into(), s(&entry.key));
    item.insert("lead_id".into(), s(lead_id));
    item.insert("created_at".into(), s(time(entry.created_at)));
    item.insert("message".into(), s(to_json(&entry.message)?));
    item.insert("attempts".into(), n(0));
    item.insert("next_attempt_at".into(), s(time(entry.created_at)));
    item.insert("pending_pk".into(), s("PENDING"));
    item.insert(
        "pending_sk".into(),
        s(format!("{}#{}", time(entry.created_at), entry.key)),
    );
    Ok(item)
}

fn follow_up_sk(crossing: u32) -> String {
    format!("FOLLOWUP#{crossing:010}")
}

/// A hot alert's follow-up item, in its lead's partition (erased with it): in the
/// `scored` index under `FOLLOWUP` by alert time (the figures), and while it waits for a
/// first action with a deadline, in the `pending` index under `SLA` by deadline.
fn follow_up_item(record: &FollowUpRecord) -> Item {
    let mut item = key(
        &format!("LEAD#{}", record.lead_id),
        &follow_up_sk(record.crossing),
    );
    let alerted = time(record.alerted_at);
    item.insert("lead_id".into(), s(&record.lead_id));
    item.insert("crossing".into(), n(record.crossing));
    item.insert("territory".into(), s(&record.territory));
    if let Some(owner) = &record.owner {
        item.insert("owner".into(), s(owner));
    }
    item.insert("alerted_at".into(), s(&alerted));
    item.insert("scored_pk".into(), s("FOLLOWUP"));
    item.insert(
        "scored_sk".into(),
        s(format!(
            "{alerted}#{}#{:010}",
            record.lead_id, record.crossing
        )),
    );
    if let Some(due) = record.due_at {
        let due = time(due);
        item.insert("due_at".into(), s(&due));
        item.insert("pending_pk".into(), s("SLA"));
        item.insert(
            "pending_sk".into(),
            s(format!("{due}#{}#{:010}", record.lead_id, record.crossing)),
        );
    }
    item
}

fn follow_up_of(item: &Item) -> Result<FollowUpRecord, StoreError> {
    let when = |name: &str| get_s(item, name).map(parse_time).transpose();
    Ok(FollowUpRecord {
        lead_id: get_s(item, "lead_id")
            .ok_or_else(|| corrupt("lead_id"))?
            .to_string(),
        crossing: get_n(item, "crossing").try_into().unwrap_or(0),
        territory: get_s(item, "territory").unwrap_or_default().to_string(),
        owner: get_s(item, "owner").map(str::to_string),
        alerted_at: when("alerted_at")?.ok_or_else(|| corrupt("alerted_at"))?,
        due_at: when("due_at")?,
        first_action_at: when("first_action_at")?,
        first_action: get_s(item, "first_action").and_then(hotlead_core::stage::RepAction::parse),
        escalated_at: when("escalated_at")?,
        closed_at: when("closed_at")?,
    })
}

/// A history entry's item, in its lead's partition (`HIST#<number>`), erased with it.
fn history_item(entry: &HistoryEntry) -> Result<Item, StoreError> {
    let mut item = key(
        &format!("LEAD#{}", entry.lead_id),
        &format!("HIST#{:010}", entry.rev),
    );
    item.insert("entry".into(), s(to_json(entry)?));
    Ok(item)
}

fn rank_key(score_hundredths: i64, id: &str) -> String {
    format!("{:019}#{id}", SCORE_OFFSET - score_hundredths)
}

#[async_trait]
impl Store for DynamoStore {
    async fn record(&self, record: Record) -> Result<Recorded, StoreError> {
        for attempt in 0..RECORD_ATTEMPTS {
            if let Some(recorded) = self.try_record(&record).await? {
                return Ok(recorded);
            }
            tokio::time::sleep(record_backoff(attempt)).await;
        }
        Err(StoreError::conflict(format!(
            "message {} kept losing races",
            record.event.message_id
        )))
    }

    async fn lead(&self, id: &str) -> Result<Option<StoredLead>, StoreError> {
        self.current_lead(id)
            .await?
            .as_ref()
            .map(Self::stored_lead)
            .transpose()
    }

    async fn events(&self, lead_id: &str) -> Result<Vec<Event>, StoreError> {
        let Some(item) = self.current_lead(lead_id).await? else {
            return Ok(Vec::new());
        };
        let lead = LeadItem::from_item(&item)?.identity;
        let mut partitions = vec![format!("LEAD#{}", lead.id)];
        partitions.extend(lead.merged_from.iter().map(|m| format!("LEAD#{m}")));
        partitions.extend(lead.history.iter().map(|a| format!("ANON#{a}")));
        let mut events = Vec::new();
        let mut own = BTreeSet::new();
        let mut to_adopt = Vec::new();
        for partition in partitions {
            for item in self.query_all(&partition, "EVENT#").await? {
                let sk = get_s(&item, "SK").unwrap_or_default().to_string();
                if partition.starts_with("LEAD#") {
                    own.insert(sk);
                } else if !own.contains(&sk) {
                    // An anonymous visitor's event, linked to this lead since: it is the
                    // lead's now, kept as long as the lead. The scorer reads every marked
                    // lead's events within minutes of the link, long before any expiry.
                    to_adopt.push(item.clone());
                }
                events.push(json_of::<Event>(&item, "body")?);
            }
        }
        if !to_adopt.is_empty() {
            // Stored before visitors' events were copied, a linked visitor's event may
            // have had its expiry removed: it gets one back once copied.
            let legacy: Vec<Item> = to_adopt
                .iter()
                .filter(|i| !i.contains_key("expires_at"))
                .cloned()
                .collect();
            let copied = self.adopt(&lead.id, to_adopt).await?;
            for item in legacy.into_iter().filter(|_| copied) {
                let (Some(pk), Some(sk)) = (get_s(&item, "PK"), get_s(&item, "SK")) else {
                    continue;
                };
                let event = json_of::<Event>(&item, "body")?;
                let until = Retention::default().anonymous_until(event.timestamp);
                let out = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .update_expression("SET expires_at = :until")
                    .condition_expression(
                        "attribute_exists(PK) AND attribute_not_exists(expires_at)",
                    )
                    .expression_attribute_values(":until", n(until.timestamp()))
                    .send()
                    .await;
                conditional(out)?;
            }
        }
        events.sort_by(|a, b| (a.timestamp, &a.message_id).cmp(&(b.timestamp, &b.message_id)));
        events.dedup_by(|a, b| a.message_id == b.message_id);
        Ok(events)
    }

    async fn ranking(
        &self,
        band: Option<Band>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<RankingPage, StoreError> {
        let after = cursor
            .map(RankCursor::given)
            .transpose()?
            .map(|c| rank_key(c.score_hundredths, &c.lead_id));
        let (index, pk_name, pk) = match band {
            None => ("ranking", "rank_pk", "LEADS".to_string()),
            Some(band) => ("band_ranking", "band_pk", format!("BAND#{}", band.as_str())),
        };
        let condition = after.map(|a| ("rank_sk > :sk", s(a)));
        let items = self
            .query_index(index, pk_name, &pk, condition, limit + 1)
            .await?;
        let mut leads = Vec::new();
        for item in items.iter().take(limit) {
            leads.push(Self::stored_lead(item)?);
        }
        let next = (items.len() > limit && limit > 0)
            .then(|| leads.last().map(|l| RankCursor::after(l).to_string()))
            .flatten();
        Ok(RankingPage { leads, next })
    }

    async fn dirty(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Dirty>, StoreError> {
        let dirty = |i: &Item| {
            if get_s(i, "merged_into").is_some() {
                return None;
            }
            Some(Dirty {
                lead_id: get_s(i, "id")?.to_string(),
                seq: get_n(i, "dirty_seq"),
                failures: u32::try_from(get_n(i, "aside_failures")).unwrap_or(0),
            })
        };
        let items = self
            .query_index("dirty", "dirty_pk", "DIRTY", None, limit)
            .await?;
        let mut marked: Vec<Dirty> = items.iter().filter_map(dirty).collect();
        let left = limit.saturating_sub(marked.len());
        if left > 0 {
            let due = format!("{}#~", time(now));
            let items = self
                .query_index(
                    "dirty",
                    "dirty_pk",
                    "ASIDE",
                    Some(("dirty_sk <= :sk", s(due))),
                    left,
                )
                .await?;
            marked.extend(items.iter().filter_map(dirty));
        }
        Ok(marked)
    }

    async fn set_aside(&self, aside: &SetAside) -> Result<(), StoreError> {
        let retry_at = time(aside.retry_at);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("LEAD#{}", aside.lead_id), "LEAD")))
            .update_expression(
                "SET dirty_pk = :aside, dirty_sk = :sk, aside_reason = :reason, aside_failures = :failures, \
                 aside_since = if_not_exists(aside_since, :since), aside_until = :until \
                 REMOVE scored_pk, scored_sk",
            )
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(merged_into) AND dirty_seq = :seq",
            )
            .expression_attribute_values(":aside", s("ASIDE"))
            .expression_attribute_values(":sk", s(format!("{retry_at}#{}", aside.lead_id)))
            .expression_attribute_values(":reason", s(&aside.reason))
            .expression_attribute_values(":failures", n(aside.failures))
            .expression_attribute_values(":since", s(time(aside.since)))
            .expression_attribute_values(":until", s(&retry_at))
            .expression_attribute_values(":seq", n(aside.seq))
            .send()
            .await;
        // A failed condition: it moved on meanwhile, which is fine.
        conditional(out).map(|_| ())
    }

    async fn set_aside_leads(&self, limit: usize) -> Result<Vec<SetAside>, StoreError> {
        // At most `limit` items read (the partition is ordered by retry time), so the
        // scheduled round's count stays one bounded query.
        let items = self
            .query_index("dirty", "dirty_pk", "ASIDE", None, limit)
            .await?;
        let mut leads = Vec::new();
        for item in items.iter().filter(|i| get_s(i, "merged_into").is_none()) {
            let retry_at =
                parse_time(get_s(item, "aside_until").ok_or_else(|| corrupt("aside_until"))?)?;
            leads.push(SetAside {
                lead_id: get_s(item, "id").ok_or_else(|| corrupt("id"))?.to_string(),
                seq: get_n(item, "dirty_seq"),
                failures: u32::try_from(get_n(item, "aside_failures")).unwrap_or(0),
                reason: get_s(item, "aside_reason").unwrap_or_default().to_string(),
                since: get_s(item, "aside_since")
                    .map(parse_time)
                    .transpose()?
                    .unwrap_or(retry_at),
                retry_at,
            });
        }
        leads.sort_by(|a, b| (a.since, &a.lead_id).cmp(&(b.since, &b.lead_id)));
        leads.truncate(limit);
        Ok(leads)
    }

    async fn scored_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Dirty>, StoreError> {
        let items = self
            .query_index(
                "scored",
                "scored_pk",
                "SCORED",
                Some(("scored_sk < :sk", s(time(before)))),
                limit,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| Some(Dirty::new(get_s(i, "id")?, get_n(i, "dirty_seq"))))
            .collect())
    }

    async fn save_score(&self, update: ScoreUpdate) -> Result<SaveOutcome, StoreError> {
        // Alerts first: each is written once by its key, so a crash between the two
        // writes re-proposes the same keys on the next rescore and sends nothing twice.
        for alert in &update.alerts {
            // With the alert, a pointer in the lead's partition, so that erasing the lead
            // finds every alert of it without a scan; both only while the lead is there
            // (not merged, not being erased), in one transaction.
            let mut pointer = key(
                &format!("LEAD#{}", update.lead_id),
                &format!("ALERT#{}", alert.key),
            );
            pointer.insert("key".into(), s(&alert.key));
            let item = outbox_item(&update.lead_id, alert)?;
            let lead_there = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(&format!("LEAD#{}", update.lead_id), "LEAD")))
                .condition_expression("attribute_exists(PK) AND attribute_not_exists(merged_into)")
                .build()
                .map_err(|e| StoreError::unavailable("building a condition").because(e))?;
            let mut writes = vec![
                TransactWriteItem::builder()
                    .condition_check(lead_there)
                    .build(),
                self.put(pointer, None, None)?,
                self.put(item, Some("attribute_not_exists(PK)"), None)?,
            ];
            // A hot alert's follow-up record goes with it: written once, with the alert.
            if let Some(record) = &update.follow_up
                && alert.key == format!("hot:{}:{}", update.lead_id, record.crossing)
            {
                writes.push(self.put(
                    follow_up_item(record),
                    Some("attribute_not_exists(PK)"),
                    None,
                )?);
            }
            let Err(error) = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
            else {
                continue;
            };
            let Some(reasons) = cancellation_reasons(&error) else {
                return Err(sdk(error));
            };
            let failed =
                |i: usize| reasons.get(i).map(String::as_str) == Some("ConditionalCheckFailed");
            if failed(0) {
                return Err(StoreError::conflict(format!(
                    "lead {} was merged or erased meanwhile",
                    update.lead_id
                )));
            }
            if !failed(2) && !failed(3) {
                // Not "the alert (or its follow-up) is stored already" (which is fine): a
                // conflict or throttling; the rescore is tried again.
                return Err(sdk(error));
            }
        }
        // Usually no event arrived while scoring: one write saves the score and clears the
        // rescoring mark. Otherwise the mark stays and a second write saves the score.
        if self.write_score(&update, true).await?.is_some() {
            return Ok(SaveOutcome::Saved);
        }
        match self.write_score(&update, false).await? {
            Some(item) if get_n(&item, "dirty_seq") > update.seen_seq => {
                Ok(SaveOutcome::SavedStillDirty)
            }
            Some(_) => Ok(SaveOutcome::Saved),
            None => Err(StoreError::conflict(format!(
                "lead {} was rescored or merged meanwhile",
                update.lead_id
            ))),
        }
    }

    async fn history(&self, lead_id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let Some(item) = self.current_lead(lead_id).await? else {
            return Ok(Vec::new());
        };
        let lead = LeadItem::from_item(&item)?.identity;
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for id in std::iter::once(&lead.id).chain(lead.merged_from.iter()) {
            for found in self.query_all(&format!("LEAD#{id}"), "HIST#").await? {
                entries.push(json_of(&found, "entry")?);
            }
        }
        entries.sort_by(|a, b| (a.at, &a.lead_id, a.rev).cmp(&(b.at, &b.lead_id, b.rev)));
        Ok(entries)
    }

    async fn record_action(&self, action: &ActionRecord) -> Result<ActionOutcome, StoreError> {
        self.write_action(action).await
    }

    async fn add_notice(&self, notice: &OutboxEntry) -> Result<bool, StoreError> {
        let item = outbox_item("", notice)?;
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(sdk(error)),
        }
    }

    async fn overdue_follow_ups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FollowUpRecord>, StoreError> {
        let items = self
            .query_index(
                "pending",
                "pending_pk",
                "SLA",
                Some(("pending_sk <= :sk", s(format!("{}#~", time(now))))),
                limit,
            )
            .await?;
        let records: Result<Vec<_>, _> = items.iter().map(follow_up_of).collect();
        Ok(records?
            .into_iter()
            .filter(FollowUpRecord::is_open)
            .collect())
    }

    async fn end_follow_up(
        &self,
        lead_id: &str,
        crossing: u32,
        at: DateTime<Utc>,
        alert: Option<OutboxEntry>,
    ) -> Result<bool, StoreError> {
        let record_key = key(&format!("LEAD#{lead_id}"), &follow_up_sk(crossing));
        let column = if alert.is_some() {
            "escalated_at"
        } else {
            "closed_at"
        };
        let ending = self.update(
            record_key,
            &format!("SET {column} = :at REMOVE pending_pk, pending_sk"),
            "attribute_exists(PK) AND attribute_not_exists(first_action_at) \
             AND attribute_not_exists(escalated_at) AND attribute_not_exists(closed_at)",
            HashMap::from([(":at".into(), s(time(at)))]),
            None,
        )?;
        let mut writes = vec![ending.clone()];
        if let Some(alert) = &alert {
            let mut pointer = key(&format!("LEAD#{lead_id}"), &format!("ALERT#{}", alert.key));
            pointer.insert("key".into(), s(&alert.key));
            let item = outbox_item(lead_id, alert)?;
            writes.push(self.put(pointer, None, None)?);
            writes.push(self.put(item, Some("attribute_not_exists(PK)"), None)?);
        }
        let Err(error) = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
        else {
            return Ok(true);
        };
        let Some(reasons) = cancellation_reasons(&error) else {
            return Err(sdk(error));
        };
        let failed =
            |i: usize| reasons.get(i).map(String::as_str) == Some("ConditionalCheckFailed");
        if failed(0) {
            return Ok(false);
        }
        if failed(2) {
            // The re-alert is stored already: end the follow-up alone.
            return match self
                .client
                .transact_write_items()
                .transact_items(ending)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(error) => match cancellation_reasons(&error) {
                    Some(reasons) if reasons.iter().any(|r| r == "ConditionalCheckFailed") => {
                        Ok(false)
                    }
                    _ => Err(sdk(error)),
                },
            };
        }
        Err(sdk(error))
    }

    async fn follow_ups(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<FollowUpRecord>, StoreError> {
        let items = self
            .query_index_where(
                "scored",
                "scored_pk",
                "FOLLOWUP",
                Some("scored_sk BETWEEN :from AND :to"),
                vec![
                    (":from", s(time(since))),
                    (":to", s(format!("{}#", time(until)))),
                ],
                limit,
            )
            .await?;
        let records: Result<Vec<FollowUpRecord>, _> = items.iter().map(follow_up_of).collect();
        Ok(records?
            .into_iter()
            .filter(|r| r.alerted_at >= since && r.alerted_at < until)
            .collect())
    }

    async fn pending_alerts(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let upper = format!("{}#~", time(now));
        let items = self
            .query_index(
                "pending",
                "pending_pk",
                "PENDING",
                Some(("pending_sk <= :sk", s(upper))),
                limit,
            )
            .await?;
        let mut pending = Vec::new();
        for item in items {
            let Some(alert_key) = get_s(&item, "key") else {
                continue;
            };
            // The index lags the table: confirm against the item itself.
            let Some(current) = self.get(&format!("ALERT#{alert_key}"), "ALERT").await? else {
                continue;
            };
            if current.contains_key("delivered_at") || current.contains_key("failed_at") {
                continue;
            }
            if get_s(&current, "claimed_until").is_some_and(|until| until > time(now).as_str()) {
                continue;
            }
            let next = parse_time(
                get_s(&current, "next_attempt_at").ok_or_else(|| corrupt("next_attempt_at"))?,
            )?;
            if next > now {
                continue;
            }
            pending.push(Pending {
                entry: OutboxEntry {
                    key: alert_key.to_string(),
                    created_at: parse_time(
                        get_s(&current, "created_at").ok_or_else(|| corrupt("created_at"))?,
                    )?,
                    message: json_of(&current, "message")?,
                },
                attempts: get_n(&current, "attempts") as u32,
            });
        }
        pending.sort_by(|a, b| {
            (a.entry.created_at, &a.entry.key).cmp(&(b.entry.created_at, &b.entry.key))
        });
        Ok(pending)
    }

    async fn alert_delivered(&self, alert_key: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("ALERT#{alert_key}"), "ALERT")))
            .update_expression(
                "SET delivered_at = :at REMOVE pending_pk, pending_sk, claimed_until",
            )
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(delivered_at)")
            .expression_attribute_values(":at", s(time(at)))
            .send()
            .await;
        // A failed condition: it moved on meanwhile, which is fine.
        conditional(out).map(|_| ())
    }

    async fn alert_failed(
        &self,
        alert_key: &str,
        error_text: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("ALERT#{alert_key}"), "ALERT")))
            .update_expression("SET attempts = attempts + :one, last_error = :error, next_attempt_at = :retry, pending_sk = :sk REMOVE claimed_until")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(delivered_at) AND attribute_not_exists(failed_at)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":error", s(error_text))
            .expression_attribute_values(":retry", s(time(retry_at)))
            .expression_attribute_values(":sk", s(format!("{}#{alert_key}", time(retry_at))))
            .send()
            .await;
        // A failed condition: it moved on meanwhile, which is fine.
        conditional(out).map(|_| ())
    }

    async fn claim_alert(
        &self,
        alert_key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("ALERT#{alert_key}"), "ALERT")))
            .update_expression("SET claimed_until = :until")
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(delivered_at) AND attribute_not_exists(failed_at) \
                 AND (attribute_not_exists(claimed_until) OR claimed_until <= :now)",
            )
            .expression_attribute_values(":until", s(time(until)))
            .expression_attribute_values(":now", s(time(now)))
            .send()
            .await;
        conditional(out)
    }

    async fn alert_abandoned(
        &self,
        alert_key: &str,
        error_text: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("ALERT#{alert_key}"), "ALERT")))
            .update_expression(
                "SET attempts = attempts + :one, last_error = :error, failed_at = :at, pending_pk = :failed, pending_sk = :sk \
                 REMOVE claimed_until",
            )
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(delivered_at) AND attribute_not_exists(failed_at)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":error", s(error_text))
            .expression_attribute_values(":at", s(time(at)))
            .expression_attribute_values(":failed", s("FAILED"))
            .expression_attribute_values(":sk", s(format!("{}#{alert_key}", time(at))))
            .send()
            .await;
        // A failed condition: it moved on meanwhile, which is fine.
        conditional(out).map(|_| ())
    }

    async fn erase(
        &self,
        who: &EraseSubject,
        at: DateTime<Utc>,
    ) -> Result<Option<Erased>, StoreError> {
        self.erase_subject(who, at).await
    }

    async fn erasable_ids(&self, who: &EraseSubject) -> Result<Vec<String>, StoreError> {
        self.erasable(who).await
    }

    async fn sweep(&self, _now: DateTime<Utc>, _retention: Retention) -> Result<Swept, StoreError> {
        // DynamoDB's TTL on `expires_at` deletes expired items by itself.
        Ok(Swept::default())
    }

    async fn failed_alerts(&self, limit: usize) -> Result<Vec<FailedAlert>, StoreError> {
        let items = self
            .query_index("pending", "pending_pk", "FAILED", None, usize::MAX >> 1)
            .await?;
        let mut failed = Vec::new();
        for item in &items {
            failed.push(FailedAlert {
                key: get_s(item, "key")
                    .ok_or_else(|| corrupt("key"))?
                    .to_string(),
                lead_id: get_s(item, "lead_id").unwrap_or_default().to_string(),
                attempts: u32::try_from(get_n(item, "attempts")).unwrap_or(0),
                error: get_s(item, "last_error").unwrap_or_default().to_string(),
                failed_at: parse_time(
                    get_s(item, "failed_at").ok_or_else(|| corrupt("failed_at"))?,
                )?,
            });
        }
        failed.sort_by(|a, b| (b.failed_at, &a.key).cmp(&(a.failed_at, &b.key)));
        failed.truncate(limit);
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }

    /// Only a real conflict is retried: an item DynamoDB refuses as it stands is rejected
    /// (a 422, never a 503 retried for ever), the dedupe item's or the event's condition is
    /// a duplicate, throttling backs off.
    #[test]
    fn cancellation_reasons_are_classified() {
        let case = |codes: &[&str]| cancellation(&reasons(codes));
        assert_eq!(
            case(&["None", "ValidationError", "None"]),
            Cancelled::Rejected
        );
        assert_eq!(
            case(&["None", "None", "ItemCollectionSizeLimitExceeded"]),
            Cancelled::Rejected
        );
        // A rejected item wins over a conflict in the same transaction: retrying cannot help.
        assert_eq!(
            case(&["None", "ConditionalCheckFailed", "ValidationError"]),
            Cancelled::Rejected
        );
        assert_eq!(
            case(&["ConditionalCheckFailed", "None"]),
            Cancelled::Duplicate
        );
        assert_eq!(
            case(&["None", "ConditionalCheckFailed", "None"]),
            Cancelled::Duplicate
        );
        assert_eq!(
            case(&["None", "None", "ConditionalCheckFailed"]),
            Cancelled::LostRace
        );
        assert_eq!(
            case(&["None", "None", "TransactionConflict"]),
            Cancelled::LostRace
        );
        assert_eq!(case(&["None", "ThrottlingError"]), Cancelled::Throttled);
        assert_eq!(
            case(&["ProvisionedThroughputExceeded"]),
            Cancelled::Throttled
        );
        assert_eq!(case(&[]), Cancelled::Other);
    }

    /// The size counted before writing is never below what DynamoDB counts (names and
    /// values in UTF-8 bytes), so an item that would pass 400 KB is refused first.
    #[test]
    fn item_sizes_count_names_and_values_in_utf8_bytes() {
        let mut item = Item::new();
        item.insert("PK".into(), s("LEAD#L-1"));
        item.insert("名前".into(), s("山田"));
        item.insert("n".into(), n(12345));
        assert_eq!(item_bytes(&item), 2 + 8 + 6 + 6 + 1 + 5);
        let mut big = Item::new();
        big.insert("attributes".into(), s("x".repeat(MAX_ITEM_BYTES)));
        assert!(item_bytes(&big) > MAX_ITEM_BYTES);
    }
}
