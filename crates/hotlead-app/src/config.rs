//! Server configuration: forms, alert language and routing, CORS. One TOML file
//! (`--config`); every field has a sensible default so that no file is needed.

use std::collections::BTreeMap;

use hotlead_core::alert::{Language, Routing};
use hotlead_core::lead::{Lead, attribute_name};
use serde::Deserialize;

/// The default honeypot field: a hidden input people leave empty and bots fill in.
pub const DEFAULT_HONEYPOT: &str = "_hp";
/// The longest retention a setting may ask for (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3_650;

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
    /// Proxies in front of the service whose `X-Forwarded-For` is believed, as addresses
    /// or CIDR blocks (`10.0.0.0/8`). A visitor's address is the platform's (API Gateway's
    /// source IP, or the socket's peer) unless that is one of these; then the last
    /// address `X-Forwarded-For` names that is not one of them. Empty: the header is
    /// never believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Forms by id (`POST /v1/forms/{id}`). A form not listed takes canonical attribute
    /// names as they are.
    #[serde(default)]
    pub forms: BTreeMap<String, FormConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    /// How long what belongs to no lead is kept (`[retention]`: `anonymous_days`, default
    /// 180; `dedupe_days`, default 30).
    #[serde(default)]
    pub retention: crate::ports::Retention,
    /// Requests one client address may make per minute to the public routes
    /// (`[client_limits]`: `calls_per_minute`, default 600; `forms_per_minute`, default
    /// 30; 0 turns one off). Past it: 429 with `Retry-After`, nothing stored.
    #[serde(default)]
    pub client_limits: crate::throttle::ClientLimits,
    /// Days a lead page link in an alert works (default 14, at most 90): see
    /// [`Config::link_days`].
    #[serde(default)]
    pub lead_link_days: Option<u32>,
    /// The team lead's daily digest (`[digest]`): off unless `send_at` is set.
    #[serde(default)]
    pub digest: DigestConfig,
}

/// The daily digest: once a day, from `send_at` (local time in the rules' `utc_offset`),
/// a note with the number of hot and warm leads and a signed link to their ranking page
/// (the way a team lead on AWS opens it in a browser). It names no lead.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// `"08:30"`: the digest goes out at the first scoring round from then on.
    #[serde(default)]
    pub send_at: Option<String>,
    /// Its owner (for the subscription's filter; the reason is `digest`), e.g. a team
    /// lead's address; the territory is `[routing] default_territory`.
    #[serde(default)]
    pub owner: Option<String>,
    /// Saturdays and Sundays too (default: Monday to Friday).
    #[serde(default)]
    pub weekends: bool,
}

impl DigestConfig {
    /// The time of day it is sent, when it is on.
    pub fn send_at(&self) -> Option<chrono::NaiveTime> {
        self.send_at
            .as_deref()
            .and_then(|t| chrono::NaiveTime::parse_from_str(t.trim(), "%H:%M").ok())
    }
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

/// How an alert finds its rep. The company decides: territories come from the lead's
/// prefecture or country through these maps, owners from the territory. What a lead
/// typed into a public form (or a tracking call) never chooses a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Product name put on every alert.
    #[serde(default)]
    pub product: Option<String>,
    /// The route of every lead no map places, and of any territory that is not
    /// configured: the deployment subscribes it (or a catch-all), so no alert is lost.
    #[serde(default = "default_territory")]
    pub default_territory: String,
    /// Prefecture -> territory (`"東京都" = "east"`).
    #[serde(default)]
    pub prefectures: BTreeMap<String, String>,
    /// Country -> territory (`"United States" = "overseas"`), for leads no prefecture
    /// places.
    #[serde(default)]
    pub countries: BTreeMap<String, String>,
    /// Territory -> owner (a rep's or team's address or id).
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// Owner of alerts whose territory has none (a manager, say); none by default.
    #[serde(default)]
    pub default_owner: Option<String>,
    /// Lead attributes trusted for routing, when they are set. Only a trusted channel
    /// sets them (`hotlead leads import`, a CRM export); public forms and tracking calls
    /// cannot, whatever field names they send.
    #[serde(default)]
    pub trusted: TrustedAttributes,
}

/// Lead attributes whose values route alerts (see [`RoutingConfig::trusted`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedAttributes {
    /// The attribute holding the lead's territory, e.g. `crm_territory`. A territory that
    /// is not configured goes to the default route.
    #[serde(default)]
    pub territory: Option<String>,
    /// The attribute holding the lead's owner, e.g. `crm_owner`.
    #[serde(default)]
    pub owner: Option<String>,
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
            countries: BTreeMap::new(),
            owners: BTreeMap::new(),
            default_owner: None,
            trusted: TrustedAttributes::default(),
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

/// What is wrong with a CORS origin, if anything: an origin is `http(s)://host[:port]`.
fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin.trim() == "*" {
        return Some(
            "`*` is not accepted: list each site's origin, e.g. https://www.example.co.jp",
        );
    }
    let Some((scheme, host)) = origin.trim_end_matches('/').split_once("://") else {
        return Some("expected an origin like https://www.example.co.jp (scheme and host)");
    };
    if scheme != "https" && scheme != "http" {
        return Some("expected an http:// or https:// origin");
    }
    let bad = |c: char| !c.is_ascii_graphic() || matches!(c, '/' | '?' | '#' | '*' | '@');
    if host.is_empty() || host.chars().any(bad) {
        return Some(
            "expected scheme, host and optional port only (no path, query, spaces or wildcards)",
        );
    }
    None
}

/// An error about a setting, placed on the first line that sets it (line 1 if none does).
fn setting_error(file: &str, source: &str, setting: &str, message: String) -> ConfigError {
    let line = source
        .lines()
        .position(|l| l.trim_start().starts_with(setting))
        .map_or(1, |i| i + 1);
    ConfigError {
        file: file.to_string(),
        location: format!("{line}:1:"),
        message,
    }
}

/// An address block: an IP address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

impl Network {
    /// `10.0.0.0/8`, `2001:db8::/32`, or one address.
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: std::net::IpAddr = address.parse().ok()?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= bits)?,
            None => bits,
        };
        Some(Network { address, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let (network, ip, bits) = match (self.address, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (network >> shift) == (ip >> shift)
    }
}

impl Config {
    /// The visitor's address: the platform's `peer` unless it is a trusted proxy, then
    /// the last `X-Forwarded-For` entry that is not one.
    pub fn client_ip(
        &self,
        peer: Option<std::net::IpAddr>,
        forwarded_for: Option<&str>,
    ) -> Option<std::net::IpAddr> {
        let trusted: Vec<Network> = self
            .trusted_proxies
            .iter()
            .filter_map(|p| Network::parse(p))
            .collect();
        let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
        let peer = peer?;
        if !is_trusted(peer) {
            return Some(peer);
        }
        let mut last = peer;
        for entry in forwarded_for.unwrap_or_default().rsplit(',') {
            let Ok(ip) = entry.trim().parse::<std::net::IpAddr>() else {
                break;
            };
            last = ip;
            if !is_trusted(ip) {
                break;
            }
        }
        Some(last)
    }

    /// Reads and checks a configuration file; every error names the file, the line and
    /// the setting.
    pub fn from_toml(file: &str, source: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(file, source)?;
        for (index, proxy) in config.trusted_proxies.iter().enumerate() {
            if Network::parse(proxy).is_none() {
                return Err(setting_error(
                    file,
                    source,
                    "trusted_proxies",
                    format!(
                        "trusted_proxies[{index}] ({proxy:?}): expected an IP address or a CIDR block like 10.0.0.0/8"
                    ),
                ));
            }
        }
        for (index, origin) in config.cors_origins.iter().enumerate() {
            if let Some(problem) = origin_problem(origin) {
                return Err(setting_error(
                    file,
                    source,
                    "cors_origins",
                    format!("cors_origins[{index}] ({origin:?}): {problem}"),
                ));
            }
        }
        for (name, days) in [
            ("anonymous_days", config.retention.anonymous_days),
            ("dedupe_days", config.retention.dedupe_days),
        ] {
            if !(1..=MAX_RETENTION_DAYS).contains(&days) {
                return Err(setting_error(
                    file,
                    source,
                    name,
                    format!(
                        "retention.{name} ({days}): expected a number of days from 1 to {MAX_RETENTION_DAYS}"
                    ),
                ));
            }
        }
        if let Some(days) = config.lead_link_days
            && !(1..=crate::links::MAX_LINK_DAYS).contains(&days)
        {
            return Err(setting_error(
                file,
                source,
                "lead_link_days",
                format!(
                    "lead_link_days ({days}): expected a number of days from 1 to {}",
                    crate::links::MAX_LINK_DAYS
                ),
            ));
        }
        if let Some(send_at) = &config.digest.send_at
            && config.digest.send_at().is_none()
        {
            return Err(setting_error(
                file,
                source,
                "send_at",
                format!("digest.send_at ({send_at:?}): expected a time of day like \"08:30\""),
            ));
        }
        for (name, limit) in [
            ("calls_per_minute", config.client_limits.calls_per_minute),
            ("forms_per_minute", config.client_limits.forms_per_minute),
        ] {
            if limit > crate::throttle::MAX_PER_MINUTE {
                return Err(setting_error(
                    file,
                    source,
                    name,
                    format!(
                        "client_limits.{name} ({limit}): expected a number of requests from 0 (no limit) to {}",
                        crate::throttle::MAX_PER_MINUTE
                    ),
                ));
            }
        }
        Ok(config)
    }

    fn parse(file: &str, source: &str) -> Result<Config, ConfigError> {
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
    /// Days a lead page link works.
    pub fn link_days(&self) -> u32 {
        self.lead_link_days
            .unwrap_or(crate::links::DEFAULT_LINK_DAYS)
    }

    /// The public address links point to (`public_url`, else the local default).
    pub fn base_url(&self) -> &str {
        self.public_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:8080")
            .trim_end_matches('/')
    }

    pub fn lead_url(&self, lead_id: &str) -> String {
        format!("{}/v1/leads/{lead_id}", self.base_url())
    }

    /// The attribute names only a trusted channel may set (see
    /// [`RoutingConfig::trusted`]), canonical.
    pub fn trusted_attributes(&self) -> Vec<String> {
        let trusted = &self.routing.trusted;
        [&trusted.territory, &trusted.owner]
            .into_iter()
            .flatten()
            .map(|name| attribute_name(name))
            .filter(|name| !name.is_empty())
            .collect()
    }

    /// Whether a territory has a configured route: it is the default, a map leads to it,
    /// or it has an owner.
    pub fn is_configured_territory(&self, territory: &str) -> bool {
        let routing = &self.routing;
        territory == routing.default_territory
            || routing.owners.contains_key(territory)
            || routing.prefectures.values().any(|t| t == territory)
            || routing.countries.values().any(|t| t == territory)
    }

    /// Territory, owner and product of a lead, as the company configured them: a trusted
    /// attribute if one is configured and set, else the lead's prefecture, else its
    /// country, else the default territory; a territory with no configured route becomes
    /// the default one. The owner: a trusted attribute, else the territory's owner, else
    /// the default owner.
    pub fn routing_for(&self, lead: &Lead) -> Routing {
        let routing = &self.routing;
        let trusted = |name: &Option<String>| {
            let name = attribute_name(name.as_deref()?);
            lead.get(&name)
                .map(|v| hotlead_core::alert::one_line(&v.raw, 100))
                .filter(|v| !v.is_empty())
        };
        let mapped = |attribute: &str, map: &BTreeMap<String, String>| {
            let value = lead.get(attribute)?;
            map.iter()
                .find(|(name, _)| hotlead_core::normalize::text(name) == value.value)
                .map(|(_, territory)| territory.clone())
        };
        let territory = trusted(&routing.trusted.territory)
            .or_else(|| mapped("prefecture", &routing.prefectures))
            .or_else(|| mapped("country", &routing.countries))
            .filter(|t| self.is_configured_territory(t))
            .unwrap_or_else(|| routing.default_territory.clone());
        let owner = trusted(&routing.trusted.owner)
            .or_else(|| routing.owners.get(&territory).cloned())
            .or_else(|| routing.default_owner.clone());
        Routing {
            territory,
            owner,
            product: routing.product.clone(),
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
    fn routing_comes_from_the_configuration_not_from_what_a_lead_typed() {
        let config = Config::from_toml("c.toml", CONFIG).unwrap();
        let lead = Lead::from_raw(
            "L",
            [
                ("prefecture", "東京都"),
                ("territory", "attacker"),
                ("owner", "evil@example.com"),
            ],
        );
        let routing = config.routing_for(&lead);
        assert_eq!(routing.territory, "east");
        assert_eq!(routing.owner.as_deref(), Some("rep-east@example.com"));
        assert!(config.trusted_attributes().is_empty());
    }

    #[test]
    fn trusted_attributes_route_and_unknown_territories_fall_back_to_the_default() {
        let text = format!(
            "{CONFIG}countries = {{ \"United States\" = \"overseas\" }}\ndefault_owner = \"manager@example.com\"\n\
             trusted = {{ territory = \"crm_territory\", owner = \"CRM owner\" }}\n"
        );
        let config = Config::from_toml("c.toml", &text).unwrap();
        assert_eq!(config.trusted_attributes(), ["crm_territory", "crm_owner"]);
        let crm = Lead::from_raw(
            "L",
            [
                ("prefecture", "東京都"),
                ("crm_territory", "west"),
                ("crm_owner", "sato"),
            ],
        );
        assert_eq!(config.routing_for(&crm).territory, "west");
        assert_eq!(config.routing_for(&crm).owner.as_deref(), Some("sato"));
        let unknown = Lead::from_raw("L", [("crm_territory", "nowhere")]);
        assert_eq!(config.routing_for(&unknown).territory, "unassigned");
        assert_eq!(
            config.routing_for(&unknown).owner.as_deref(),
            Some("manager@example.com")
        );
        let abroad = Lead::from_raw("L", [("country", "United States")]);
        assert_eq!(config.routing_for(&abroad).territory, "overseas");
    }

    #[test]
    fn routing_maps_the_prefecture_then_falls_back_to_the_default() {
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

#[cfg(test)]
mod origins {
    use super::*;

    #[test]
    fn cors_origins_must_be_origins_and_are_named_when_not() {
        for (origins, wanted) in [
            ("[\"*\"]", "cors_origins[0]"),
            (
                "[\"https://www.example.co.jp\", \"www.example.co.jp\"]",
                "cors_origins[1]",
            ),
            ("[\"https://www.example.co.jp/path\"]", "cors_origins[0]"),
            ("[\"https://exa mple.jp\"]", "cors_origins[0]"),
        ] {
            let error = Config::from_toml("c.toml", &format!("cors_origins = {origins}\n"))
                .expect_err(origins)
                .to_string();
            assert!(error.starts_with("c.toml:1:"), "{error}");
            assert!(error.contains(wanted), "{origins}: {error}");
        }
        let ok = Config::from_toml(
            "c.toml",
            "cors_origins = [\"https://www.example.co.jp\", \"http://localhost:3000/\"]\n",
        )
        .unwrap();
        assert_eq!(ok.cors_origins.len(), 2);
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let open = Config::default();
        let spoofed = Some("10.1.2.3, 198.51.100.7");
        assert_eq!(
            open.client_ip(Some(ip("203.0.113.9")), spoofed),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(open.client_ip(None, spoofed), None);
        let behind =
            Config::from_toml("c.toml", "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        // The proxy appends the address it saw; what the client wrote before it is not believed.
        assert_eq!(
            behind.client_ip(
                Some(ip("10.0.0.5")),
                Some("10.9.9.9, 203.0.113.9, 10.0.0.7")
            ),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            behind.client_ip(Some(ip("::1")), Some("198.51.100.7")),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            behind.client_ip(Some(ip("10.0.0.5")), None),
            Some(ip("10.0.0.5"))
        );
        let error =
            Config::from_toml("c.toml", "trusted_proxies = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(error.to_string().contains("trusted_proxies[0]"), "{error}");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    }

    #[test]
    fn retention_has_defaults_and_a_bad_period_names_its_setting() {
        let config = Config::from_toml("c.toml", "").unwrap();
        assert_eq!(config.retention.anonymous_days, 180);
        assert_eq!(config.retention.dedupe_days, 30);
        let config = Config::from_toml("c.toml", "[retention]\nanonymous_days = 90\n").unwrap();
        assert_eq!(config.retention.anonymous_days, 90);
        assert_eq!(config.retention.dedupe_days, 30);
        let error = Config::from_toml("c.toml", "[retention]\ndedupe_days = 0\n").unwrap_err();
        assert_eq!(error.location, "2:1:");
        assert!(
            error.message.contains("retention.dedupe_days (0)"),
            "{error}"
        );
        let error = Config::from_toml("c.toml", "[retention]\nkeep_forever = true\n").unwrap_err();
        assert!(error.message.contains("keep_forever"), "{error}");
    }

    #[test]
    fn lead_link_days_default_to_14_and_are_bounded() {
        assert_eq!(Config::from_toml("c.toml", "").unwrap().link_days(), 14);
        assert_eq!(Config::default().link_days(), 14);
        let config = Config::from_toml("c.toml", "lead_link_days = 3\n").unwrap();
        assert_eq!(config.link_days(), 3);
        let error =
            Config::from_toml("c.toml", "language = \"en\"\nlead_link_days = 365\n").unwrap_err();
        assert_eq!(error.location, "2:1:");
        assert!(error.message.contains("lead_link_days (365)"), "{error}");
    }

    #[test]
    fn client_limits_have_defaults_and_a_bad_one_names_its_setting() {
        let config = Config::from_toml("c.toml", "").unwrap();
        assert_eq!(config.client_limits.calls_per_minute, 600);
        assert_eq!(config.client_limits.forms_per_minute, 30);
        let config =
            Config::from_toml("c.toml", "[client_limits]\nforms_per_minute = 0\n").unwrap();
        assert_eq!(config.client_limits.forms_per_minute, 0);
        let error = Config::from_toml(
            "c.toml",
            "[client_limits]\ncalls_per_minute = 600\nforms_per_minute = 2000000\n",
        )
        .unwrap_err();
        assert_eq!(error.location, "3:1:");
        assert!(
            error
                .message
                .contains("client_limits.forms_per_minute (2000000)"),
            "{error}"
        );
        let error =
            Config::from_toml("c.toml", "[client_limits]\nforms_per_minute = -1\n").unwrap_err();
        assert!(error.message.contains("invalid value"), "{error}");
    }

    #[test]
    fn the_digest_is_off_unless_its_time_is_set_and_a_bad_time_is_named() {
        assert!(Config::default().digest.send_at().is_none());
        let on = Config::from_toml("c.toml", "[digest]\nsend_at = \"08:30\"\n").unwrap();
        assert_eq!(
            on.digest.send_at(),
            chrono::NaiveTime::from_hms_opt(8, 30, 0)
        );
        let error = Config::from_toml("c.toml", "[digest]\nsend_at = \"8.30am\"\n").unwrap_err();
        assert_eq!(error.location, "2:1:");
        assert!(
            error.message.contains("digest.send_at"),
            "{}",
            error.message
        );
    }
}
