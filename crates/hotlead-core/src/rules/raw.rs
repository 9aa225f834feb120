//! The rules file as written: TOML, deserialised with serde and described by the JSON
//! Schema that `hotlead rules schema` prints. [`super::compile`] turns it into a
//! [`super::RuleSet`]; nothing else reads these types.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// A hotlead rules file: the written definition of a hot lead that marketing and sales
/// agree on. One file is one versioned rule set.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "hotlead rules")]
pub struct RawRules {
    /// Short name of the rule set: the product, team or market it is for.
    pub name: String,
    /// Version of this rule set, a positive integer; raise it on every change. Every
    /// score records the name and version of the rules that made it.
    pub version: u32,
    /// What this rule set is for, in a sentence or two.
    #[serde(default)]
    pub description: Option<String>,
    /// UTC offset that decides where a day starts for per-day caps, e.g. "+09:00".
    /// Default "+00:00".
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// Score thresholds of the cold / warm / hot bands, with hysteresis.
    pub bands: RawBands,
    /// Thresholds of the fit x engagement grade (A1 .. D4).
    #[serde(default)]
    pub grade: Option<RawGrade>,
    /// Score groups by id, e.g. `[groups.fit]`, `[groups.engagement]`, `[groups.bant]`.
    pub groups: BTreeMap<String, RawGroup>,
    /// Named value lists used by `in_list` and `contains_list`: free-mail domains,
    /// competitors, executive job-title keywords, ...
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
    /// Traffic that no rule ever sees: bots, internal networks, internal people.
    #[serde(default)]
    pub filters: RawFilters,
    /// Scoring rules, `[[rules]]`. Each gives points for an attribute (fit) or for
    /// behaviour (engagement).
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Instant alerts, `[[alerts]]`: high-intent actions that alert the rep whatever the
    /// score.
    #[serde(default)]
    pub alerts: Vec<RawAlert>,
    /// Lead stages, `[[stages]]`, in funnel order (e.g. nurture, mql, sql, recycled): how
    /// a lead enters each (by the rules, or by a rep's action) and who is responsible.
    #[serde(default)]
    pub stages: Vec<RawStage>,
    /// What reps may do from the lead page, `[follow_up]`.
    #[serde(default)]
    pub follow_up: RawFollowUp,
}

/// A rep's action on the lead page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    /// The rep takes the lead (working it).
    Accept,
    /// The rep turns it down, with one of `follow_up.reject_reasons`.
    Reject,
    /// The rep reached the lead.
    Contacted,
}

/// One lead stage. Give `on` (entered by a rep's action) or any of `min_band`, `min_fit`
/// and `when` (entered by the rules on every rescore; none of them: every lead the rules
/// place nowhere further). A lead is in the last listed automatic stage it meets, until
/// a rep's action moves it; a stage entered by an action stays until a rep acts again.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Stable id, unique among stages: letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// What people call it ("MQL", "ナーチャリング").
    #[serde(default)]
    pub label: Option<String>,
    /// The team or person responsible while a lead is in this stage ("inside-sales").
    #[serde(default)]
    pub owner: Option<String>,
    /// Entered when a rep takes this action on the lead page.
    #[serde(default)]
    pub on: Option<RawAction>,
    /// Entered by the rules when the lead's band is at least this.
    #[serde(default)]
    pub min_band: Option<RawBand>,
    /// Entered by the rules when the lead's fit points (groups with `axis = "fit"`) are
    /// at least this.
    #[serde(default)]
    pub min_fit: Option<f64>,
    /// Entered by the rules when this condition on the lead holds (e.g. its BANT answers).
    #[serde(default)]
    pub when: Option<RawCondition>,
}

/// What reps may do from the lead page.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFollowUp {
    /// The reasons a rep picks from to reject a lead ("no budget", "competitor"). Without
    /// them a lead cannot be rejected from the page.
    #[serde(default)]
    pub reject_reasons: Vec<String>,
    /// The follow-up agreement: a hot lead's alert should have a rep's first action
    /// (accept, reject, contacted) within this many business hours. A hot lead with none
    /// by then re-alerts once (to `escalate_to`). Not given: no deadline.
    #[serde(default)]
    pub respond_within_hours: Option<f64>,
    /// Business hours, `["09:00", "18:00"]` (the default), in the rules' `utc_offset`.
    #[serde(default)]
    pub business_hours: Option<[String; 2]>,
    /// Business days, `["mon", "tue", "wed", "thu", "fri"]` (the default).
    #[serde(default)]
    pub business_days: Option<Vec<String>>,
    /// The owner a missed deadline re-alerts (a manager, a team lead); default: the lead's
    /// own owner again.
    #[serde(default)]
    pub escalate_to: Option<String>,
}

/// Band thresholds. A lead enters `hot` at `hot` points and leaves it only when it falls
/// below `hot_exit`; likewise for warm.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBands {
    /// Score at which a lead becomes hot.
    pub hot: f64,
    /// A hot lead stays hot until its score falls below this. Default: `hot`.
    #[serde(default)]
    pub hot_exit: Option<f64>,
    /// Score at which a lead becomes warm.
    pub warm: f64,
    /// A warm lead stays warm until its score falls below this. Default: `warm`.
    #[serde(default)]
    pub warm_exit: Option<f64>,
}

/// Grade thresholds, highest first: `fit = [60, 40, 20]` gives A at 60 or more fit
/// points, B at 40, C at 20, D below; `engagement = [60, 30, 10]` gives 1 .. 4.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGrade {
    pub fit: Vec<f64>,
    pub engagement: Vec<f64>,
}

/// Which side of the grade a group counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawAxis {
    /// Who the lead is (company size, industry, role, BANT): the grade's letter.
    Fit,
    /// What the lead does (pages, downloads, requests): the grade's digit.
    Engagement,
    /// Counts in the score but not in the grade.
    None,
}

/// A score group: rules belong to one group; the group caps their sum.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Readable name, shown in explanations.
    #[serde(default)]
    pub label: Option<String>,
    /// Whether the group counts towards the fit letter or the engagement digit.
    pub axis: RawAxis,
    /// The group never adds more than this.
    #[serde(default)]
    pub max: Option<f64>,
    /// The group never takes away more than this (a negative number).
    #[serde(default)]
    pub min: Option<f64>,
    /// Default decay of this group's behaviour rules.
    #[serde(default)]
    pub decay: Option<RawDecay>,
}

/// How behaviour points fade with time, computed when the score is computed.
/// Give exactly one of the three.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDecay {
    /// Points halve every this many days after the event (positive points only:
    /// penalties do not fade by half-life).
    #[serde(default)]
    pub half_life_days: Option<f64>,
    /// Points drop to zero this many days after the event.
    #[serde(default)]
    pub expires_after_days: Option<f64>,
    /// `none = true`: no decay, overriding the group's.
    #[serde(default)]
    pub none: Option<bool>,
}

/// How often a behaviour rule gives its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawCount {
    /// Once, when the matching behaviour has happened (`at_least` times); the first
    /// time only.
    Once,
    /// For every matching event, up to `cap` and `daily_cap`.
    Every,
}

/// A band, for `max_band` / `min_band`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawBand {
    Cold,
    Warm,
    Hot,
}

/// One scoring rule. Give `when` (an attribute rule) or `event` (a behaviour rule).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Stable id, unique in the file: letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// The reason in plain words, as a rep should read it ("従業員1,000名以上").
    #[serde(default)]
    pub label: Option<String>,
    /// The group this rule belongs to (a key of `[groups]`).
    pub group: String,
    /// Points given when the rule matches; negative for penalties.
    pub points: f64,
    /// Attribute condition.
    #[serde(default)]
    pub when: Option<RawCondition>,
    /// Behaviour condition: which events count.
    #[serde(default)]
    pub event: Option<RawEventMatch>,
    /// `once` (default) or `every` matching event.
    #[serde(default)]
    pub count: Option<RawCount>,
    /// With `count = "once"`: the number of matching events needed. Default 1.
    #[serde(default)]
    pub at_least: Option<u32>,
    /// Only events of the last this many days count.
    #[serde(default)]
    pub within_days: Option<f64>,
    /// This rule never gives more than this many points in total (in magnitude for
    /// penalties).
    #[serde(default)]
    pub cap: Option<f64>,
    /// With `count = "every"`: at most this many points per day.
    #[serde(default)]
    pub daily_cap: Option<f64>,
    /// Decay of this rule's points; overrides the group's.
    #[serde(default)]
    pub decay: Option<RawDecay>,
    /// While this rule matches the lead's band is at most this ("keeps it cold").
    #[serde(default)]
    pub max_band: Option<RawBand>,
    /// While this rule matches the lead's band is at least this.
    #[serde(default)]
    pub min_band: Option<RawBand>,
}

/// A condition on a lead's normalised attributes. Either `attribute` with one or more
/// tests (all must hold), or one of `all`, `any`, `not`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// The attribute tested: a canonical name (`employees`, `capital`, `title`,
    /// `email_domain`, `budget`, ...) or any other attribute name.
    #[serde(default)]
    pub attribute: Option<String>,
    /// Every value of the attribute's quantity is at least this.
    #[serde(default)]
    pub gte: Option<f64>,
    /// Every value of the attribute's quantity is greater than this.
    #[serde(default)]
    pub gt: Option<f64>,
    /// Every value of the attribute's quantity is at most this.
    #[serde(default)]
    pub lte: Option<f64>,
    /// Every value of the attribute's quantity is less than this.
    #[serde(default)]
    pub lt: Option<f64>,
    /// `[low, high]`, both included.
    #[serde(default)]
    pub between: Option<[f64; 2]>,
    /// Equal after normalisation (width, case, company legal forms).
    #[serde(default)]
    pub equals: Option<String>,
    /// Equal to one of these after normalisation.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// Equal to one of the values of this list (a key of `[lists]`); for `email_domain`
    /// a listed domain also matches its subdomains.
    #[serde(default)]
    pub in_list: Option<String>,
    /// Contains one of these keywords (case and width folded).
    #[serde(default)]
    pub contains: Option<Vec<String>>,
    /// Contains one of the keywords of this list (a key of `[lists]`).
    #[serde(default)]
    pub contains_list: Option<String>,
    /// Matches this regular expression (case-insensitive, on the normalised value).
    #[serde(default)]
    pub matches: Option<String>,
    /// `true`: the attribute has a value. `false`: it has none.
    #[serde(default)]
    pub present: Option<bool>,
    /// `true`: the attribute has no value.
    #[serde(default)]
    pub missing: Option<bool>,
    /// All of these conditions hold.
    #[serde(default)]
    pub all: Option<Vec<RawCondition>>,
    /// At least one of these conditions holds.
    #[serde(default)]
    pub any: Option<Vec<RawCondition>>,
    /// This condition does not hold.
    #[serde(default)]
    pub not: Option<Box<RawCondition>>,
}

/// Which events a behaviour rule or an alert counts. Every given field must match;
/// text fields take one pattern or a list (any may match); patterns are
/// case-insensitive globs where `*` matches anything.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEventMatch {
    /// Segment call type: `page`, `screen`, `track`, `identify`, `group`, `alias`.
    #[serde(default, rename = "type")]
    pub kind: Option<StringList>,
    /// `track` event name (`Demo Requested`) or `page` name.
    #[serde(default)]
    pub name: Option<StringList>,
    /// URL path glob, e.g. `/pricing*`.
    #[serde(default)]
    pub path: Option<StringList>,
    /// Referrer URL glob, e.g. `*google.*`.
    #[serde(default)]
    pub referrer: Option<StringList>,
    /// Property globs by property name, e.g. `{ document = "whitepaper*" }`.
    #[serde(default)]
    pub properties: Option<BTreeMap<String, StringList>>,
    #[serde(default)]
    pub utm_source: Option<StringList>,
    #[serde(default)]
    pub utm_medium: Option<StringList>,
    #[serde(default)]
    pub utm_campaign: Option<StringList>,
    #[serde(default)]
    pub utm_term: Option<StringList>,
    #[serde(default)]
    pub utm_content: Option<StringList>,
}

/// An instant alert: a high-intent action that alerts the rep whatever the score.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// Stable id, unique among alerts.
    pub id: String,
    /// What the rep reads ("資料ダウンロード").
    #[serde(default)]
    pub label: Option<String>,
    /// The action that raises the alert.
    pub event: RawEventMatch,
    /// Only when the lead also meets this condition (e.g. not a free-mail address).
    #[serde(default)]
    pub when: Option<RawCondition>,
    /// Actions older than this many days raise nothing. Default 7.
    #[serde(default)]
    pub within_days: Option<f64>,
    /// At most one alert of this rule per lead in this many hours, about the newest
    /// action; actions in between raise none and are counted as held back (they still
    /// score and show on the lead). Default 24.
    #[serde(default)]
    pub once_per_hours: Option<f64>,
}

/// Filters applied to events before any rule sees them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFilters {
    /// Also drop the user agents of well-known bots, crawlers, link scanners and HTTP
    /// libraries. Default true.
    #[serde(default)]
    pub builtin_bots: Option<bool>,
    /// Events whose user agent contains one of these (case-insensitive) are dropped.
    #[serde(default)]
    pub bot_user_agents: Vec<String>,
    /// Events from these networks (CIDR, e.g. `203.0.113.0/24`, or single addresses) are
    /// dropped.
    #[serde(default)]
    pub internal_ips: Vec<String>,
    /// Leads with an e-mail address in these domains (or their subdomains) are internal:
    /// they score nothing.
    #[serde(default)]
    pub internal_email_domains: Vec<String>,
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StringList;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for StringList {
    fn schema_name() -> Cow<'static, str> {
        "StringList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "One string or a list of strings.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

/// The JSON Schema of the rules file, for editors (e.g. taplo / Even Better TOML).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawRules);
    serde_json::to_value(&schema).unwrap_or_default()
}
