//! The [`LearningStore`] port on the same DynamoDB table.
//!
//! Items (PK / SK):
//! - `OUTCOMES#<shard>` / `O#<lead id>`: a deal outcome; 16 shards keep imports and reads
//!   of a million outcomes off one partition.
//! - `SUGGESTIONS` / `S#<id>`: a suggestion's head: review status, headline figures and
//!   how many body parts it has.
//! - `SUGGESTION#<id>` / `PART#<nnn>`: the suggestion body (JSON), in parts below the
//!   item size limit.
//! - `RULES` / `V#<version, 10 digits>`: a rules version; `RULES` / `STATE`: the latest and
//!   the active version numbers.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use hotlead_app::ports::{
    DealOutcome, LearningStore, NewRules, RulesVersion, StoreError, StoredSuggestion,
    SuggestionHead, SuggestionStatus, with_version,
};
use hotlead_core::identity::IdentityKey;

use crate::dynamo::{
    DynamoStore, Item, get_n, get_s, json_of, key, n, parse_time, s, sdk, time, to_json,
};

const OUTCOME_SHARDS: u64 = 16;
/// Body parts stay well below DynamoDB's 400 KB item limit.
const PART_BYTES: usize = 300_000;
/// Outcome writes in flight at once.
const OUTCOME_CONCURRENCY: usize = 16;

fn shard_of(lead_id: &str) -> u64 {
    // FNV-1a: stable across runs and builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in lead_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % OUTCOME_SHARDS
}

/// The key of a lead's outcome item.
pub(crate) fn outcome_key(lead_id: &str) -> (String, String) {
    (
        format!("OUTCOMES#{}", shard_of(lead_id)),
        format!("O#{lead_id}"),
    )
}

fn version_sk(version: u32) -> String {
    format!("V#{version:010}")
}

fn rules_version(item: &Item, active: Option<u32>) -> Result<RulesVersion, StoreError> {
    let version = get_n(item, "version") as u32;
    Ok(RulesVersion {
        version,
        name: get_s(item, "name").unwrap_or_default().to_string(),
        created_at: parse_time(get_s(item, "created_at").unwrap_or_default())?,
        source: get_s(item, "source").unwrap_or_default().to_string(),
        text: get_s(item, "text").unwrap_or_default().to_string(),
        activated_at: get_s(item, "activated_at").map(parse_time).transpose()?,
        active: Some(version) == active,
    })
}

impl DynamoStore {
    async fn rules_state(&self) -> Result<(u32, Option<u32>), StoreError> {
        let state = self.get("RULES", "STATE").await?;
        Ok(match state {
            None => (0, None),
            Some(item) => (
                get_n(&item, "latest") as u32,
                item.contains_key("active")
                    .then(|| get_n(&item, "active") as u32),
            ),
        })
    }

    /// The writes that add `rules` as version `latest + 1` and make it active, if the
    /// latest version is still `latest`.
    fn add_rules_writes(
        &self,
        rules: &NewRules,
        latest: u32,
    ) -> Result<(RulesVersion, Vec<TransactWriteItem>), StoreError> {
        let version = latest + 1;
        let at = time(rules.at);
        let text = with_version(&rules.text, version);
        let mut item = key("RULES", &version_sk(version));
        item.insert("version".into(), n(version));
        item.insert("name".into(), s(&rules.name));
        item.insert("created_at".into(), s(&at));
        item.insert("activated_at".into(), s(&at));
        item.insert("source".into(), s(&rules.source));
        item.insert("text".into(), s(&text));
        let put = self.put(item, Some("attribute_not_exists(PK)"), None)?;
        let state = self.update(
            key("RULES", "STATE"),
            "SET latest = :next, active = :next",
            "attribute_not_exists(PK) OR latest = :latest",
            Item::from([(":next".into(), n(version)), (":latest".into(), n(latest))]),
            None,
        )?;
        Ok((
            RulesVersion {
                version,
                name: rules.name.clone(),
                created_at: rules.at,
                source: rules.source.clone(),
                text,
                activated_at: Some(rules.at),
                active: true,
            },
            vec![put, state],
        ))
    }

    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }

    /// Sets a pending suggestion's review, in the same transaction as `more`.
    fn review_write(
        &self,
        id: &str,
        review: &SuggestionStatus,
    ) -> Result<TransactWriteItem, StoreError> {
        self.update(
            key("SUGGESTIONS", &format!("S#{id}")),
            "SET review = :review, review_status = :status",
            "review_status = :pending",
            Item::from([
                (":review".into(), s(to_json(review)?)),
                (":status".into(), s(review.name())),
                (":pending".into(), s("pending")),
            ]),
            None,
        )
    }

    /// Why a review write failed: no such suggestion, or it was decided already (else
    /// the transaction lost a race, and `error` says so).
    async fn review_conflict(&self, id: &str, error: StoreError) -> StoreError {
        match error {
            StoreError::Conflict { .. } => {
                match self.get("SUGGESTIONS", &format!("S#{id}")).await {
                    Ok(None) => StoreError::not_found("suggestion", id),
                    Ok(Some(item)) => match get_s(&item, "review_status") {
                        Some("pending") => error,
                        status => StoreError::conflict(format!(
                            "suggestion {id} is already {}",
                            status.unwrap_or("decided")
                        ))
                        .because(error),
                    },
                    Err(e) => e,
                }
            }
            other => other,
        }
    }
}

impl DynamoStore {
    /// Stores one outcome, in one transaction with a check that its lead is still there
    /// and unmerged: never for a lead erased since it was looked up (an erasure marks the
    /// lead first; the leads merged into it are checked as merged); a lead merged since
    /// gets it under the lead it merged into.
    async fn put_outcome(&self, mut outcome: DealOutcome) -> Result<(), StoreError> {
        for attempt in 0..8u32 {
            let (pk, sk) = outcome_key(&outcome.lead_id);
            let mut item = key(&pk, &sk);
            item.insert("lead_id".into(), s(&outcome.lead_id));
            item.insert("won".into(), AttributeValue::Bool(outcome.won));
            item.insert("closed_at".into(), s(time(outcome.closed_at)));
            item.insert("received_at".into(), s(time(outcome.received_at)));
            if let Some(amount) = outcome.amount {
                item.insert("amount".into(), n(amount));
            }
            let put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                // A later outcome replaces an earlier one, never the other way round.
                .condition_expression("attribute_not_exists(PK) OR closed_at <= :closed")
                .expression_attribute_values(":closed", s(time(outcome.closed_at)))
                .build()
                .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
            let lead = aws_sdk_dynamodb::types::ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(&format!("LEAD#{}", outcome.lead_id), "LEAD")))
                .condition_expression("attribute_exists(PK) AND attribute_not_exists(merged_into)")
                .build()
                .map_err(|e| StoreError::unavailable("building a DynamoDB request").because(e))?;
            let Err(error) = self
                .client
                .transact_write_items()
                .set_transact_items(Some(vec![
                    TransactWriteItem::builder().condition_check(lead).build(),
                    TransactWriteItem::builder().put(put).build(),
                ]))
                .send()
                .await
            else {
                return Ok(());
            };
            let Some(reasons) = crate::dynamo::cancellation_reasons(&error) else {
                return Err(sdk(error));
            };
            let failed =
                |i: usize| reasons.get(i).map(String::as_str) == Some("ConditionalCheckFailed");
            if failed(1) {
                // A later outcome is stored.
                return Ok(());
            }
            if failed(0) {
                // Merged (stored under the lead it merged into) or erased (not stored).
                match self.current_lead(&outcome.lead_id).await? {
                    Some(current) => {
                        outcome.lead_id = get_s(&current, "id")
                            .ok_or_else(|| crate::dynamo::corrupt("id"))?
                            .to_string();
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            if reasons.iter().any(|r| r == "TransactionConflict") {
                // The lead item was being written (an event, a score): again.
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                continue;
            }
            return Err(sdk(error));
        }
        Err(StoreError::conflict(format!(
            "the outcome of lead {} kept losing races",
            outcome.lead_id
        )))
    }
}

#[async_trait]
impl LearningStore for DynamoStore {
    async fn lead_for(&self, identity: &IdentityKey) -> Result<Option<String>, StoreError> {
        let Some(link) = self
            .get(&format!("ID#{}", identity.storage_key()), "ID")
            .await?
        else {
            return Ok(None);
        };
        let Some(lead_id) = get_s(&link, "lead_id") else {
            return Ok(None);
        };
        Ok(self
            .current_lead(lead_id)
            .await?
            .and_then(|item| get_s(&item, "id").map(str::to_string)))
    }

    async fn put_outcomes(&self, outcomes: &[DealOutcome]) -> Result<(), StoreError> {
        let mut pending = tokio::task::JoinSet::new();
        for outcome in outcomes {
            if pending.len() >= OUTCOME_CONCURRENCY
                && let Some(done) = pending.join_next().await
            {
                done.map_err(|e| StoreError::unavailable("storing outcomes").because(e))??;
            }
            let (store, outcome) = (self.clone(), outcome.clone());
            pending.spawn(async move { store.put_outcome(outcome).await });
        }
        while let Some(done) = pending.join_next().await {
            done.map_err(|e| StoreError::unavailable("storing outcomes").because(e))??;
        }
        Ok(())
    }

    async fn outcomes(&self) -> Result<Vec<DealOutcome>, StoreError> {
        let mut shards = tokio::task::JoinSet::new();
        for shard in 0..OUTCOME_SHARDS {
            let store = self.clone();
            shards.spawn(async move { store.query_all(&format!("OUTCOMES#{shard}"), "O#").await });
        }
        let mut out = Vec::new();
        while let Some(items) = shards.join_next().await {
            for item in
                items.map_err(|e| StoreError::unavailable("reading outcomes").because(e))??
            {
                out.push(DealOutcome {
                    lead_id: get_s(&item, "lead_id").unwrap_or_default().to_string(),
                    won: item
                        .get("won")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                    closed_at: parse_time(get_s(&item, "closed_at").unwrap_or_default())?,
                    amount: item
                        .get("amount")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok()),
                    received_at: parse_time(get_s(&item, "received_at").unwrap_or_default())?,
                });
            }
        }
        out.sort_by(|a, b| a.lead_id.cmp(&b.lead_id));
        Ok(out)
    }

    async fn save_suggestion(&self, stored: &StoredSuggestion) -> Result<(), StoreError> {
        let body = to_json(&stored.suggestion)?;
        let mut parts: Vec<&str> = Vec::new();
        let mut rest = body.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(PART_BYTES);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            parts.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        if parts.len() > 90 {
            return Err(StoreError::unavailable(format!(
                "suggestion {} is too large to store ({} bytes)",
                stored.id,
                body.len()
            )));
        }
        let mut head = key("SUGGESTIONS", &format!("S#{}", stored.id));
        head.insert("id".into(), s(&stored.id));
        head.insert("created_at".into(), s(time(stored.created_at)));
        head.insert("review".into(), s(to_json(&stored.review)?));
        head.insert("review_status".into(), s(stored.review.name()));
        head.insert("head".into(), s(to_json(&SuggestionHead::from(stored))?));
        head.insert("parts".into(), n(parts.len()));
        let mut writes = vec![self.put(head, Some("attribute_not_exists(PK)"), None)?];
        for (i, part) in parts.iter().enumerate() {
            let mut item = key(
                &format!("SUGGESTION#{}", stored.id),
                &format!("PART#{i:03}"),
            );
            item.insert("body".into(), s(*part));
            writes.push(self.put(item, None, None)?);
        }
        self.transact(writes).await
    }

    async fn suggestions(&self, limit: usize) -> Result<Vec<SuggestionHead>, StoreError> {
        let mut heads: Vec<SuggestionHead> = Vec::new();
        for item in self.query_all("SUGGESTIONS", "S#").await? {
            let mut head: SuggestionHead = json_of(&item, "head")?;
            head.review = json_of(&item, "review")?;
            heads.push(head);
        }
        heads.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        heads.truncate(limit);
        Ok(heads)
    }

    async fn suggestion(&self, id: &str) -> Result<Option<StoredSuggestion>, StoreError> {
        let Some(head) = self.get("SUGGESTIONS", &format!("S#{id}")).await? else {
            return Ok(None);
        };
        let parts = self.query_all(&format!("SUGGESTION#{id}"), "PART#").await?;
        let body: String = parts
            .iter()
            .map(|p| get_s(p, "body").unwrap_or_default())
            .collect();
        Ok(Some(StoredSuggestion {
            id: id.to_string(),
            created_at: parse_time(get_s(&head, "created_at").unwrap_or_default())?,
            review: json_of(&head, "review")?,
            suggestion: serde_json::from_str(&body)
                .map_err(|e| StoreError::corrupt(format!("suggestion {id}")).because(e))?,
        }))
    }

    async fn approve(
        &self,
        id: &str,
        by: &str,
        rules: NewRules,
    ) -> Result<RulesVersion, StoreError> {
        let (latest, _) = self.rules_state().await?;
        let (version, mut writes) = self.add_rules_writes(&rules, latest)?;
        writes.push(self.review_write(
            id,
            &SuggestionStatus::Approved {
                at: rules.at,
                by: by.to_string(),
                rules_version: version.version,
            },
        )?);
        match self.transact(writes).await {
            Ok(()) => Ok(version),
            Err(error) => Err(self.review_conflict(id, error).await),
        }
    }

    async fn reject(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let review = SuggestionStatus::Rejected {
            at,
            by: by.to_string(),
            reason: reason.to_string(),
        };
        match self.transact(vec![self.review_write(id, &review)?]).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.review_conflict(id, error).await),
        }
    }

    async fn add_rules(&self, rules: NewRules) -> Result<RulesVersion, StoreError> {
        let (latest, _) = self.rules_state().await?;
        let (version, writes) = self.add_rules_writes(&rules, latest)?;
        self.transact(writes).await?;
        Ok(version)
    }

    async fn activate_rules(
        &self,
        version: u32,
        at: DateTime<Utc>,
    ) -> Result<RulesVersion, StoreError> {
        let mark = self.update(
            key("RULES", &version_sk(version)),
            "SET activated_at = :at",
            "attribute_exists(PK)",
            Item::from([(":at".into(), s(time(at)))]),
            None,
        )?;
        let state = self.update(
            key("RULES", "STATE"),
            "SET active = :version",
            "attribute_exists(PK)",
            Item::from([(":version".into(), n(version))]),
            None,
        )?;
        match self.transact(vec![mark, state]).await {
            Ok(()) => {}
            // A condition failed: no such version (or none at all), unless the transaction
            // lost a race.
            Err(error @ StoreError::Conflict { .. }) => {
                return Err(match self.get("RULES", &version_sk(version)).await? {
                    None => StoreError::not_found("rules version", version.to_string()),
                    Some(_) => error,
                });
            }
            Err(other) => return Err(other),
        }
        let item = self
            .get("RULES", &version_sk(version))
            .await?
            .ok_or_else(|| StoreError::corrupt(format!("rules version {version} vanished")))?;
        rules_version(&item, Some(version))
    }

    async fn rules_history(&self) -> Result<Vec<RulesVersion>, StoreError> {
        let (_, active) = self.rules_state().await?;
        let mut versions = self
            .query_all("RULES", "V#")
            .await?
            .iter()
            .map(|item| rules_version(item, active))
            .collect::<Result<Vec<_>, _>>()?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(versions)
    }

    async fn active_rules(&self) -> Result<Option<RulesVersion>, StoreError> {
        let (_, active) = self.rules_state().await?;
        let Some(version) = active else {
            return Ok(None);
        };
        self.get("RULES", &version_sk(version))
            .await?
            .map(|item| rules_version(&item, active))
            .transpose()
    }
}
