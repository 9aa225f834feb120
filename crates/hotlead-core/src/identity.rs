//! Who a person is: the identity keys that point at a lead, and which lead survives when
//! two leads turn out to be one person.
//!
//! A normalised e-mail identifies a person; a site's own user id and an anonymous
//! (cookie) id link to a lead once a form, an `identify` or an `alias` call carries them
//! together with a known key.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::normalize;

/// Most identity keys one lead holds (its e-mail, user ids, anonymous ids). Past it, the
/// oldest anonymous links are dropped (then the oldest user ids; never the e-mail), so a
/// flood of fresh anonymous ids cannot make a lead unwritable. The bound also keeps a
/// merge of three leads within one DynamoDB transaction (at most 100 writes).
pub const MAX_IDENTITIES: usize = 24;
/// Most anonymous ids whose earlier (pre-identification) history a lead reads. Past it,
/// the oldest are let go.
pub const MAX_HISTORY_SOURCES: usize = 64;
/// Most leads merged into one lead over its life. A merge past it is not made: the other
/// lead is left as it is (the call's keys still move to the person).
pub const MAX_MERGED_LEADS: usize = 32;
/// Most attributes one lead holds besides the canonical ones
/// ([`crate::lead::CANONICAL_ATTRIBUTES`], always kept: a flood of made-up fields cannot
/// crowd out the company or the title).
pub const MAX_ATTRIBUTES: usize = 100;
/// Most bytes of names and values of those other attributes one lead holds.
pub const MAX_ATTRIBUTE_BYTES: usize = 32 * 1024;

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

/// The part of a lead that identity decides: its keys, its history, what merged into it,
/// its attributes and how often it crossed into the hot band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadIdentity {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Identity keys in storage form (`email:..`, `user:..`, `anon:..`), oldest link first.
    pub identities: Vec<String>,
    /// Anonymous ids whose events from before the link belong to this lead, oldest first.
    pub history: Vec<String>,
    /// Leads merged into this one (their ids redirect here).
    pub merged_from: Vec<String>,
    /// Raw attribute values by canonical name.
    pub attributes: BTreeMap<String, String>,
    pub hot_crossings: u32,
}

impl LeadIdentity {
    /// A lead created by the call being applied.
    pub fn new(id: impl Into<String>, created_at: DateTime<Utc>) -> Self {
        LeadIdentity {
            id: id.into(),
            created_at,
            identities: Vec::new(),
            history: Vec::new(),
            merged_from: Vec::new(),
            attributes: BTreeMap::new(),
            hot_crossings: 0,
        }
    }

    /// The lead's e-mail address, if it has one.
    pub fn email(&self) -> Option<&str> {
        self.identities
            .iter()
            .find_map(|k| k.strip_prefix("email:"))
    }

    /// The attributes the limits count: all but the canonical ones.
    fn counted(&self) -> impl Iterator<Item = (&String, &String)> {
        self.attributes.iter().filter(|(k, _)| !is_canonical(k))
    }

    fn attribute_bytes(&self) -> usize {
        self.counted().map(|(k, v)| k.len() + v.len()).sum()
    }
}

fn is_canonical(name: &str) -> bool {
    crate::lead::CANONICAL_ATTRIBUTES.contains(&name)
}

/// A change to an identity link (`ID#key` -> lead) that applying a call makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    /// A key no lead had: it now points at the survivor.
    Claim { key: String },
    /// A key that pointed at lead `from` now points at the survivor.
    Move { key: String, from: String },
    /// A key that pointed at lead `from` is unlinked (the survivor holds as many keys as
    /// it may).
    Unlink { key: String, from: String },
}

/// What applying one call to a lead does; the stores write exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The survivor as it is after the call.
    pub lead: LeadIdentity,
    /// Leads merged into it by this call.
    pub merged: Vec<String>,
    /// Leads the call's keys pointed at that were not merged (past [`MAX_MERGED_LEADS`]).
    pub left_alone: Vec<String>,
    /// Link changes, in order.
    pub links: Vec<LinkChange>,
    /// Attribute names of the call that were not stored: the lead holds
    /// [`MAX_ATTRIBUTES`] attributes or [`MAX_ATTRIBUTE_BYTES`] bytes of them.
    pub dropped_attributes: Vec<String>,
}

impl Applied {
    /// Whether the call changes nothing of the lead but its change counter (a plain event
    /// of a known lead): stores may then count it without a condition on the lead.
    pub fn changes_only_the_counter(&self, before: &LeadIdentity) -> bool {
        self.merged.is_empty() && self.links.is_empty() && self.lead == *before
    }
}

/// Adds `value` under `name` if the lead may hold it; `false` when it may not.
fn put_attribute(lead: &mut LeadIdentity, name: &str, value: &str, replace: bool) -> bool {
    if is_canonical(name) {
        if replace || !lead.attributes.contains_key(name) {
            lead.attributes.insert(name.to_string(), value.to_string());
        }
        return true;
    }
    match lead.attributes.get(name) {
        Some(old) if !replace || old == value => true,
        Some(old) => {
            let bytes = lead.attribute_bytes() - old.len() + value.len();
            if bytes > MAX_ATTRIBUTE_BYTES {
                return false;
            }
            lead.attributes.insert(name.to_string(), value.to_string());
            true
        }
        None => {
            let bytes = lead.attribute_bytes() + name.len() + value.len();
            if lead.counted().count() >= MAX_ATTRIBUTES || bytes > MAX_ATTRIBUTE_BYTES {
                return false;
            }
            lead.attributes.insert(name.to_string(), value.to_string());
            true
        }
    }
}

/// Applies one call to the lead it belongs to: the merge rule, once for every store.
///
/// - `survivor`: the lead [`resolve`] chose, as stored (or [`LeadIdentity::new`] for a
///   lead the call creates).
/// - `merging`: the leads [`resolve`] merges into it, as stored.
/// - `keys`: the call's keys, each with the lead id its link points at now (`None` for a
///   new key). A key already on the survivor is left as it is.
/// - `attributes`: the call's attribute values (raw, canonical names).
///
/// Merged leads give the survivor their keys, history, merged leads and the attributes it
/// lacks; the survivor keeps the higher hot-crossing count (so an alert key of a crossing
/// is never reused). The call's attributes then replace earlier values. Limits: a merge
/// past [`MAX_MERGED_LEADS`] is not made; keys past [`MAX_IDENTITIES`] drop the oldest
/// anonymous links (then user ids; the e-mail and the call's own keys stay); history past
/// [`MAX_HISTORY_SOURCES`] drops the oldest; attributes past [`MAX_ATTRIBUTES`] or
/// [`MAX_ATTRIBUTE_BYTES`] are not stored and are reported. Nothing here fails: a call
/// always fits.
pub fn apply(
    survivor: &LeadIdentity,
    merging: &[LeadIdentity],
    keys: &[(IdentityKey, Option<String>)],
    attributes: &[(String, String)],
) -> Applied {
    let mut lead = survivor.clone();
    let mut merged = Vec::new();
    let mut left_alone = Vec::new();
    // Where each key on the lead points now (a key moved by a merge points at its old lead
    // until the store re-points it).
    let mut pointing: Vec<(String, String)> = lead
        .identities
        .iter()
        .map(|k| (k.clone(), lead.id.clone()))
        .collect();
    let mut links = Vec::new();
    let mut sorted: Vec<&LeadIdentity> = merging.iter().filter(|m| m.id != lead.id).collect();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    sorted.dedup_by(|a, b| a.id == b.id);
    for from in sorted {
        if lead.merged_from.len() + 1 + from.merged_from.len() > MAX_MERGED_LEADS {
            left_alone.push(from.id.clone());
            continue;
        }
        merged.push(from.id.clone());
        lead.merged_from.push(from.id.clone());
        lead.merged_from.extend(from.merged_from.iter().cloned());
        for source in &from.history {
            if !lead.history.contains(source) {
                lead.history.push(source.clone());
            }
        }
        for key in &from.identities {
            if !lead.identities.contains(key) {
                lead.identities.push(key.clone());
                pointing.push((key.clone(), from.id.clone()));
            }
        }
        for (name, value) in &from.attributes {
            put_attribute(&mut lead, name, value, false);
        }
        lead.hot_crossings = lead.hot_crossings.max(from.hot_crossings);
    }
    for id in &merged {
        for (key, at) in &pointing {
            if at == id {
                links.push(LinkChange::Move {
                    key: key.clone(),
                    from: id.clone(),
                });
            }
        }
    }
    let mut call_keys = Vec::new();
    for (key, linked) in keys {
        let storage = key.storage_key();
        call_keys.push(storage.clone());
        if lead.identities.contains(&storage) {
            // On the lead already (its own, or moved by a merge above).
            continue;
        }
        match linked {
            None => {
                if let IdentityKey::Anonymous(anonymous) = key
                    && !lead.history.contains(anonymous)
                {
                    lead.history.push(anonymous.clone());
                }
                links.push(LinkChange::Claim {
                    key: storage.clone(),
                });
            }
            Some(from) => links.push(LinkChange::Move {
                key: storage.clone(),
                from: from.clone(),
            }),
        }
        lead.identities.push(storage);
    }
    // Too many keys: let the oldest anonymous links go, then the oldest user ids.
    while lead.identities.len() > MAX_IDENTITIES {
        let droppable = |prefix: &str| {
            lead.identities
                .iter()
                .position(|k| k.starts_with(prefix) && !call_keys.contains(k))
        };
        let Some(index) = droppable("anon:").or_else(|| droppable("user:")) else {
            break;
        };
        let key = lead.identities.remove(index);
        // Never one of the call's keys: it was the survivor's, or a merged lead's (whose
        // planned move becomes an unlink where it points).
        links.retain(|l| !matches!(l, LinkChange::Move { key: k, .. } if *k == key));
        let from = pointing
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, at)| at.clone())
            .unwrap_or_default();
        links.push(LinkChange::Unlink { key, from });
    }
    if lead.history.len() > MAX_HISTORY_SOURCES {
        let excess = lead.history.len() - MAX_HISTORY_SOURCES;
        lead.history.drain(..excess);
    }
    let mut dropped_attributes = Vec::new();
    for (name, value) in attributes {
        if !put_attribute(&mut lead, name, value, true) && !dropped_attributes.contains(name) {
            dropped_attributes.push(name.clone());
        }
    }
    Applied {
        lead,
        merged,
        left_alone,
        links,
        dropped_attributes,
    }
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

    fn stored(id: &str, day: u32, keys: &[&str]) -> LeadIdentity {
        let mut lead = LeadIdentity::new(
            id,
            DateTime::parse_from_rfc3339(&format!("2026-01-{day:02}T00:00:00Z"))
                .unwrap()
                .with_timezone(&Utc),
        );
        lead.identities = keys.iter().map(|k| k.to_string()).collect();
        lead
    }

    #[test]
    fn a_merge_moves_keys_history_and_missing_attributes_and_keeps_the_higher_crossings() {
        let mut survivor = stored("L-old", 1, &["user:u1"]);
        survivor.attributes.insert("company".into(), "A社".into());
        let mut from = stored("L-new", 5, &["email:a@b.jp", "anon:x"]);
        from.history = vec!["x".into()];
        from.hot_crossings = 2;
        from.attributes.insert("company".into(), "B社".into());
        from.attributes.insert("title".into(), "部長".into());
        let applied = apply(
            &survivor,
            &[from],
            &[
                (email("a@b.jp"), Some("L-new".into())),
                (IdentityKey::User("u1".into()), Some("L-old".into())),
            ],
            &[("employees".into(), "300".into())],
        );
        assert_eq!(applied.merged, vec!["L-new".to_string()]);
        assert_eq!(applied.lead.hot_crossings, 2);
        assert_eq!(
            applied.lead.attributes["company"], "A社",
            "the survivor's value stays"
        );
        assert_eq!(applied.lead.attributes["title"], "部長");
        assert_eq!(applied.lead.attributes["employees"], "300");
        assert_eq!(applied.lead.history, vec!["x".to_string()]);
        assert_eq!(
            applied.lead.identities,
            vec!["user:u1", "email:a@b.jp", "anon:x"]
        );
        assert_eq!(
            applied.links,
            vec![
                LinkChange::Move {
                    key: "email:a@b.jp".into(),
                    from: "L-new".into()
                },
                LinkChange::Move {
                    key: "anon:x".into(),
                    from: "L-new".into()
                },
            ]
        );
    }

    #[test]
    fn a_flood_of_anonymous_ids_drops_the_oldest_links_never_the_email() {
        let mut lead = stored("L-1", 1, &["email:a@b.jp"]);
        for i in 0..200 {
            let key = anon(&format!("a{i}"));
            let applied = apply(
                &lead,
                &[],
                &[(email("a@b.jp"), Some("L-1".into())), (key, None)],
                &[],
            );
            assert!(applied.lead.identities.len() <= MAX_IDENTITIES);
            assert!(applied.lead.history.len() <= MAX_HISTORY_SOURCES);
            assert!(
                applied
                    .lead
                    .identities
                    .contains(&"email:a@b.jp".to_string())
            );
            assert!(
                applied.lead.identities.contains(&format!("anon:a{i}")),
                "the call's key stays"
            );
            if i >= MAX_IDENTITIES - 1 {
                let oldest = format!("anon:a{}", i + 1 - MAX_IDENTITIES);
                assert_eq!(
                    applied.links,
                    vec![
                        LinkChange::Claim {
                            key: format!("anon:a{i}")
                        },
                        LinkChange::Unlink {
                            key: oldest,
                            from: "L-1".into()
                        },
                    ]
                );
            }
            lead = applied.lead;
        }
        assert_eq!(lead.history.first().map(String::as_str), Some("a136"));
    }

    #[test]
    fn a_merge_of_full_leads_stays_within_one_transaction() {
        let keys = |prefix: &str| -> Vec<String> {
            (0..MAX_IDENTITIES)
                .map(|i| format!("anon:{prefix}{i}"))
                .collect()
        };
        let mut a = stored("L-a", 1, &[]);
        a.identities = keys("a");
        let mut b = stored("L-b", 2, &[]);
        b.identities = keys("b");
        b.identities[0] = "email:b@b.jp".into();
        let mut c = stored("L-c", 3, &[]);
        c.identities = keys("c");
        let applied = apply(
            &a,
            &[b, c],
            &[
                (email("b@b.jp"), Some("L-b".into())),
                (IdentityKey::User("u".into()), None),
                (anon("c0"), Some("L-c".into())),
            ],
            &[],
        );
        assert_eq!(applied.merged.len(), 2);
        assert_eq!(applied.lead.identities.len(), MAX_IDENTITIES);
        // The message, the event, the lead, two merged leads, and one write per link.
        assert!(
            5 + applied.links.len() <= 100,
            "{} writes",
            5 + applied.links.len()
        );
    }

    #[test]
    fn attributes_past_the_limits_are_reported_not_stored() {
        let lead = stored("L-1", 1, &["email:a@b.jp"]);
        let many: Vec<(String, String)> = (0..150)
            .map(|i| (format!("f{i:03}"), "x".to_string()))
            .collect();
        let applied = apply(&lead, &[], &[], &many);
        assert_eq!(applied.lead.attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(applied.dropped_attributes.len(), 50);
        let big = "長".repeat(2_000);
        let mut lead = stored("L-1", 1, &[]);
        let mut dropped = 0;
        for i in 0..20 {
            let applied = apply(&lead, &[], &[], &[(format!("big{i}"), big.clone())]);
            dropped += applied.dropped_attributes.len();
            lead = applied.lead;
        }
        assert!(lead.attribute_bytes() <= MAX_ATTRIBUTE_BYTES);
        assert_eq!(dropped, 20 - MAX_ATTRIBUTE_BYTES / (big.len() + 5));
        // An existing attribute can still change.
        let applied = apply(&lead, &[], &[], &[("big0".into(), "short".into())]);
        assert!(applied.dropped_attributes.is_empty());
        // The canonical attributes are always kept.
        let applied = apply(&applied.lead, &[], &[], &[("company".into(), big.clone())]);
        assert!(applied.dropped_attributes.is_empty());
        assert_eq!(applied.lead.attributes["company"], big);
    }

    #[test]
    fn merges_past_the_limit_leave_the_other_lead_alone() {
        let mut survivor = stored("L-1", 1, &["email:a@b.jp"]);
        survivor.merged_from = (0..MAX_MERGED_LEADS).map(|i| format!("M-{i}")).collect();
        let other = stored("L-2", 2, &["user:u"]);
        let applied = apply(
            &survivor,
            &[other],
            &[(IdentityKey::User("u".into()), Some("L-2".into()))],
            &[],
        );
        assert!(applied.merged.is_empty());
        assert_eq!(applied.left_alone, vec!["L-2".to_string()]);
        assert_eq!(
            applied.links,
            vec![LinkChange::Move {
                key: "user:u".into(),
                from: "L-2".into()
            }]
        );
    }

    #[test]
    fn a_plain_event_changes_only_the_counter() {
        let lead = stored("L-1", 1, &["email:a@b.jp", "anon:x"]);
        let applied = apply(&lead, &[], &[(anon("x"), Some("L-1".into()))], &[]);
        assert!(applied.changes_only_the_counter(&lead));
        let applied = apply(&lead, &[], &[], &[("title".into(), "CTO".into())]);
        assert!(!applied.changes_only_the_counter(&lead));
    }
}
