//! The single-table design (see ARCHITECTURE.md) and creating the table.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

/// The attribute DynamoDB's TTL reads: epoch seconds after which an item may be deleted
/// (anonymous visitors' events, dedupe keys; see `Retention`).
pub const EXPIRES_AT: &str = "expires_at";

/// Global secondary indexes: name, partition attribute, sort attribute.
pub const INDEXES: &[(&str, &str, &str)] = &[
    ("ranking", "rank_pk", "rank_sk"),
    ("band_ranking", "band_pk", "rank_sk"),
    ("dirty", "dirty_pk", "dirty_sk"),
    ("scored", "scored_pk", "scored_sk"),
    ("pending", "pending_pk", "pending_sk"),
];

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| e.to_string())
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())
}

/// Creates the table (on-demand, with a stream of new images) and waits until it is
/// active, with expiry on [`EXPIRES_AT`]. Returns the stream ARN. A table that exists
/// already is kept as it is, its expiry turned on if it is off (a table made before
/// expiry was written): running it again is safe.
pub async fn create_table(client: &Client, table: &str) -> Result<Option<String>, String> {
    let mut names: Vec<&str> = vec!["PK", "SK"];
    for (_, pk, sk) in INDEXES {
        for name in [*pk, *sk] {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash)?)
        .key_schema(key("SK", KeyType::Range)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(|e| e.to_string())?,
        );
    for name in names {
        request = request.attribute_definitions(string_attribute(name)?);
    }
    for (index, pk, sk) in INDEXES {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(*index)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let stream = match request.send().await {
        Ok(created) => created
            .table_description()
            .and_then(|d| d.latest_stream_arn())
            .map(str::to_string),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            None
        }
        Err(e) => {
            return Err(format!(
                "cannot create table {table}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ));
        }
    };
    for _ in 0..100 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = described
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str().to_string());
        if status.as_deref() == Some("ACTIVE") {
            let stream = stream.or_else(|| {
                described
                    .table()
                    .and_then(|t| t.latest_stream_arn())
                    .map(str::to_string)
            });
            let ttl = client
                .describe_time_to_live()
                .table_name(table)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the expiry of table {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
            let on = ttl.time_to_live_description().is_some_and(|d| {
                d.attribute_name() == Some(EXPIRES_AT)
                    && matches!(
                        d.time_to_live_status(),
                        Some(
                            aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                                | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
                        )
                    )
            });
            if on {
                return Ok(stream);
            }
            client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(EXPIRES_AT)
                        .enabled(true)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot turn on expiry for table {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
            return Ok(stream);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(format!("table {table} did not become active"))
}
