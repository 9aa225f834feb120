//! Who a person is: the identity keys that point at a lead, and which lead survives when
//! two leads turn out to be one person.
//!
//! A normalised e-mail identifies a person; a site's own user id and an anonymous
//! (cookie) id link to a lead once a form, an `identify` or an `alias` call carries them
//! together with a known key.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::normalize;

/// A key that identifies a lead.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityKey {
    /// A normalised e-mail address.
    Email(String),
    /// The site's own user id (`userId` in Segment calls).
    User(String),
    /// A browser's anonymous id (`anonymousId`, the tracking cookie).
    Anonymous(String),
}

impl IdentityKey {
    /// The e-mail key for a raw address, when it is one.
    pub fn email(raw: &str) -> Option<IdentityKey> {
        normalize::email(raw).map(IdentityKey::Email)
    }

    /// The stored form: `email:a@b.jp`, `user:42`, `anon:8c1f..`.
    pub fn storage_key(&self) -> String {
        self.to_string()
    }

    /// Whether this key may create a lead on its own: an anonymous id never does.
    pub fn identifies(&self) -> bool {
        !matches!(self, IdentityKey::Anonymous(_))
    }

    pub fn parse(storage_key: &str) -> Option<IdentityKey> {
        let (kind, value) = storage_key.split_once(':')?;
        match kind {
            "email" => Some(IdentityKey::Email(value.to_string())),
            "user" => Some(IdentityKey::User(value.to_string())),
            "anon" => Some(IdentityKey::Anonymous(value.to_string())),
            _ => None,
        }
    }
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityKey::Email(v) => write!(f, "email:{v}"),
            IdentityKey::User(v) => write!(f, "user:{v}"),
            IdentityKey::Anonymous(v) => write!(f, "anon:{v}"),
        }
    }
}

/// A lead some identity key of the call already points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLead {
    pub lead_id: String,
    pub created_at: DateTime<Utc>,
    /// The strongest key of the call that points at it.
    pub via: IdentityKey,
    /// The lead's own e-mail address, if it has one.
    pub email: Option<String>,
}

/// What to do with the leads the keys of one call point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// No key is known and none may create a lead: keep the event anonymous.
    Anonymous,
    /// Create a new lead (the caller picks its id) and link every key to it.
    Create,
    /// Use this lead; every other lead listed merges into it (history, keys and
    /// attributes move; the merged ids redirect to the survivor).
    Use {
        survivor: String,
        merged: Vec<String>,
    },
}

/// Decides which lead a call belongs to.
///
/// The lead of the call's strongest key (e-mail, then user id, then anonymous id) is the
/// person. Other leads the call's keys point at merge with it, unless they have a
/// different e-mail address: two addresses are two people (a shared browser), and such a
/// lead is left alone while the call's keys move to the person. Of the merging leads the
/// oldest survives (ties: the smaller id), so a lead id once given to sales stays valid.
pub fn resolve(keys: &[IdentityKey], known: &[KnownLead]) -> Resolution {
    let strength = |key: &IdentityKey| match key {
        IdentityKey::Email(_) => 0,
        IdentityKey::User(_) => 1,
        IdentityKey::Anonymous(_) => 2,
    };
    let call_email = keys.iter().find_map(|k| match k {
        IdentityKey::Email(e) => Some(e.clone()),
        _ => None,
    });
    let Some(primary) = known
        .iter()
        .min_by_key(|k| (strength(&k.via), k.created_at, k.lead_id.clone()))
    else {
        return if keys.iter().any(IdentityKey::identifies) {
            Resolution::Create
        } else {
            Resolution::Anonymous
        };
    };
    let person_email = call_email.or_else(|| primary.email.clone());
    if primary.email.is_some() && primary.email != person_email {
        // The call names an address no known lead has: a new person on a known browser.
        return Resolution::Create;
    }
    let same_person: Vec<&KnownLead> = known
        .iter()
        .filter(|k| k.email.is_none() || k.email == person_email)
        .collect();
    let survivor = same_person
        .iter()
        .min_by(|a, b| (a.created_at, &a.lead_id).cmp(&(b.created_at, &b.lead_id)))
        .map_or_else(|| primary.lead_id.clone(), |k| k.lead_id.clone());
    let mut merged: Vec<String> = same_person
        .iter()
        .filter(|k| k.lead_id != survivor)
        .map(|k| k.lead_id.clone())
        .collect();
    merged.sort();
    merged.dedup();
    Resolution::Use { survivor, merged }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(id: &str, day: u32, via: IdentityKey, email: Option<&str>) -> KnownLead {
        KnownLead {
            lead_id: id.into(),
            created_at: DateTime::parse_from_rfc3339(&format!("2026-01-{day:02}T00:00:00Z"))
                .unwrap()
                .with_timezone(&Utc),
            via,
            email: email.map(str::to_string),
        }
    }

    fn email(e: &str) -> IdentityKey {
        IdentityKey::Email(e.into())
    }

    fn anon(a: &str) -> IdentityKey {
        IdentityKey::Anonymous(a.into())
    }

    #[test]
    fn anonymous_ids_alone_create_nothing() {
        assert_eq!(resolve(&[anon("a")], &[]), Resolution::Anonymous);
        assert_eq!(
            resolve(&[anon("a"), IdentityKey::email("Ａ＠Ｂ.jp").unwrap()], &[]),
            Resolution::Create
        );
        assert_eq!(
            resolve(&[IdentityKey::User("42".into())], &[]),
            Resolution::Create
        );
    }

    #[test]
    fn the_oldest_lead_of_one_person_survives_a_merge() {
        let keys = [email("a@b.jp"), IdentityKey::User("u1".into())];
        let resolution = resolve(
            &keys,
            &[
                known("L-new", 5, email("a@b.jp"), Some("a@b.jp")),
                known("L-old", 1, IdentityKey::User("u1".into()), None),
            ],
        );
        assert_eq!(
            resolution,
            Resolution::Use {
                survivor: "L-old".into(),
                merged: vec!["L-new".into()]
            }
        );
    }

    #[test]
    fn two_addresses_are_two_people_even_on_one_browser() {
        // The browser `x` belongs to a's lead; b fills in a form on it.
        let keys = [email("b@b.jp"), anon("x")];
        let resolution = resolve(&keys, &[known("L-a", 1, anon("x"), Some("a@b.jp"))]);
        assert_eq!(resolution, Resolution::Create);
        let both = resolve(
            &keys,
            &[
                known("L-a", 1, anon("x"), Some("a@b.jp")),
                known("L-b", 3, email("b@b.jp"), Some("b@b.jp")),
            ],
        );
        assert_eq!(
            both,
            Resolution::Use {
                survivor: "L-b".into(),
                merged: vec![]
            }
        );
    }

    #[test]
    fn storage_keys_round_trip() {
        for key in [
            IdentityKey::Email("a@b.jp".into()),
            IdentityKey::User("42".into()),
            IdentityKey::Anonymous("x:y".into()),
        ] {
            assert_eq!(IdentityKey::parse(&key.storage_key()), Some(key));
        }
    }
}
