//! Server configuration: forms, alert language and routing, CORS. One TOML file
//! (`--config`); every field has a sensible default so that no file is needed.

use std::collections::BTreeMap;

use hotlead_core::alert::{Language, Routing};
use hotlead_core::lead::{Lead, attribute_name};
use serde::Deserialize;

/// The default honeypot field: a hidden input people leave empty and bots fill in.
pub const DEFAULT_HONEYPOT: &str = "_hp";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Language of alert texts: `ja` (default) or `en`.
    #[serde(default)]
    pub language: Language,
    /// Base URL of the API as reps reach it, for links in alerts.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Browser origins allowed to send events and forms (CORS), e.g. `https://www.example.co.jp`.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Forms by id (`POST /v1/forms/{id}`). A form not listed takes canonical attribute
    /// names as they are.
    #[serde(default)]
    pub forms: BTreeMap<String, FormConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormConfig {
    /// Form field -> attribute, e.g. `{ "会社名" = "company", "従業員数" = "employees" }`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Where a plain HTML form submission is sent after it is stored (303).
    #[serde(default)]
    pub thank_you_url: Option<String>,
    /// Honeypot field name; default `_hp`.
    #[serde(default)]
    pub honeypot: Option<String>,
}

/// How an alert finds its rep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Product name put on every alert.
    #[serde(default)]
    pub product: Option<String>,
    /// Territory when the lead has none and its prefecture maps to none.
    #[serde(default = "default_territory")]
    pub default_territory: String,
    /// Prefecture -> territory, used when the lead has no `territory` attribute.
    #[serde(default)]
    pub prefectures: BTreeMap<String, String>,
    /// Territory -> owner (a rep's address or id), used when the lead has no `owner`.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
}

fn default_territory() -> String {
    "unassigned".to_string()
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            product: None,
            default_territory: default_territory(),
            prefectures: BTreeMap::new(),
            owners: BTreeMap::new(),
        }
    }
}

/// A configuration file that cannot be used: where, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{location} {message}")]
pub struct ConfigError {
    pub file: String,
    /// `line:column:`, or empty when unknown.
    pub location: String,
    pub message: String,
}

impl Config {
    pub fn from_toml(file: &str, source: &str) -> Result<Config, ConfigError> {
        toml::from_str(source).map_err(|e: toml::de::Error| {
            let location = e
                .span()
                .map(|span| {
                    let before = &source[..span.start.min(source.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("{line}:{column}:")
                })
                .unwrap_or_default();
            ConfigError {
                file: file.to_string(),
                location,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// The attribute a form field fills: the form's mapping, else the field's own name.
    pub fn attribute_for(&self, form_id: &str, field: &str) -> String {
        self.forms
            .get(form_id)
            .and_then(|form| {
                form.fields
                    .get(field)
                    .or_else(|| form.fields.get(field.trim()))
            })
            .map(|a| attribute_name(a))
            .unwrap_or_else(|| attribute_name(field))
    }

    pub fn honeypot(&self, form_id: &str) -> &str {
        self.forms
            .get(form_id)
            .and_then(|f| f.honeypot.as_deref())
            .unwrap_or(DEFAULT_HONEYPOT)
    }

    pub fn thank_you_url(&self, form_id: &str) -> Option<&str> {
        self.forms
            .get(form_id)
            .and_then(|f| f.thank_you_url.as_deref())
    }

    /// The link to a lead in alerts.
    pub fn lead_url(&self, lead_id: &str) -> String {
        let base = self
            .public_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:8080")
            .trim_end_matches('/');
        format!("{base}/v1/leads/{lead_id}")
    }

    /// Territory, owner and product of a lead: its own `territory` / `owner` attributes
    /// first, then the configured mappings.
    pub fn routing_for(&self, lead: &Lead) -> Routing {
        let own = |name: &str| {
            lead.get(name)
                .map(|v| v.raw.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let territory = own("territory")
            .or_else(|| {
                let prefecture = lead.get("prefecture")?;
                self.routing
                    .prefectures
                    .iter()
                    .find(|(name, _)| hotlead_core::normalize::text(name) == prefecture.value)
                    .map(|(_, territory)| territory.clone())
            })
            .unwrap_or_else(|| self.routing.default_territory.clone());
        let owner = own("owner").or_else(|| self.routing.owners.get(&territory).cloned());
        Routing {
            territory,
            owner,
            product: self.routing.product.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
language = "en"
public_url = "https://leads.example.com/"
[forms.contact]
fields = { "会社名" = "company", "従業員数" = "employees", "メールアドレス" = "Email" }
thank_you_url = "https://www.example.com/thanks"
honeypot = "website"
[routing]
product = "crm"
prefectures = { "東京都" = "east", "大阪府" = "west" }
owners = { east = "rep-east@example.com" }
"#;

    #[test]
    fn forms_map_their_fields_and_others_keep_canonical_names() {
        let config = Config::from_toml("c.toml", CONFIG).unwrap();
        assert_eq!(config.attribute_for("contact", "会社名"), "company");
        assert_eq!(config.attribute_for("contact", "メールアドレス"), "email");
        assert_eq!(config.attribute_for("contact", "Title"), "title");
        assert_eq!(config.attribute_for("other", "employees"), "employees");
        assert_eq!(config.honeypot("contact"), "website");
        assert_eq!(config.honeypot("other"), DEFAULT_HONEYPOT);
        assert_eq!(
            config.lead_url("L-1"),
            "https://leads.example.com/v1/leads/L-1"
        );
    }

    #[test]
    fn routing_prefers_the_leads_own_territory_then_its_prefecture() {
        let config = Config::from_toml("c.toml", CONFIG).unwrap();
        let by_prefecture = Lead::from_raw("L", [("prefecture", "東京都")]);
        assert_eq!(
            config.routing_for(&by_prefecture),
            Routing {
                territory: "east".into(),
                owner: Some("rep-east@example.com".into()),
                product: Some("crm".into())
            }
        );
        let own = Lead::from_raw(
            "L",
            [
                ("prefecture", "東京都"),
                ("territory", "west"),
                ("owner", "sato"),
            ],
        );
        assert_eq!(config.routing_for(&own).territory, "west");
        assert_eq!(config.routing_for(&own).owner.as_deref(), Some("sato"));
        assert_eq!(config.routing_for(&Lead::new("L")).territory, "unassigned");
    }

    #[test]
    fn unknown_settings_are_named_with_their_place() {
        let error = Config::from_toml("c.toml", "langauge = \"en\"\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("c.toml:1:1: unknown field `langauge`"),
            "{error}"
        );
    }
}
