//! Reading and validating a rules file. Every problem is reported with the file, line,
//! column and field, and says what was expected; all problems found are reported at once.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{Duration, FixedOffset};
use globset::GlobBuilder;
use regex::RegexBuilder;

use super::locate::{FieldPath, line_column, span_of};
use super::raw::{
    RawAction, RawAlert, RawAxis, RawBand, RawCondition, RawCount, RawDecay, RawEventMatch,
    RawFilters, RawRule, RawRules, StringList,
};
use super::{
    AlertRule, AttributeTest, Axis, BUILTIN_BOT_USER_AGENTS, Band, Bands, Behaviour, Condition,
    Count, Decay, EventMatcher, Filters, Grade, Group, Network, Patterns, Plan, Rule, RuleKind,
    RuleSet,
};
use crate::event::EventType;
use crate::lead::{AttributeValue, attribute_name};
use crate::normalize;
use crate::points::Points;
use crate::stage::{Entry, RepAction, Stage, Stages};

/// One problem in a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// The field at fault, as a path (`rules[2].when.gte`), or `(file)`.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

/// A rules file that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RulesError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, d.line, d.column, d.field, d.message
            )?;
        }
        Ok(())
    }
}

const DEFAULT_ALERT_WINDOW_DAYS: f64 = 7.0;
const DEFAULT_ALERT_ONCE_PER_HOURS: f64 = 24.0;
pub(crate) const MAX_REGEX_SIZE: usize = 1 << 20;
const MAX_STAGES: usize = 20;
const MAX_REJECT_REASONS: usize = 30;
const MAX_REASON_CHARS: usize = 100;

pub(super) fn compile(file: &str, source: &str) -> Result<RuleSet, RulesError> {
    let error = |line, column, field: String, message: String| RulesError {
        file: file.to_string(),
        diagnostics: vec![Diagnostic {
            line,
            column,
            field,
            message,
        }],
    };
    let document = toml::de::DeTable::parse(source).map_err(|e| {
        let (line, column) = line_column(source, e.span().map_or(0, |s| s.start));
        error(
            line,
            column,
            "(file)".into(),
            format!("not valid TOML: {}", e.message().trim()),
        )
    })?;
    let whole = document.span();
    let document = document.into_inner();
    let locate =
        |path: &FieldPath| line_column(source, span_of(&document, whole.clone(), path).start);

    let deserializer = toml::de::Deserializer::parse(source).map_err(|e| {
        let (line, column) = line_column(source, e.span().map_or(0, |s| s.start));
        error(
            line,
            column,
            "(file)".into(),
            e.message().trim().to_string(),
        )
    })?;
    let raw: RawRules = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = FieldPath::from_serde(e.path());
        let (line, column) = match e.inner().span() {
            Some(span) => line_column(source, span.start),
            None => locate(&path),
        };
        error(
            line,
            column,
            path.to_string(),
            e.inner().message().trim().to_string(),
        )
    })?;

    let mut checker = Checker {
        problems: Vec::new(),
    };
    let rules = checker.rule_set(raw);
    if checker.problems.is_empty()
        && let Some(rules) = rules
    {
        return Ok(rules);
    }
    let mut diagnostics: Vec<Diagnostic> = checker
        .problems
        .into_iter()
        .map(|(path, message)| {
            let (line, column) = locate(&path);
            Diagnostic {
                line,
                column,
                field: path.to_string(),
                message,
            }
        })
        .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Err(RulesError {
        file: file.to_string(),
        diagnostics,
    })
}

/// Collects problems with their field paths while building the rule set.
struct Checker {
    problems: Vec<(FieldPath, String)>,
}

fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn band(raw: RawBand) -> Band {
    match raw {
        RawBand::Cold => Band::Cold,
        RawBand::Warm => Band::Warm,
        RawBand::Hot => Band::Hot,
    }
}

impl Checker {
    fn problem(&mut self, path: FieldPath, message: impl Into<String>) {
        self.problems.push((path, message.into()));
    }

    /// An id must be well-formed and unique among its kind (`what`: rule, alert).
    fn id<'r>(&mut self, path: FieldPath, id: &'r str, seen: &mut BTreeSet<&'r str>, what: &str) {
        if !is_identifier(id) {
            self.problem(
                path,
                format!("expected an id of letters, digits, '-', '_' or '.', got {id:?}"),
            );
        } else if !seen.insert(id) {
            self.problem(
                path,
                format!("duplicate {what} id {id:?}; ids must be unique"),
            );
        }
    }

    fn finite(&mut self, path: FieldPath, value: f64) -> Points {
        if !value.is_finite() || value.abs() > 1e12 {
            self.problem(path, "expected a finite number of points");
        }
        Points::from_f64(value)
    }

    fn positive_days(&mut self, path: FieldPath, days: f64) -> Duration {
        if !days.is_finite() || days <= 0.0 || days > 36_500.0 {
            self.problem(
                path,
                "expected a number of days greater than 0 (at most 36500)",
            );
            return Duration::zero();
        }
        Duration::milliseconds((days * 86_400_000.0).round() as i64)
    }

    fn rule_set(&mut self, raw: RawRules) -> Option<RuleSet> {
        let root = FieldPath::root();
        if raw.name.trim().is_empty() {
            self.problem(root.key("name"), "expected a non-empty name");
        }
        if raw.version == 0 {
            self.problem(root.key("version"), "expected a version of 1 or more");
        }
        let utc_offset = match raw.utc_offset.as_deref() {
            None => FixedOffset::east_opt(0),
            Some(text) => parse_offset(text).or_else(|| {
                self.problem(
                    root.key("utc_offset"),
                    format!("expected an offset like \"+09:00\", got {text:?}"),
                );
                None
            }),
        };
        let bands = self.bands(&raw);
        let grade = self.grade(&raw);

        let mut groups = Vec::new();
        let mut group_decays = Vec::new();
        for (id, group) in &raw.groups {
            let path = root.key("groups").key(id);
            if !is_identifier(id) {
                self.problem(
                    path.clone(),
                    "expected a group id of letters, digits, '-', '_' or '.'",
                );
            }
            let max = group.max.map(|m| self.finite(path.key("max"), m));
            if max.is_some_and(|m| m.is_negative()) {
                self.problem(path.key("max"), "expected a cap of 0 or more");
            }
            let min = group.min.map(|m| self.finite(path.key("min"), m));
            if min.is_some_and(|m| m > Points::ZERO) {
                self.problem(path.key("min"), "expected a floor of 0 or less");
            }
            let decay = match &group.decay {
                Some(d) => self.decay(path.key("decay"), d),
                None => Decay::None,
            };
            group_decays.push(decay);
            groups.push(Group {
                id: id.clone(),
                label: group.label.clone().unwrap_or_else(|| id.clone()),
                axis: match group.axis {
                    RawAxis::Fit => Axis::Fit,
                    RawAxis::Engagement => Axis::Engagement,
                    RawAxis::None => Axis::None,
                },
                max,
                min,
            });
        }
        if groups.is_empty() {
            self.problem(
                root.key("groups"),
                "expected at least one group, e.g. [groups.fit] with axis = \"fit\"",
            );
        }

        let context = Context {
            raw: &raw,
            groups: &groups,
        };
        let mut seen = BTreeSet::new();
        let mut rules = Vec::new();
        for (i, rule) in raw.rules.iter().enumerate() {
            let path = root.key("rules").index(i);
            self.id(path.key("id"), &rule.id, &mut seen, "rule");
            if let Some(rule) = self.rule(&path, rule, &context, &group_decays) {
                rules.push(rule);
            }
        }
        let mut seen = BTreeSet::new();
        let mut alerts = Vec::new();
        for (i, alert) in raw.alerts.iter().enumerate() {
            let path = root.key("alerts").index(i);
            self.id(path.key("id"), &alert.id, &mut seen, "alert");
            if let Some(alert) = self.alert(&path, alert, &context) {
                alerts.push(alert);
            }
        }
        let filters = self.filters(root.key("filters"), &raw.filters);
        let stages = self.stages(&raw, &context);
        let plan = match Plan::new(&rules, &alerts) {
            Ok(plan) => plan,
            Err(e) => {
                self.problem(
                    root.key("rules"),
                    format!(
                        "the event patterns of all rules and alerts together are too complex: {e}"
                    ),
                );
                return None;
            }
        };

        let (utc_offset, bands, grade) = (utc_offset?, bands?, grade?);
        // A rule set with problems is not made: its texts are not kept.
        if !self.problems.is_empty() {
            return None;
        }
        let texts = RuleSet::texts_of(&rules, &groups);
        Some(RuleSet {
            name: raw.name.trim().to_string(),
            version: raw.version,
            description: raw.description.clone(),
            utc_offset,
            bands,
            grade,
            groups,
            rules,
            alerts,
            filters,
            stages,
            plan,
            texts,
        })
    }

    fn stages(&mut self, raw: &RawRules, context: &Context<'_>) -> Stages {
        let root = FieldPath::root();
        let mut reject_reasons: Vec<String> = Vec::new();
        for (i, reason) in raw.follow_up.reject_reasons.iter().enumerate() {
            let path = root.key("follow_up").key("reject_reasons").index(i);
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                self.problem(
                    path,
                    format!("expected a reason of 1 to {MAX_REASON_CHARS} characters"),
                );
            } else if reason.chars().any(char::is_control) {
                self.problem(path, "expected a reason on one line");
            } else if reject_reasons.iter().any(|r| r == reason) {
                self.problem(path, format!("duplicate reason {reason:?}"));
            } else {
                reject_reasons.push(reason.to_string());
            }
        }
        if raw.follow_up.reject_reasons.len() > MAX_REJECT_REASONS {
            self.problem(
                root.key("follow_up").key("reject_reasons"),
                format!("expected at most {MAX_REJECT_REASONS} reasons"),
            );
        }
        if raw.stages.len() > MAX_STAGES {
            self.problem(
                root.key("stages"),
                format!("expected at most {MAX_STAGES} stages"),
            );
        }
        let mut seen = BTreeSet::new();
        let mut entered_by: Vec<(RepAction, usize)> = Vec::new();
        let mut stages = Vec::new();
        for (i, stage) in raw.stages.iter().enumerate() {
            let path = root.key("stages").index(i);
            self.id(path.key("id"), &stage.id, &mut seen, "stage");
            for (name, text) in [("label", &stage.label), ("owner", &stage.owner)] {
                if let Some(text) = text
                    && (text.trim().is_empty()
                        || text.chars().count() > MAX_REASON_CHARS
                        || text.chars().any(char::is_control))
                {
                    self.problem(
                        path.key(name),
                        format!("expected one line of 1 to {MAX_REASON_CHARS} characters"),
                    );
                }
            }
            let entry = match stage.on {
                Some(on) => {
                    let action = match on {
                        RawAction::Accept => RepAction::Accept,
                        RawAction::Reject => RepAction::Reject,
                        RawAction::Contacted => RepAction::Contacted,
                    };
                    for (name, given) in [
                        ("min_band", stage.min_band.is_some()),
                        ("min_fit", stage.min_fit.is_some()),
                        ("when", stage.when.is_some()),
                    ] {
                        if given {
                            self.problem(
                                path.key(name),
                                "a stage entered by a rep's action (`on`) has no conditions of the rules; remove this or `on`",
                            );
                        }
                    }
                    if let Some((_, first)) = entered_by.iter().find(|(a, _)| *a == action) {
                        self.problem(
                            path.key("on"),
                            format!(
                                "stages[{first}] is already entered on {:?}; one stage per action",
                                action.as_str()
                            ),
                        );
                    }
                    entered_by.push((action, i));
                    if action == RepAction::Reject && raw.follow_up.reject_reasons.is_empty() {
                        self.problem(
                            path.key("on"),
                            "a stage entered on \"reject\" needs the reasons a rep picks from: add [follow_up] reject_reasons = [...]",
                        );
                    }
                    Entry::Action(action)
                }
                None => Entry::Automatic {
                    min_band: stage.min_band.map(band),
                    min_fit: stage.min_fit.map(|m| self.finite(path.key("min_fit"), m)),
                    when: match &stage.when {
                        Some(when) => self.condition(&path.key("when"), when, context),
                        None => None,
                    },
                },
            };
            stages.push(Stage {
                id: stage.id.clone(),
                label: stage
                    .label
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or(&stage.id)
                    .to_string(),
                owner: stage.owner.as_deref().map(|o| o.trim().to_string()),
                entry,
            });
        }
        let sla = self.sla(raw);
        Stages {
            stages,
            reject_reasons,
            sla,
        }
    }

    fn sla(&mut self, raw: &RawRules) -> Option<crate::stage::Sla> {
        let path = FieldPath::root().key("follow_up");
        let follow = &raw.follow_up;
        let time = |text: &str| chrono::NaiveTime::parse_from_str(text, "%H:%M").ok();
        let (opens, closes) = match &follow.business_hours {
            None => (time("09:00")?, time("18:00")?),
            Some([opens, closes]) => match (time(opens), time(closes)) {
                (Some(o), Some(c)) if o < c => (o, c),
                _ => {
                    self.problem(
                        path.key("business_hours"),
                        format!("expected [\"HH:MM\", \"HH:MM\"], opening before closing, got [{opens:?}, {closes:?}]"),
                    );
                    return None;
                }
            },
        };
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut days = [true, true, true, true, true, false, false];
        if let Some(given) = &follow.business_days {
            days = [false; 7];
            for (i, day) in given.iter().enumerate() {
                match DAYS.iter().position(|d| d.eq_ignore_ascii_case(day.trim())) {
                    Some(index) => days[index] = true,
                    None => self.problem(
                        path.key("business_days").index(i),
                        format!("expected one of {}, got {day:?}", DAYS.join(", ")),
                    ),
                }
            }
            if !days.contains(&true) {
                self.problem(
                    path.key("business_days"),
                    "expected at least one business day",
                );
            }
        }
        if let Some(to) = &follow.escalate_to
            && (to.trim().is_empty()
                || to.chars().count() > MAX_REASON_CHARS
                || to.chars().any(char::is_control))
        {
            self.problem(
                path.key("escalate_to"),
                format!("expected one line of 1 to {MAX_REASON_CHARS} characters"),
            );
        }
        let hours = follow.respond_within_hours?;
        if !hours.is_finite() || hours <= 0.0 || hours > 24.0 * 30.0 {
            self.problem(
                path.key("respond_within_hours"),
                "expected a number of business hours greater than 0 (at most 720)",
            );
            return None;
        }
        Some(crate::stage::Sla {
            within: Duration::seconds((hours * 3600.0).round() as i64),
            opens,
            closes,
            days,
            offset: parse_offset(raw.utc_offset.as_deref().unwrap_or("+00:00"))
                .unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!())),
            escalate_to: follow.escalate_to.as_deref().map(|t| t.trim().to_string()),
        })
    }

    fn bands(&mut self, raw: &RawRules) -> Option<Bands> {
        let path = FieldPath::root().key("bands");
        let b = &raw.bands;
        let hot = self.finite(path.key("hot"), b.hot);
        let warm = self.finite(path.key("warm"), b.warm);
        let hot_exit = b
            .hot_exit
            .map_or(hot, |v| self.finite(path.key("hot_exit"), v));
        let warm_exit = b
            .warm_exit
            .map_or(warm, |v| self.finite(path.key("warm_exit"), v));
        let before = self.problems.len();
        if warm >= hot {
            self.problem(
                path.key("warm"),
                format!("expected warm below hot ({hot}), got {warm}"),
            );
        } else if hot_exit > hot || hot_exit < warm {
            self.problem(
                path.key("hot_exit"),
                format!("expected hot_exit between warm ({warm}) and hot ({hot}), got {hot_exit}"),
            );
        }
        if warm_exit > warm {
            self.problem(
                path.key("warm_exit"),
                format!("expected warm_exit at most warm ({warm}), got {warm_exit}"),
            );
        }
        (self.problems.len() == before).then_some(Bands {
            hot,
            hot_exit,
            warm,
            warm_exit,
        })
    }

    fn grade(&mut self, raw: &RawRules) -> Option<Grade> {
        let Some(grade) = &raw.grade else {
            return Some(Grade {
                fit: vec![Points::whole(60), Points::whole(40), Points::whole(20)],
                engagement: vec![Points::whole(60), Points::whole(30), Points::whole(10)],
            });
        };
        let path = FieldPath::root().key("grade");
        let before = self.problems.len();
        let mut ladder = |name: &str, values: &[f64], max_len: usize| -> Vec<Points> {
            let points: Vec<Points> = values
                .iter()
                .map(|v| self.finite(path.key(name), *v))
                .collect();
            if points.is_empty()
                || points.len() > max_len
                || points.windows(2).any(|w| w[0] <= w[1])
            {
                self.problem(
                    path.key(name),
                    format!("expected 1 to {max_len} thresholds, highest first, e.g. [60, 40, 20]"),
                );
            }
            points
        };
        let fit = ladder("fit", &grade.fit, 25);
        let engagement = ladder("engagement", &grade.engagement, 8);
        (self.problems.len() == before).then_some(Grade { fit, engagement })
    }

    fn decay(&mut self, path: FieldPath, raw: &RawDecay) -> Decay {
        let given = [
            raw.half_life_days.is_some(),
            raw.expires_after_days.is_some(),
            raw.none.is_some(),
        ]
        .into_iter()
        .filter(|g| *g)
        .count();
        if given != 1 {
            self.problem(
                path,
                "expected exactly one of half_life_days, expires_after_days or none = true",
            );
            return Decay::None;
        }
        if let Some(days) = raw.half_life_days {
            self.positive_days(path.key("half_life_days"), days);
            return Decay::HalfLife { days };
        }
        if let Some(days) = raw.expires_after_days {
            self.positive_days(path.key("expires_after_days"), days);
            return Decay::Expires { days };
        }
        if raw.none == Some(false) {
            self.problem(
                path.key("none"),
                "expected none = true (or leave decay out)",
            );
        }
        Decay::None
    }

    fn rule(
        &mut self,
        path: &FieldPath,
        raw: &RawRule,
        context: &Context<'_>,
        group_decays: &[Decay],
    ) -> Option<Rule> {
        let group = context.groups.iter().position(|g| g.id == raw.group);
        if group.is_none() {
            let known: Vec<&str> = context.groups.iter().map(|g| g.id.as_str()).collect();
            self.problem(
                path.key("group"),
                format!(
                    "unknown group {:?}; expected one of: {}",
                    raw.group,
                    known.join(", ")
                ),
            );
        }
        let points = self.finite(path.key("points"), raw.points);
        if let (Some(max), Some(min)) = (raw.max_band, raw.min_band)
            && band(min) > band(max)
        {
            self.problem(
                path.key("min_band"),
                "expected min_band at or below max_band",
            );
        }

        let kind = match (&raw.when, &raw.event) {
            (Some(when), None) => {
                for (field, given) in [
                    ("count", raw.count.is_some()),
                    ("at_least", raw.at_least.is_some()),
                    ("within_days", raw.within_days.is_some()),
                    ("cap", raw.cap.is_some()),
                    ("daily_cap", raw.daily_cap.is_some()),
                    ("decay", raw.decay.is_some()),
                ] {
                    if given {
                        self.problem(path.key(field), format!("`{field}` applies to behaviour rules (with `event`), not attribute rules"));
                    }
                }
                RuleKind::Attribute(self.condition(&path.key("when"), when, context)?)
            }
            (None, Some(event)) => {
                let matcher = self.event_matcher(&path.key("event"), event);
                let count = match raw.count.unwrap_or(RawCount::Once) {
                    RawCount::Once => {
                        let at_least = raw.at_least.unwrap_or(1);
                        if at_least == 0 {
                            self.problem(path.key("at_least"), "expected at_least of 1 or more");
                        }
                        for (field, given) in [
                            ("cap", raw.cap.is_some()),
                            ("daily_cap", raw.daily_cap.is_some()),
                        ] {
                            if given {
                                self.problem(path.key(field), format!("`{field}` applies to count = \"every\" rules; a \"once\" rule gives its points once"));
                            }
                        }
                        Count::Once { at_least }
                    }
                    RawCount::Every => {
                        if raw.at_least.is_some() {
                            self.problem(path.key("at_least"), "`at_least` applies to count = \"once\" rules; use cap / daily_cap to limit \"every\"");
                        }
                        Count::Every
                    }
                };
                let within = raw
                    .within_days
                    .map(|d| self.positive_days(path.key("within_days"), d));
                let mut magnitude = |field: &str, value: Option<f64>| {
                    value.map(|v| {
                        let p = self.finite(path.key(field), v);
                        if p <= Points::ZERO {
                            self.problem(path.key(field), format!("expected a `{field}` greater than 0 (it limits the magnitude of the points)"));
                        }
                        p
                    })
                };
                let cap = magnitude("cap", raw.cap);
                let daily_cap = magnitude("daily_cap", raw.daily_cap);
                let decay = match &raw.decay {
                    Some(d) => self.decay(path.key("decay"), d),
                    None => group.map_or(Decay::None, |g| group_decays[g]),
                };
                RuleKind::Behaviour(Behaviour {
                    matcher: matcher?,
                    count,
                    within,
                    cap,
                    daily_cap,
                    decay,
                })
            }
            _ => {
                self.problem(path.clone(), "expected exactly one of `when` (an attribute rule) or `event` (a behaviour rule)");
                return None;
            }
        };
        let label = raw.label.clone().unwrap_or_else(|| raw.id.clone());
        Some(Rule {
            id: raw.id.clone(),
            label,
            group: group?,
            points,
            kind,
            max_band: raw.max_band.map(band),
            min_band: raw.min_band.map(band),
        })
    }

    fn alert(
        &mut self,
        path: &FieldPath,
        raw: &RawAlert,
        context: &Context<'_>,
    ) -> Option<AlertRule> {
        let matcher = self.event_matcher(&path.key("event"), &raw.event);
        let when = match &raw.when {
            Some(when) => Some(self.condition(&path.key("when"), when, context)?),
            None => None,
        };
        let within = self.positive_days(
            path.key("within_days"),
            raw.within_days.unwrap_or(DEFAULT_ALERT_WINDOW_DAYS),
        );
        let hours = raw.once_per_hours.unwrap_or(DEFAULT_ALERT_ONCE_PER_HOURS);
        let once_per = if !hours.is_finite() || !(0.0..=8_760.0).contains(&hours) {
            self.problem(
                path.key("once_per_hours"),
                "expected a number of hours from 0 (every action alerts) to 8760",
            );
            Duration::zero()
        } else {
            Duration::milliseconds((hours * 3_600_000.0).round() as i64)
        };
        Some(AlertRule {
            id: raw.id.clone(),
            label: raw.label.clone().unwrap_or_else(|| raw.id.clone()),
            matcher: matcher?,
            when,
            within,
            once_per,
        })
    }

    fn condition(
        &mut self,
        path: &FieldPath,
        raw: &RawCondition,
        context: &Context<'_>,
    ) -> Option<Condition> {
        let shapes = [
            raw.attribute.is_some(),
            raw.all.is_some(),
            raw.any.is_some(),
            raw.not.is_some(),
        ];
        if shapes.iter().filter(|s| **s).count() != 1 {
            self.problem(
                path.clone(),
                "expected exactly one of `attribute` (with tests), `all`, `any` or `not`",
            );
            return None;
        }
        let nested =
            |field: &str, list: &[RawCondition], this: &mut Self| -> Option<Vec<Condition>> {
                if list.is_empty() {
                    this.problem(path.key(field), "expected at least one condition");
                }
                let compiled: Vec<Option<Condition>> = list
                    .iter()
                    .enumerate()
                    .map(|(i, c)| this.condition(&path.key(field).index(i), c, context))
                    .collect();
                compiled.into_iter().collect()
            };
        if let Some(all) = &raw.all {
            return nested("all", all, self).map(Condition::All);
        }
        if let Some(any) = &raw.any {
            return nested("any", any, self).map(Condition::Any);
        }
        if let Some(not) = &raw.not {
            return self
                .condition(&path.key("not"), not, context)
                .map(|c| Condition::Not(Box::new(c)));
        }
        let attribute = attribute_name(raw.attribute.as_deref().unwrap_or_default());
        if attribute.is_empty() {
            self.problem(path.key("attribute"), "expected an attribute name");
        }
        let is_domain = attribute == "email_domain";
        let normalise = |value: &str| -> String {
            if is_domain {
                normalize::text(value).trim_start_matches('@').to_string()
            } else {
                AttributeValue::parse(&attribute, value).value
            }
        };
        let texts =
            |values: &[String]| -> Vec<String> { values.iter().map(|v| normalise(v)).collect() };
        let one_of = |values: Vec<String>| {
            if is_domain {
                AttributeTest::DomainIn(values)
            } else {
                AttributeTest::OneOf(values)
            }
        };

        let before = self.problems.len();
        let mut tests = Vec::new();
        let mut number =
            |field: &str, value: Option<f64>, make: fn(f64) -> AttributeTest, this: &mut Self| {
                if let Some(v) = value {
                    if !v.is_finite() {
                        this.problem(path.key(field), "expected a finite number");
                    }
                    tests.push(make(v));
                }
            };
        number("gte", raw.gte, AttributeTest::AtLeast, self);
        number("gt", raw.gt, AttributeTest::Above, self);
        number("lte", raw.lte, AttributeTest::AtMost, self);
        number("lt", raw.lt, AttributeTest::Below, self);
        if let Some([low, high]) = raw.between {
            if !(low.is_finite() && high.is_finite() && low <= high) {
                self.problem(path.key("between"), "expected [low, high] with low <= high");
            }
            tests.push(AttributeTest::AtLeast(low));
            tests.push(AttributeTest::AtMost(high));
        }
        if let Some(value) = &raw.equals {
            tests.push(one_of(vec![normalise(value)]));
        }
        if let Some(values) = &raw.one_of {
            if values.is_empty() {
                self.problem(path.key("one_of"), "expected at least one value");
            }
            tests.push(one_of(texts(values)));
        }
        if let Some(name) = &raw.in_list
            && let Some(values) = self.list(path.key("in_list"), name, context)
        {
            tests.push(one_of(texts(values)));
        }
        let keywords = |values: &[String]| -> Vec<String> {
            values
                .iter()
                .map(|v| normalize::text(v))
                .filter(|v| !v.is_empty())
                .collect()
        };
        if let Some(values) = &raw.contains {
            if keywords(values).is_empty() {
                self.problem(
                    path.key("contains"),
                    "expected at least one non-empty keyword",
                );
            }
            tests.push(AttributeTest::Contains(keywords(values)));
        }
        if let Some(name) = &raw.contains_list
            && let Some(values) = self.list(path.key("contains_list"), name, context)
        {
            tests.push(AttributeTest::Contains(keywords(values)));
        }
        if let Some(pattern) = &raw.matches {
            match RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(MAX_REGEX_SIZE)
                .build()
            {
                Ok(regex) => tests.push(AttributeTest::Matches(regex)),
                Err(e) => {
                    // The message's last line says what is wrong; the lines above draw a caret.
                    let text = e.to_string();
                    let reason = text
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_string();
                    self.problem(
                        path.key("matches"),
                        format!("not a valid regular expression: {reason}"),
                    );
                }
            }
        }
        if let Some(present) = raw.present {
            tests.push(AttributeTest::Present(present));
        }
        if let Some(missing) = raw.missing {
            tests.push(AttributeTest::Present(!missing));
        }
        if tests.is_empty() {
            if self.problems.len() == before {
                self.problem(
                    path.clone(),
                    "expected at least one test: gte, gt, lte, lt, between, equals, one_of, in_list, contains, contains_list, matches, present or missing",
                );
            }
            return None;
        }
        Some(Condition::Attribute { attribute, tests })
    }

    fn list<'c>(
        &mut self,
        path: FieldPath,
        name: &str,
        context: &'c Context<'_>,
    ) -> Option<&'c [String]> {
        match context.raw.lists.get(name) {
            Some(values) => Some(values.as_slice()),
            None => {
                let known: Vec<&str> = context.raw.lists.keys().map(String::as_str).collect();
                self.problem(
                    path,
                    format!(
                        "unknown list {name:?}; expected one of [lists]: {}",
                        known.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn globs(&mut self, path: FieldPath, patterns: &StringList) -> Option<Patterns> {
        if patterns.0.is_empty() {
            self.problem(path, "expected at least one pattern");
            return None;
        }
        // globset translates each glob; one regex over all of them matches a string
        // without globset's per-call path handling.
        let mut alternatives = Vec::new();
        for pattern in &patterns.0 {
            match GlobBuilder::new(pattern.trim())
                .case_insensitive(true)
                .literal_separator(false)
                .build()
            {
                Ok(glob) => alternatives.push(format!("(?:{})", glob.regex())),
                Err(e) => {
                    self.problem(
                        path.clone(),
                        format!("not a valid pattern {pattern:?}: {}", e.kind()),
                    );
                    return None;
                }
            }
        }
        match regex::bytes::RegexBuilder::new(&alternatives.join("|"))
            .dot_matches_new_line(true)
            .size_limit(MAX_REGEX_SIZE)
            .build()
        {
            Ok(regex) => Some(Patterns(regex)),
            Err(e) => {
                self.problem(path, format!("patterns too complex: {e}"));
                None
            }
        }
    }

    fn event_matcher(&mut self, path: &FieldPath, raw: &RawEventMatch) -> Option<EventMatcher> {
        let before = self.problems.len();
        let types = raw.kind.as_ref().map(|kinds| {
            kinds
                .0
                .iter()
                .filter_map(|k| {
                    EventType::parse(k.trim()).or_else(|| {
                        self.problem(path.key("type"), format!("unknown event type {k:?}; expected page, screen, track, identify, group or alias"));
                        None
                    })
                })
                .collect::<Vec<_>>()
        });
        let glob = |field: &str, value: &Option<StringList>, this: &mut Self| {
            value.as_ref().and_then(|v| this.globs(path.key(field), v))
        };
        let name = glob("name", &raw.name, self);
        let page_path = glob("path", &raw.path, self);
        let referrer = glob("referrer", &raw.referrer, self);
        let utm = [
            glob("utm_source", &raw.utm_source, self),
            glob("utm_medium", &raw.utm_medium, self),
            glob("utm_campaign", &raw.utm_campaign, self),
            glob("utm_term", &raw.utm_term, self),
            glob("utm_content", &raw.utm_content, self),
        ];
        let mut properties = Vec::new();
        for (key, patterns) in raw.properties.iter().flatten() {
            if let Some(set) = self.globs(path.key("properties").key(key), patterns) {
                properties.push((key.clone(), set));
            }
        }
        (self.problems.len() == before).then_some(EventMatcher {
            types,
            name,
            path: page_path,
            referrer,
            properties,
            utm,
        })
    }

    fn filters(&mut self, path: FieldPath, raw: &RawFilters) -> Filters {
        let mut bot_user_agents: Vec<String> = raw
            .bot_user_agents
            .iter()
            .map(|b| b.trim().to_lowercase())
            .filter(|b| !b.is_empty())
            .collect();
        if raw.builtin_bots.unwrap_or(true) {
            bot_user_agents.extend(BUILTIN_BOT_USER_AGENTS.iter().map(|s| s.to_string()));
        }
        let mut internal_networks = Vec::new();
        for (i, text) in raw.internal_ips.iter().enumerate() {
            match Network::parse(text) {
                Some(network) => internal_networks.push(network),
                None => self.problem(path.key("internal_ips").index(i), format!("expected an IP address or CIDR network like \"203.0.113.0/24\", got {text:?}")),
            }
        }
        let internal_email_domains = raw
            .internal_email_domains
            .iter()
            .map(|d| normalize::text(d).trim_start_matches('@').to_string())
            .filter(|d| !d.is_empty())
            .collect();
        let alternatives: Vec<String> = bot_user_agents.iter().map(|b| regex::escape(b)).collect();
        let bot_matcher = (!alternatives.is_empty())
            .then(|| {
                RegexBuilder::new(&alternatives.join("|"))
                    .case_insensitive(true)
                    .size_limit(MAX_REGEX_SIZE)
                    .build()
            })
            .transpose()
            .unwrap_or_else(|e| {
                self.problem(
                    path.key("bot_user_agents"),
                    format!("too many patterns: {e}"),
                );
                None
            });
        Filters {
            bot_user_agents,
            bot_matcher,
            internal_networks,
            internal_email_domains,
        }
    }
}

struct Context<'a> {
    raw: &'a RawRules,
    groups: &'a [Group],
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("z") || text.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let sign = match text.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let (hours, minutes) = text[1..].split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let seconds = hours.parse::<i32>().ok()? * 3600 + minutes.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * seconds)
}
