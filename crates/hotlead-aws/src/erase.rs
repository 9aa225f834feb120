//! Erasing a lead on DynamoDB, and the retention of what belongs to no lead.
//!
//! An erasure first *marks* the lead (`merged_into` set to [`ERASED`], `erasing_at`, its
//! attributes, score and index keys removed): every writer conditions on
//! `attribute_not_exists(merged_into)` and every reader follows `merged_into`, so from
//! then on the lead is gone for all of them and no write can add to it. Then it deletes,
//! without a scan, what the lead item leads to: the partitions `LEAD#<id>` of the lead and
//! of every lead merged into it (events, and the `ALERT#<key>` pointers written with each
//! alert), the outbox entries, the message ids of the events, the anonymous partitions
//! the lead linked, the outcomes, the identity links still pointing at it; the lead item
//! goes last, in one transaction with the lead's own identity links. A process that dies
//! part way leaves the marked item and its links, and erasing again by the lead's id or
//! by its e-mail address finishes the work.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};
use chrono::{DateTime, Utc};
use hotlead_app::ports::{EraseSubject, Erased, StoreError};

use crate::dynamo::{DynamoStore, Item, conditional, get_s, key, s, sdk, time};

/// What `merged_into` holds while a lead is being erased: no lead has this id.
pub(crate) const ERASED: &str = "-erased-";

/// The attribute of an identity link taken over from a lead whose erasure did not finish:
/// that lead's id (see `try_record`).
pub(crate) const UNFINISHED: &str = "unfinished_erasure";

/// DynamoDB's limit of writes in one `BatchWriteItem`.
const BATCH_WRITES: usize = 25;
/// DynamoDB's limit of writes in one transaction.
const TRANSACTION_WRITES: usize = 100;
/// Rounds of retrying the writes DynamoDB left unprocessed (throttling).
const BATCH_ATTEMPTS: u32 = 8;

/// The message id in an event's sort key, `EVENT#<time>#<message id>` (times hold no `#`).
fn message_id_of(sort_key: &str) -> Option<&str> {
    let mut parts = sort_key.splitn(3, '#');
    (parts.next()? == "EVENT").then_some(())?;
    parts.next()?;
    parts.next()
}

fn list_of(item: &Item, name: &str) -> Result<Vec<String>, StoreError> {
    match get_s(item, name) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| StoreError::corrupt(name.to_string()).because(e))
        }
        None => Ok(Vec::new()),
    }
}

impl DynamoStore {
    /// The lead item an id stands for, an erasure in progress included.
    async fn lead_to_erase(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let mut id = id.to_string();
        for _ in 0..32 {
            let Some(item) = self.get(&format!("LEAD#{id}"), "LEAD").await? else {
                return Ok(None);
            };
            if item.contains_key("erasing_at") {
                return Ok(Some(item));
            }
            match get_s(&item, "merged_into") {
                Some(next) => id = next.to_string(),
                None => return Ok(Some(item)),
            }
        }
        Err(StoreError::corrupt(format!("merge chain of {id} too long")))
    }

    /// Marks the lead as being erased (see the module's documentation) and returns the
    /// item as marked: its lists (merged leads, keys, anonymous sources) are final, since
    /// no writer can change it after the mark. `None` when it was merged into another lead
    /// first (which is then erased instead).
    async fn mark_erasing(
        &self,
        item: &Item,
        at: DateTime<Utc>,
    ) -> Result<Option<Item>, StoreError> {
        if item.contains_key("erasing_at") {
            return Ok(Some(item.clone()));
        }
        let pk = get_s(item, "PK").unwrap_or_default().to_string();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&pk, "LEAD")))
            .update_expression(
                "SET merged_into = :erased, erasing_at = :now \
                 REMOVE attributes, score, score_h, band, rank_pk, rank_sk, band_pk, dirty_pk, dirty_sk, \
                 scored_pk, scored_sk, aside_reason, aside_failures, aside_since, aside_until",
            )
            // Merged meanwhile: the lead it merged into is erased instead.
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(merged_into)")
            .expression_attribute_values(":erased", s(ERASED))
            .expression_attribute_values(":now", s(time(at)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(error) => Err(sdk(error)),
        }
    }

    /// Deletes items by key, 25 at a time, retrying what DynamoDB leaves unprocessed.
    async fn delete_all(&self, mut keys: Vec<Item>) -> Result<(), StoreError> {
        // One batch may not name a key twice (an event stored twice under one message id,
        // once while anonymous and once after its dedupe key expired, shares that key).
        let mut seen = BTreeSet::new();
        keys.retain(|k| {
            seen.insert((
                get_s(k, "PK").unwrap_or_default().to_string(),
                get_s(k, "SK").unwrap_or_default().to_string(),
            ))
        });
        for chunk in keys.chunks(BATCH_WRITES) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::unavailable("building a deletion").because(e))
                })
                .collect::<Result<_, _>>()?;
            for attempt in 0..BATCH_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(sdk)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(StdDuration::from_millis(50 << attempt)).await;
            }
            if !requests.is_empty() {
                return Err(StoreError::unavailable(
                    "DynamoDB left deletions unprocessed; erase again",
                ));
            }
        }
        Ok(())
    }

    /// Deletes an item and says whether it was there.
    async fn delete_counted(&self, pk: &str, sk: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Deletes an identity link if it points at one of `lead_ids`; says whether it did.
    async fn delete_link_of(
        &self,
        identity: &str,
        lead_ids: &[String],
    ) -> Result<bool, StoreError> {
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut names = Vec::new();
        for (i, lead) in lead_ids.iter().enumerate() {
            values.insert(format!(":l{i}"), s(lead));
            names.push(format!(":l{i}"));
        }
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("ID#{identity}"), "ID")))
            .condition_expression(format!("lead_id IN ({})", names.join(", ")))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        // A link that points at another lead now is that lead's: left alone.
        conditional(out)
    }

    /// Deletes the lead item and, in the same transaction, those of its links that point
    /// at it or at a lead merged into it (a link taken over by a new lead meanwhile is
    /// left to that lead). Returns how many links.
    async fn delete_lead_and_links(
        &self,
        lead_id: &str,
        lead_ids: &[String],
        links: &BTreeSet<String>,
        mut merged_items: Vec<Item>,
    ) -> Result<usize, StoreError> {
        let mut links: Vec<&String> = links.iter().collect();
        // One transaction holds 100 writes; a lead holds fewer links and merged leads
        // than that (24 and 32), but a corrupt item must not make erasing impossible.
        let mut removed = 0;
        while merged_items.len() > TRANSACTION_WRITES / 2 {
            let extra = merged_items.split_off(TRANSACTION_WRITES / 2);
            self.delete_all(extra).await?;
        }
        while links.len() + merged_items.len() > TRANSACTION_WRITES - 1 {
            let identity = links.pop().unwrap_or_else(|| unreachable!());
            removed += usize::from(self.delete_link_of(identity, lead_ids).await?);
        }
        for _ in 0..16 {
            let mut writes = Vec::new();
            let mut taken_over = Vec::new();
            for identity in &links {
                let Some(link) = self.get(&format!("ID#{identity}"), "ID").await? else {
                    continue;
                };
                if get_s(&link, UNFINISHED) == Some(lead_id) {
                    taken_over.push(identity.to_string());
                }
                let Some(linked) =
                    get_s(&link, "lead_id").filter(|l| lead_ids.iter().any(|i| i == l))
                else {
                    continue;
                };
                writes.push(self.delete(
                    key(&format!("ID#{identity}"), "ID"),
                    "lead_id = :from",
                    s(linked),
                )?);
            }
            let count = writes.len();
            for merged in &merged_items {
                let delete = aws_sdk_dynamodb::types::Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(merged.clone()))
                    .build()
                    .map_err(|e| {
                        StoreError::unavailable("building a DynamoDB request").because(e)
                    })?;
                writes.push(
                    aws_sdk_dynamodb::types::TransactWriteItem::builder()
                        .delete(delete)
                        .build(),
                );
            }
            writes.push(self.delete(
                key(&format!("LEAD#{lead_id}"), "LEAD"),
                "merged_into = :from",
                s(ERASED),
            )?);
            let Err(error) = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
            else {
                // The links the person's new lead took over no longer name this one.
                for identity in taken_over {
                    self.forget_unfinished(&identity, lead_id).await?;
                }
                return Ok(removed + count);
            };
            match crate::dynamo::cancellation_reasons(&error) {
                Some(reasons)
                    if reasons.last().map(String::as_str) == Some("ConditionalCheckFailed") =>
                {
                    // The lead item is gone: another erasure finished first.
                    return Ok(removed);
                }
                // A link changed between reading and deleting it: read them again.
                Some(reasons)
                    if reasons
                        .iter()
                        .any(|r| r == "ConditionalCheckFailed" || r == "TransactionConflict") => {}
                _ => return Err(sdk(error)),
            }
        }
        Err(StoreError::conflict(format!(
            "the links of lead {lead_id} kept changing while it was being erased"
        )))
    }

    /// Removes the name of an erasure finished from a link taken over from it.
    async fn forget_unfinished(&self, identity: &str, lead_id: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&format!("ID#{identity}"), "ID")))
            .update_expression(format!("REMOVE {UNFINISHED}"))
            .condition_expression(format!("{UNFINISHED} = :lead"))
            .expression_attribute_values(":lead", s(lead_id))
            .send()
            .await;
        conditional(out).map(|_| ())
    }

    /// The leads whose erasure did not finish that the links of `keys` name (taken over
    /// by the person since).
    async fn unfinished_named_by(
        &self,
        keys: impl IntoIterator<Item = String>,
        besides: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut named = Vec::new();
        for identity in keys {
            if let Some(link) = self.get(&format!("ID#{identity}"), "ID").await?
                && let Some(lead) = get_s(&link, UNFINISHED)
                && !besides.iter().any(|b| b == lead)
                && !named.iter().any(|n| n == lead)
            {
                if self.lead_to_erase(lead).await?.is_some() {
                    named.push(lead.to_string());
                } else {
                    // Finished since (the process died before its name was removed).
                    self.forget_unfinished(&identity, lead).await?;
                }
            }
        }
        Ok(named)
    }

    /// See [`hotlead_app::ports::Store::erasable_ids`].
    pub(crate) async fn erasable(&self, who: &EraseSubject) -> Result<Vec<String>, StoreError> {
        let start = match who {
            EraseSubject::Lead(id) => Some(id.clone()),
            EraseSubject::Key(k) => self
                .get(&format!("ID#{}", k.storage_key()), "ID")
                .await?
                .and_then(|link| get_s(&link, "lead_id").map(str::to_string)),
        };
        let Some(start) = start else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        let mut todo = vec![start];
        while let Some(id) = todo.pop() {
            let Some(item) = self.lead_to_erase(&id).await? else {
                continue;
            };
            let lead_id = get_s(&item, "id").unwrap_or_default().to_string();
            if ids.contains(&lead_id) || ids.len() > 256 {
                continue;
            }
            ids.push(lead_id.clone());
            ids.extend(list_of(&item, "merged_from")?);
            todo.extend(
                self.unfinished_named_by(list_of(&item, "identities")?, &ids)
                    .await?,
            );
        }
        Ok(ids)
    }

    /// Erases what an identity key's link points at (see [`EraseSubject::Key`]).
    pub(crate) async fn erase_subject(
        &self,
        who: &EraseSubject,
        at: DateTime<Utc>,
    ) -> Result<Option<Erased>, StoreError> {
        let identity = match who {
            EraseSubject::Lead(id) => return self.erase_lead(id, at).await,
            EraseSubject::Key(k) => k.storage_key(),
        };
        let Some(link) = self.get(&format!("ID#{identity}"), "ID").await? else {
            return Ok(None);
        };
        let Some(linked) = get_s(&link, "lead_id").map(str::to_string) else {
            return Err(crate::dynamo::corrupt("lead_id"));
        };
        let erased = self.erase_lead(&linked, at).await?;
        if erased.is_none() {
            // A link to no lead: removed all the same (unless a new lead took it over).
            self.delete_link_of(&identity, &[linked]).await?;
        }
        Ok(erased)
    }

    pub(crate) async fn erase_lead(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Erased>, StoreError> {
        let mut marked = None;
        for _ in 0..16 {
            let Some(item) = self.lead_to_erase(id).await? else {
                return Ok(None);
            };
            if let Some(item) = self.mark_erasing(&item, at).await? {
                marked = Some(item);
                break;
            }
        }
        let Some(item) = marked else {
            return Err(StoreError::conflict(format!(
                "lead {id} kept changing while it was being erased"
            )));
        };
        let lead_id = get_s(&item, "id")
            .ok_or_else(|| crate::dynamo::corrupt("id"))?
            .to_string();
        let mut lead_ids = vec![lead_id.clone()];
        lead_ids.extend(list_of(&item, "merged_from")?);
        let mut identities: BTreeSet<String> = list_of(&item, "identities")?.into_iter().collect();
        let mut partitions: Vec<String> = lead_ids.iter().map(|l| format!("LEAD#{l}")).collect();
        partitions.extend(
            list_of(&item, "anon_sources")?
                .iter()
                .map(|a| format!("ANON#{a}")),
        );

        let mut erased = Erased {
            lead_id: lead_id.clone(),
            leads: lead_ids.len(),
            ..Erased::default()
        };
        // The person's earlier lead, whose erasure stopped part way before they came
        // back: finished first (its name is on the links deleted last).
        let mut finished_ids = Vec::new();
        for unfinished in self
            .unfinished_named_by(list_of(&item, "identities")?, &lead_ids)
            .await?
        {
            if let Some(done) = Box::pin(self.erase_lead(&unfinished, at)).await? {
                erased.leads += done.leads;
                erased.events += done.events;
                erased.identities += done.identities;
                erased.alerts += done.alerts;
                erased.outcomes += done.outcomes;
                finished_ids.extend(done.lead_ids);
            }
        }
        let mut items_to_delete: Vec<Item> = Vec::new();
        let mut merged_items: Vec<Item> = Vec::new();
        let mut alerts: Vec<String> = Vec::new();
        for partition in &partitions {
            for found in self.query_all(partition, "").await? {
                let sk = get_s(&found, "SK").unwrap_or_default().to_string();
                if sk == "LEAD" {
                    if partition != &format!("LEAD#{lead_id}") {
                        identities.extend(list_of(&found, "identities").unwrap_or_default());
                        merged_items.push(key(partition, &sk));
                    }
                    continue;
                }
                if let Some(message_id) = message_id_of(&sk) {
                    erased.events += 1;
                    items_to_delete.push(key(&format!("MSG#{message_id}"), "MSG"));
                } else if let Some(alert) = sk.strip_prefix("ALERT#") {
                    alerts.push(alert.to_string());
                }
                items_to_delete.push(key(partition, &sk));
            }
        }
        for alert in &alerts {
            if self
                .delete_counted(&format!("ALERT#{alert}"), "ALERT")
                .await?
            {
                erased.alerts += 1;
            }
        }
        for lead in &lead_ids {
            let (pk, sk) = crate::learning::outcome_key(lead);
            if self.delete_counted(&pk, &sk).await? {
                erased.outcomes += 1;
            }
        }
        self.delete_all(items_to_delete).await?;
        // The links the merged leads held that the lead does not hold (let go when it
        // was over its limit, and pointing at them still) go before the merged items
        // that list them.
        let own: BTreeSet<String> = list_of(&item, "identities")?.into_iter().collect();
        for identity in identities.difference(&own) {
            if self.delete_link_of(identity, &lead_ids).await? {
                erased.identities += 1;
            }
        }
        // Last, in one transaction: the merged leads' items, the lead's own links and the
        // lead item. Until then, erasing again finds the lead by its id, by a merged
        // lead's id and by its e-mail address.
        erased.identities += self
            .delete_lead_and_links(&lead_id, &lead_ids, &own, merged_items)
            .await?;
        erased.lead_ids = lead_ids;
        erased.lead_ids.extend(finished_ids);
        Ok(Some(erased))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_is_read_from_an_events_sort_key() {
        assert_eq!(
            message_id_of("EVENT#2026-12-01T00:00:00.000000Z#m-1#x"),
            Some("m-1#x")
        );
        assert_eq!(message_id_of("ALERT#hot:L-1:1"), None);
        assert_eq!(message_id_of("LEAD"), None);
    }
}
