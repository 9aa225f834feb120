//! The deployment template (`infra/template.yaml`) against what the code needs: the
//! `ingest` function's DynamoDB grant limited by `dynamodb:LeadingKeys` to exactly the
//! partitions `hotlead_aws::iam` lists, secrets passed by ARN (never resolved into an
//! environment), per-route throttling on the public API.

use std::collections::BTreeSet;

use hotlead_aws::iam::{INGEST_ACTIONS, INGEST_PARTITIONS, leading_key_pattern};
use yaml_rust2::{Yaml, YamlLoader};

const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The template, short-form tags dropped (`!Ref X` reads as `X`, `!If [c, a, b]` as the list).
fn template() -> Yaml {
    YamlLoader::load_from_str(TEMPLATE)
        .expect("infra/template.yaml is YAML")
        .remove(0)
}

fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The inline policy statements of a function; any other kind of policy (a managed
/// policy, a SAM policy template) fails, since it could grant what the statements do not.
fn statements(function: &str) -> Vec<Yaml> {
    let t = template();
    let policies = &t["Resources"][function]["Properties"]["Policies"];
    let policies = policies
        .as_vec()
        .unwrap_or_else(|| panic!("{function} has a list of Policies"));
    let mut out = Vec::new();
    for policy in policies {
        let list = policy["Statement"].as_vec().unwrap_or_else(|| {
            panic!("{function}: every policy is an inline document, not {policy:?}")
        });
        out.extend(list.iter().cloned());
    }
    out
}

fn actions(statement: &Yaml) -> Vec<String> {
    strings(&statement["Action"])
}

#[test]
fn ingest_may_touch_only_the_partitions_it_writes() {
    let grants = hotlead_aws::iam::ingest_grants();
    let mut seen = BTreeSet::new();
    for statement in statements("IngestFunction") {
        let dynamo: Vec<String> = actions(&statement)
            .into_iter()
            .filter(|a| a.starts_with("dynamodb:"))
            .collect();
        if dynamo.is_empty() {
            continue;
        }
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
        let (_, patterns, needed) = grants
            .iter()
            .find(|(name, _, _)| *name == sid)
            .unwrap_or_else(|| {
                panic!("{sid}: a DynamoDB grant of ingest that hotlead_aws::iam::ingest_grants does not name")
            });
        seen.insert(sid.to_string());
        assert_eq!(
            statement["Effect"].as_str(),
            Some("Allow"),
            "{sid}: an Allow statement"
        );
        let condition = statement["Condition"]
            .as_hash()
            .unwrap_or_else(|| panic!("{sid}: ingest's DynamoDB grant has no Condition"));
        assert_eq!(
            condition.len(),
            1,
            "{sid}: one condition operator, ForAllValues:StringLike"
        );
        let leading = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
        assert!(
            !leading.is_badvalue(),
            "{sid}: ingest's DynamoDB grant lacks ForAllValues:StringLike on dynamodb:LeadingKeys"
        );
        let allowed: BTreeSet<String> = strings(leading).into_iter().collect();
        let expected: BTreeSet<String> = patterns.iter().cloned().collect();
        assert_eq!(
            allowed, expected,
            "{sid}: the LeadingKeys differ from hotlead_aws::iam"
        );
        for resource in strings(&statement["Resource"]) {
            if sid == "ReadRankingPage" {
                assert!(
                    resource.ends_with("/index/band_ranking"),
                    "{sid}: the band_ranking index only, got {resource}"
                );
                continue;
            }
            assert!(
                !resource.contains("/index/") && !resource.contains('*'),
                "{sid}: ingest reads no index; grant {resource} in a statement of its own, \
                 with LeadingKeys on the index's partition values, if it ever does"
            );
        }
        let granted: BTreeSet<String> = dynamo.into_iter().collect();
        let needed: BTreeSet<String> = needed.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            granted, needed,
            "{sid}: the DynamoDB actions differ from hotlead_aws::iam"
        );
    }
    let all: BTreeSet<String> = grants.iter().map(|(sid, _, _)| sid.to_string()).collect();
    assert_eq!(
        seen, all,
        "every grant hotlead_aws::iam names is in the template"
    );
    let first: BTreeSet<String> = INGEST_PARTITIONS
        .iter()
        .map(|p| leading_key_pattern(p))
        .collect();
    assert_eq!(first, grants[0].1.iter().cloned().collect());
    assert_eq!(INGEST_ACTIONS, grants[0].2.as_slice());
}

/// Of the items of rules, suggestions, outcomes and alerts, ingest may only read the
/// active rules version (for the lead page) and suggestions (their read-only page): none
/// of them is writable by it, and outcomes and alerts are not readable either.
#[test]
fn no_rules_suggestion_outcome_or_alert_partition_is_writable_by_ingest() {
    let t = template();
    for statement in statements("IngestFunction") {
        let writes = actions(&statement).iter().any(|a| {
            ["Put", "Update", "Delete", "BatchWrite"]
                .iter()
                .any(|w| a.starts_with(&format!("dynamodb:{w}")))
        });
        let leading = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
        for pattern in strings(leading) {
            let prefix = pattern.trim_end_matches('*');
            assert!(!prefix.is_empty(), "a pattern that matches every key");
            for other in [
                "RULES",
                "SUGGESTIONS",
                "SUGGESTION#1",
                "OUTCOMES#0",
                "ALERT#k",
            ] {
                let matches = if pattern.ends_with('*') {
                    other.starts_with(prefix)
                } else {
                    other == pattern
                };
                if matches {
                    assert!(
                        !writes && ["RULES", "SUGGESTIONS", "SUGGESTION#1"].contains(&other),
                        "{pattern} matches {other} in a statement that may write or read more"
                    );
                    if other == "RULES" {
                        assert_eq!(actions(&statement), ["dynamodb:GetItem"]);
                    } else {
                        assert_eq!(actions(&statement), ["dynamodb:GetItem", "dynamodb:Query"]);
                    }
                }
            }
        }
    }
    assert!(!t["Resources"]["IngestFunction"].is_badvalue());
}

#[test]
fn secrets_reach_the_functions_by_arn_only_and_each_may_read_just_its_own() {
    assert!(
        !TEMPLATE.contains("resolve:secretsmanager"),
        "a secret is resolved into the template (and so into a plain environment variable)"
    );
    let t = template();
    for (function, names) in [
        (
            "IngestFunction",
            &["HOTLEAD_WRITE_KEY", "HOTLEAD_LINK_SECRET"][..],
        ),
        ("ReviewFunction", &["HOTLEAD_WEBHOOK_SECRET"][..]),
        ("ScoreFunction", &["HOTLEAD_LINK_SECRET"][..]),
        ("LearnFunction", &["HOTLEAD_LINK_SECRET"][..]),
    ] {
        let variables = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
        let mut arns = Vec::new();
        for name in names {
            assert!(
                variables[*name].is_badvalue(),
                "{function} gets {name} in plain in its environment"
            );
            let arn_variable = hotlead_aws::secrets::arn_variable(name);
            let arn = strings(&variables[arn_variable.as_str()]);
            assert!(!arn.is_empty(), "{function} lacks {arn_variable}");
            arns.extend(arn);
        }
        let reads: Vec<Yaml> = statements(function)
            .into_iter()
            .filter(|s| actions(s).iter().any(|a| a.starts_with("secretsmanager:")))
            .collect();
        assert_eq!(reads.len(), 1, "{function}: one Secrets Manager statement");
        assert_eq!(actions(&reads[0]), ["secretsmanager:GetSecretValue"]);
        assert_eq!(
            strings(&reads[0]["Resource"]),
            arns,
            "{function} may read exactly the secrets its environment names"
        );
    }
}

#[test]
fn the_form_and_batch_routes_have_their_own_throttling() {
    let t = template();
    let events = &t["Resources"]["IngestFunction"]["Properties"]["Events"];
    for event in ["Form", "Batch"] {
        let settings = &events[event]["Properties"]["RouteSettings"];
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let parameter = settings[limit]
                .as_str()
                .unwrap_or_else(|| panic!("the {event} route has no {limit}"));
            assert!(
                !t["Parameters"][parameter].is_badvalue(),
                "{event}'s {limit} is the parameter {parameter}"
            );
        }
    }
}

/// Erasing is granted apart from reviewing: `DELETE /v1/leads/{lead_id}` is a route of
/// its own (so IAM sees it as such), the review policy denies it, the erase policy
/// allows only it.
#[test]
fn erasing_a_person_is_granted_apart_from_reviewing() {
    let t = template();
    let erase = &t["Resources"]["ReviewFunction"]["Properties"]["Events"]["Erase"]["Properties"];
    assert_eq!(erase["Method"].as_str(), Some("DELETE"));
    assert_eq!(erase["Path"].as_str(), Some("/v1/leads/{lead_id}"));
    let policy = |name: &str| -> Vec<(String, String)> {
        let statements = t["Resources"][name]["Properties"]["PolicyDocument"]["Statement"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name} has statements"))
            .clone();
        statements
            .iter()
            .map(|s| {
                assert_eq!(actions(s), ["execute-api:Invoke"], "{name}");
                (
                    s["Effect"].as_str().unwrap().to_string(),
                    strings(&s["Resource"]).join(""),
                )
            })
            .collect()
    };
    let delete = "/*/DELETE/v1/leads/*";
    let review = policy("ReviewAccessPolicy");
    assert!(
        review
            .iter()
            .any(|(effect, resource)| effect == "Deny" && resource.ends_with(delete)),
        "{review:?}"
    );
    let erase = policy("ErasePolicy");
    assert!(
        erase
            .iter()
            .all(|(effect, resource)| effect == "Allow" && resource.ends_with(delete)),
        "{erase:?}"
    );
}

/// The score function's stream is filtered to lead items, the only ones the scorer reads:
/// the filter passes what `LeadChange::from_image` takes and nothing else (so events,
/// dedupe keys and per-client request counts invoke nothing).
#[test]
fn the_stream_invokes_the_scorer_for_lead_items_only() {
    let t = template();
    let changes = &t["Resources"]["ScoreFunction"]["Properties"]["Events"]["Changes"];
    assert_eq!(changes["Type"].as_str(), Some("DynamoDB"));
    let filters = changes["Properties"]["FilterCriteria"]["Filters"]
        .as_vec()
        .expect("the stream has FilterCriteria");
    assert_eq!(filters.len(), 1);
    let pattern: serde_json::Value =
        serde_json::from_str(filters[0]["Pattern"].as_str().unwrap()).unwrap();
    let passed = pattern["dynamodb"]["NewImage"]["SK"]["S"]
        .as_array()
        .expect("a filter on the new image's sort key");
    assert_eq!(passed, &vec![serde_json::json!("LEAD")]);
    for (sk, is_lead) in [("LEAD", true), ("MSG", false), ("W#1790000000", false)] {
        let change = hotlead_app::LeadChange::from_image(
            "1",
            |name| match name {
                "SK" => Some(sk.to_string()),
                "id" => Some("L-1".to_string()),
                _ => None,
            },
            |_| None,
        );
        assert_eq!(change.is_some(), is_lead, "{sk}");
        assert_eq!(passed.iter().any(|p| p == sk), is_lead, "{sk}");
    }
}

/// The reps' lead pages are a route of the public API (no authorisation: the signed link
/// is the credential), served by the ingest function, and the score function signs the
/// links with the public API's address.
#[test]
fn the_lead_page_is_a_public_route_and_alerts_link_the_public_api() {
    let t = template();
    let page = &t["Resources"]["IngestFunction"]["Properties"]["Events"]["LeadPage"];
    assert_eq!(page["Type"].as_str(), Some("HttpApi"));
    assert_eq!(page["Properties"]["Method"].as_str(), Some("GET"));
    assert_eq!(page["Properties"]["Path"].as_str(), Some("/l/{lead_id}"));
    assert_eq!(page["Properties"]["ApiId"].as_str(), Some("PublicApi"));
    let score = &t["Resources"]["ScoreFunction"]["Properties"]["Environment"]["Variables"];
    let url = strings(&score["HOTLEAD_PUBLIC_URL"]).concat();
    assert!(url.contains("${PublicApi}"), "{url}");
}

/// Approving, rejecting and activating rules through the review API take an IAM session
/// signed in with MFA: the team's second factor for changing the live rules.
#[test]
fn deciding_on_rules_takes_an_mfa_session() {
    let t = template();
    let statements =
        &t["Resources"]["ReviewAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"];
    let deny = statements
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["Sid"].as_str() == Some("DecideOnlyWithMfa"))
        .expect("a DecideOnlyWithMfa statement");
    assert_eq!(deny["Effect"].as_str(), Some("Deny"));
    assert_eq!(
        deny["Condition"]["BoolIfExists"]["aws:MultiFactorAuthPresent"].as_str(),
        Some("false")
    );
    let resources = format!("{:?}", deny["Resource"]);
    for path in ["/POST/v1/suggestions/*", "/POST/v1/rules/*"] {
        assert!(resources.contains(path), "{path} in {resources}");
    }
}
