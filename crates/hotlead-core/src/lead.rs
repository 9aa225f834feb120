//! A lead's attributes, normalised once at the edge and kept beside their raw values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::normalize::{self, Interval, ValueKind};

/// The canonical attribute names used everywhere in the product. Other attributes keep
/// their own (lower-cased) names.
pub const CANONICAL_ATTRIBUTES: &[&str] = &[
    "email",
    "name",
    "company",
    "title",
    "department",
    "industry",
    "employees",
    "capital",
    "phone",
    "country",
    "prefecture",
    "territory",
    "budget",
    "authority",
    "need",
    "timeframe",
];

/// Attributes the product derives from others; rules may use them like any attribute.
pub const DERIVED_ATTRIBUTES: &[&str] = &["email_domain"];

/// One attribute value: what the lead typed, and what rules compare against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeValue {
    /// Exactly as received.
    pub raw: String,
    /// Folded (NFKC, width, case, legal forms for companies) for comparisons.
    pub value: String,
    /// The quantity the value reads as, if any (`100〜499名` -> [100, 499]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<Interval>,
}

impl AttributeValue {
    /// Normalises `raw` as the attribute `name` requires.
    pub fn parse(name: &str, raw: &str) -> Self {
        let value = match ValueKind::for_attribute(name) {
            ValueKind::Email => normalize::email(raw).unwrap_or_else(|| normalize::text(raw)),
            ValueKind::Company => normalize::company(raw),
            ValueKind::Phone => normalize::phone(raw),
            ValueKind::Text => normalize::text(raw),
        };
        let number = match ValueKind::for_attribute(name) {
            ValueKind::Text => normalize::quantity(raw),
            _ => None,
        };
        AttributeValue {
            raw: raw.to_string(),
            value,
            number,
        }
    }
}

/// Canonical form of an attribute name: trimmed, NFKC-folded, lower-cased, spaces and
/// hyphens as underscores (`Job-Title ` -> `job_title`).
pub fn attribute_name(name: &str) -> String {
    normalize::text(name).replace([' ', '-'], "_")
}

/// A lead as the scorer sees it: an id and normalised attributes. Empty values are
/// treated as missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lead {
    pub id: String,
    pub attributes: BTreeMap<String, AttributeValue>,
}

impl Lead {
    pub fn new(id: impl Into<String>) -> Self {
        Lead {
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Builds a lead from raw name/value pairs.
    pub fn from_raw<'a>(
        id: impl Into<String>,
        attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut lead = Lead::new(id);
        for (name, raw) in attributes {
            lead.set(name, raw);
        }
        lead
    }

    /// Sets one attribute from its raw value; a blank value removes it. Derived
    /// attributes follow.
    pub fn set(&mut self, name: &str, raw: &str) {
        let name = attribute_name(name);
        if DERIVED_ATTRIBUTES.contains(&name.as_str()) {
            return;
        }
        if raw.trim().is_empty() {
            self.attributes.remove(&name);
        } else {
            self.attributes
                .insert(name.clone(), AttributeValue::parse(&name, raw));
        }
        if name == "email" {
            self.derive_email_domain();
        }
    }

    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes.get(name)
    }

    /// The normalised e-mail address, when the lead has a valid one.
    pub fn email(&self) -> Option<&str> {
        self.get("email_domain")
            .and(self.get("email"))
            .map(|v| v.value.as_str())
    }

    fn derive_email_domain(&mut self) {
        let domain = self
            .attributes
            .get("email")
            .and_then(|email| normalize::email(&email.raw))
            .and_then(|email| normalize::email_domain(&email).map(str::to_string));
        match domain {
            Some(domain) => {
                self.attributes.insert(
                    "email_domain".into(),
                    AttributeValue {
                        raw: domain.clone(),
                        value: domain,
                        number: None,
                    },
                );
            }
            None => {
                self.attributes.remove("email_domain");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_raw_value_beside_the_normalised_one() {
        let lead = Lead::from_raw(
            "L1",
            [
                ("Email", "ＴＥＳＴ＠ＥＸＡＭＰＬＥ．ＣＯＭ"),
                ("従業員数", "１，０００名"),
                ("company", "株式会社サンプル"),
            ],
        );
        let email = lead.get("email").unwrap();
        assert_eq!(email.raw, "ＴＥＳＴ＠ＥＸＡＭＰＬＥ．ＣＯＭ");
        assert_eq!(email.value, "test@example.com");
        assert_eq!(lead.get("email_domain").unwrap().value, "example.com");
        assert_eq!(
            lead.get("従業員数").unwrap().number,
            Some(Interval::exact(1000.0))
        );
        assert_eq!(lead.get("company").unwrap().value, "サンプル");
        assert_eq!(lead.email(), Some("test@example.com"));
    }

    #[test]
    fn blank_values_are_missing_and_derived_names_cannot_be_set() {
        let mut lead = Lead::from_raw("L1", [("email", "a@b.jp"), ("title", "  ")]);
        assert!(lead.get("title").is_none());
        lead.set("email_domain", "evil.example");
        assert_eq!(lead.get("email_domain").unwrap().value, "b.jp");
        lead.set("email", "not an email");
        assert!(lead.get("email_domain").is_none());
        assert_eq!(lead.email(), None);
    }

    #[test]
    fn attribute_names_are_canonicalised() {
        assert_eq!(attribute_name(" Job-Title "), "job_title");
        assert_eq!(attribute_name("ＥＭＰＬＯＹＥＥＳ"), "employees");
        // A canonical name is canonical: the store keeps attributes by it, and the lead
        // read back canonicalises them again.
        let name = attribute_name("J\u{30c}ob-Title");
        assert_eq!(attribute_name(&name), name);
    }

    #[test]
    fn a_lead_read_back_from_its_raw_values_is_the_same_lead() {
        let lead = Lead::from_raw(
            "L1",
            [("J\u{30c}ob", "CTO"), ("email", "te\u{b4}st@example.jp")],
        );
        let stored: Vec<(String, String)> = lead
            .attributes
            .iter()
            .map(|(n, v)| (n.clone(), v.raw.clone()))
            .collect();
        let back = Lead::from_raw("L1", stored.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(back, lead);
        assert_eq!(lead.email(), Some("t\u{e9}st@example.jp"));
    }
}
