//! Writing rules files: the feature file (current rules plus candidates) and the suggested
//! file (the same rules with learned points). Edits keep the analyst's comments and layout.

use std::collections::HashMap;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::discover::{Axis, Candidate};

pub const LEARNED_FIT: &str = "learned-fit";
pub const LEARNED_ENGAGEMENT: &str = "learned-engagement";

const EMPTY: &str = r#"name = "learned"
version = 1
description = "Rules learned from closed deals"

[bands]
hot = 80
warm = 40
"#;

#[derive(Debug, thiserror::Error)]
#[error("the rules file is not valid TOML: {0}")]
pub struct RulesTextError(String);

/// The current rules with the candidates appended, each worth 1 point (a counted candidate
/// up to its cap), so that a rule's term is its match or count.
pub fn feature_rules(
    current: Option<&str>,
    candidates: &[Candidate],
) -> Result<String, RulesTextError> {
    let mut doc: DocumentMut = current
        .unwrap_or(EMPTY)
        .parse()
        .map_err(|e: toml_edit::TomlError| RulesTextError(e.to_string()))?;
    if candidates.is_empty() {
        return Ok(doc.to_string());
    }
    let groups = doc
        .entry("groups")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| RulesTextError("`groups` is not a table".into()))?;
    groups.set_implicit(true);
    for (id, axis, label) in [
        (LEARNED_FIT, "fit", "Learned: attributes"),
        (LEARNED_ENGAGEMENT, "engagement", "Learned: behaviour"),
    ] {
        if !groups.contains_key(id) {
            let mut group = Table::new();
            group.insert("label", value(label));
            group.insert("axis", value(axis));
            groups.insert(id, Item::Table(group));
        }
    }
    let rules = doc
        .entry("rules")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| RulesTextError("`rules` is not an array of tables".into()))?;
    for candidate in candidates {
        let mut rule = Table::new();
        rule.insert("id", value(candidate.id.as_str()));
        rule.insert("label", value(candidate.label.as_str()));
        rule.insert(
            "group",
            value(match candidate.axis {
                Axis::Fit => LEARNED_FIT,
                Axis::Engagement => LEARNED_ENGAGEMENT,
            }),
        );
        rule.insert("points", value(1));
        for (key, test) in &candidate.body {
            rule.insert(key, Item::Value(test.clone()));
        }
        if let Some(cap) = candidate.count_cap {
            rule.insert("cap", value(i64::from(cap)));
        }
        rules.push(rule);
    }
    Ok(doc.to_string())
}

/// What to write into the suggested file.
#[derive(Debug, Clone)]
pub struct Suggested<'a> {
    /// New points by rule id; a rule not named is removed (unless it holds a band).
    pub points: &'a HashMap<String, i64>,
    pub hot: i64,
    pub hot_exit: i64,
    pub warm: i64,
    pub warm_exit: i64,
    pub version: i64,
    pub note: &'a str,
}

fn number(item: Option<&Item>) -> Option<f64> {
    let v = item?.as_value()?;
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// Rewrites the feature file with learned points: caps keep their count (scaled with the
/// points), group caps and floors go (the model weighs each rule on its own), bands get
/// the suggested thresholds and the version goes up.
pub fn suggested_rules(feature_text: &str, s: &Suggested<'_>) -> Result<String, RulesTextError> {
    let mut doc: DocumentMut = feature_text
        .parse()
        .map_err(|e: toml_edit::TomlError| RulesTextError(e.to_string()))?;
    doc.insert("version", value(s.version));
    let description = format!(
        "{} {}",
        doc.get("description")
            .and_then(|d| d.as_str())
            .unwrap_or(""),
        s.note
    );
    doc.insert("description", value(description.trim()));
    if let Some(bands) = doc.get_mut("bands").and_then(Item::as_table_mut) {
        bands.insert("hot", value(s.hot));
        bands.insert("hot_exit", value(s.hot_exit));
        bands.insert("warm", value(s.warm));
        bands.insert("warm_exit", value(s.warm_exit));
    }
    if let Some(groups) = doc.get_mut("groups").and_then(Item::as_table_mut) {
        for (_, group) in groups.iter_mut() {
            if let Some(group) = group.as_table_like_mut() {
                group.remove("max");
                group.remove("min");
            }
        }
    }
    // The grade's fit and engagement steps no longer fit the new scale: leave them out.
    doc.remove("grade");
    if let Some(rules) = doc.get_mut("rules").and_then(Item::as_array_of_tables_mut) {
        rules.retain(|rule| {
            let id = rule.get("id").and_then(|i| i.as_str()).unwrap_or("");
            s.points.contains_key(id)
                || rule.contains_key("max_band")
                || rule.contains_key("min_band")
        });
        for rule in rules.iter_mut() {
            let id = rule
                .get("id")
                .and_then(|i| i.as_str())
                .unwrap_or("")
                .to_string();
            let old = number(rule.get("points")).unwrap_or(0.0);
            let new = s.points.get(&id).copied().unwrap_or(0);
            rule.insert("points", value(new));
            for key in ["cap", "daily_cap"] {
                if let Some(cap) = number(rule.get(key)) {
                    if new == 0 || old == 0.0 {
                        rule.remove(key);
                    } else {
                        let count = (cap / old).abs();
                        rule.insert(key, value((count * new.abs() as f64).round() as i64));
                    }
                }
            }
        }
    }
    Ok(doc.to_string())
}
