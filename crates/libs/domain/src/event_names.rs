//! The Meta event name a level is sent under, and the names Meta accepts.
//!
//! An event with a click id goes out as `action_source: business_messaging`,
//! and for those Meta accepts only the names of its Business Messaging list
//! (research `meta-capi-business-messaging.md` §1.3); any other name —
//! `Lead`, `CompleteRegistration` and `Schedule` included — is refused with
//! subcode 2804066 ("Messaging Event Invalid Event Type"). An event without
//! a click id goes out as `action_source: other` and may use the standard
//! names. So every level has a name per action source.

use crate::level::Level;
use serde::{Deserialize, Deserializer};
use std::fmt;

/// Meta's list for `action_source: business_messaging` (the onboarding
/// guide's FAQ), the default of `meta.business_messaging_event_names`.
pub const BUSINESS_MESSAGING_EVENT_NAMES: [&str; 14] = [
    "Purchase",
    "LeadSubmitted",
    "InitiateCheckout",
    "AddToCart",
    "ViewContent",
    "OrderCreated",
    "OrderShipped",
    "OrderDelivered",
    "OrderCanceled",
    "OrderReturned",
    "CartAbandoned",
    "QualifiedLead",
    "RatingProvided",
    "ReviewProvided",
];

/// How Meta is told where the conversion happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionSource {
    /// With a click id: the conversation came from a Click-to-WhatsApp ad.
    BusinessMessaging,
    /// Without one (the spec's fallback): matched on the hashed phone only.
    Other,
}

impl ActionSource {
    /// `business_messaging` when there is a (non-blank) click id.
    pub fn for_click(ctwa_clid: Option<&str>) -> ActionSource {
        match ctwa_clid.map(str::trim) {
            Some(c) if !c.is_empty() => ActionSource::BusinessMessaging,
            _ => ActionSource::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActionSource::BusinessMessaging => "business_messaging",
            ActionSource::Other => "other",
        }
    }
}

impl fmt::Display for ActionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new direction's name for `level` on `source`. With a click id:
/// `LeadSubmitted`, `QualifiedLead`, and `OrderCreated` for a booking (a
/// booking is an order for a service; none of Meta's list says "scheduled",
/// and `OrderCreated` keeps the levels' names distinct). Without one: the
/// spec's `Lead`, `CompleteRegistration`, `Schedule`. A purchase is
/// `Purchase` on both (on Meta's list, and the standard event): not a setting.
pub fn default_event_name(level: Level, source: ActionSource) -> &'static str {
    match (source, level) {
        (_, Level::Purchase) => PURCHASE_EVENT_NAME,
        (ActionSource::BusinessMessaging, Level::Interest) => "LeadSubmitted",
        (ActionSource::BusinessMessaging, Level::Qualified) => "QualifiedLead",
        (ActionSource::BusinessMessaging, Level::Scheduled) => "OrderCreated",
        (ActionSource::Other, Level::Interest) => "Lead",
        (ActionSource::Other, Level::Qualified) => "CompleteRegistration",
        (ActionSource::Other, Level::Scheduled) => "Schedule",
    }
}

/// The purchase level's name, whatever the action source.
pub const PURCHASE_EVENT_NAME: &str = "Purchase";

/// A stored name unless it is blank, else the default.
pub fn name_or_default(configured: Option<&str>, level: Level, source: ActionSource) -> &str {
    configured
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(default_event_name(level, source))
}

/// The names a direction chose, per conversation level (interest,
/// qualified, scheduled) and action source; a purchase is always `Purchase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionNames {
    pub business_messaging: [String; 3],
    pub other: [String; 3],
}

impl DirectionNames {
    /// The name for `level` on `source` (a blank stored name falls back to
    /// the default).
    pub fn get(&self, level: Level, source: ActionSource) -> &str {
        let names = match source {
            ActionSource::BusinessMessaging => &self.business_messaging,
            ActionSource::Other => &self.other,
        };
        let configured = Level::CONVERSATION
            .iter()
            .position(|l| *l == level)
            .and_then(|i| names.get(i));
        name_or_default(configured.map(String::as_str), level, source)
    }
}

impl Default for DirectionNames {
    fn default() -> Self {
        let names = |s| Level::CONVERSATION.map(|l| default_event_name(l, s).to_owned());
        DirectionNames {
            business_messaging: names(ActionSource::BusinessMessaging),
            other: names(ActionSource::Other),
        }
    }
}

/// Why a name cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRefused {
    #[error(
        "event name {name:?} is not one Meta accepts with a click id (action_source business_messaging); allowed: {allowed}"
    )]
    NotAllowed { name: String, allowed: String },
    #[error(
        "event names of one direction must differ ({action_source}): {name:?} is used for {first} and {second}"
    )]
    Repeated {
        name: String,
        action_source: ActionSource,
        first: Level,
        second: Level,
    },
    #[error("an event name cannot be empty")]
    Empty,
}

/// `meta.business_messaging_event_names`: Meta's list, or the operator's
/// when Meta changes it before we release. Written as a list or as one
/// comma-separated string (an environment variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedNames(Vec<String>);

impl Default for AllowedNames {
    fn default() -> Self {
        AllowedNames(
            BUSINESS_MESSAGING_EVENT_NAMES
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
        )
    }
}

impl AllowedNames {
    /// Names as written (blank parts dropped); an empty list is refused.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Result<Self, String> {
        let names: Vec<String> = names
            .into_iter()
            .map(|n| n.as_ref().trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err("the list of business-messaging event names is empty".into());
        }
        Ok(AllowedNames(names))
    }

    /// The names, in the order given.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    /// Whether `name` may be sent on `source` (any name may without a click id).
    pub fn check(&self, name: &str, source: ActionSource) -> Result<(), NameRefused> {
        if name.trim().is_empty() {
            return Err(NameRefused::Empty);
        }
        match source {
            ActionSource::BusinessMessaging if !self.contains(name) => {
                Err(NameRefused::NotAllowed {
                    name: name.to_owned(),
                    allowed: self.0.join(", "),
                })
            }
            _ => Ok(()),
        }
    }

    /// Every name of a direction: allowed for its source, and the levels'
    /// names distinct per source (Meta counts conversions by name).
    pub fn check_direction(&self, names: &DirectionNames) -> Vec<NameRefused> {
        let mut refused = Vec::new();
        for source in [ActionSource::BusinessMessaging, ActionSource::Other] {
            for (i, level) in Level::ALL.into_iter().enumerate() {
                let name = names.get(level, source);
                // `Purchase` is not a setting: only the chosen names are
                // held to the list here (the sender checks every event).
                if level != Level::Purchase
                    && let Err(e) = self.check(name, source)
                {
                    refused.push(e);
                }
                if let Some(first) = Level::ALL[..i]
                    .iter()
                    .find(|l| names.get(**l, source) == name)
                {
                    refused.push(NameRefused::Repeated {
                        name: name.to_owned(),
                        action_source: source,
                        first: *first,
                        second: level,
                    });
                }
            }
        }
        refused
    }
}

impl<'de> Deserialize<'de> for AllowedNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            List(Vec<String>),
            Text(String),
        }
        let names = match Written::deserialize(d)? {
            Written::List(l) => l,
            Written::Text(t) => t.split(',').map(str::to_owned).collect(),
        };
        AllowedNames::new(names).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_on_metas_list_with_a_click_id_and_standard_without() {
        let allowed = AllowedNames::default();
        let names = DirectionNames::default();
        assert!(allowed.check_direction(&names).is_empty());
        assert_eq!(
            Level::ALL.map(|l| names.get(l, ActionSource::BusinessMessaging)),
            ["LeadSubmitted", "QualifiedLead", "OrderCreated", "Purchase"]
        );
        assert_eq!(
            Level::ALL.map(|l| names.get(l, ActionSource::Other)),
            ["Lead", "CompleteRegistration", "Schedule", "Purchase"]
        );
        for name in ["Lead", "CompleteRegistration", "Schedule", "Contact"] {
            assert!(matches!(
                allowed.check(name, ActionSource::BusinessMessaging),
                Err(NameRefused::NotAllowed { .. })
            ));
            assert_eq!(allowed.check(name, ActionSource::Other), Ok(()));
        }
        assert_eq!(ActionSource::for_click(Some(" ")), ActionSource::Other);
        assert_eq!(
            ActionSource::for_click(Some("c")),
            ActionSource::BusinessMessaging
        );
    }

    #[test]
    fn a_direction_with_a_name_off_the_list_or_repeated_is_refused_by_name() {
        let allowed = AllowedNames::default();
        let mut names = DirectionNames::default();
        names.business_messaging[0] = "Lead".into();
        names.other[2] = "Lead".into();
        let refused: Vec<String> = allowed
            .check_direction(&names)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].starts_with("event name \"Lead\" is not one Meta accepts"));
        assert!(refused[0].contains("allowed: Purchase, LeadSubmitted, InitiateCheckout"));
        assert_eq!(
            refused[1],
            "event names of one direction must differ (other): \"Lead\" is used for interest and scheduled"
        );
    }

    #[test]
    fn the_setting_reads_a_list_or_a_comma_separated_string() {
        let from = |v: serde_json::Value| serde_json::from_value::<AllowedNames>(v);
        let list = from(serde_json::json!(["LeadSubmitted", "Purchase"])).unwrap();
        let text = from(serde_json::json!(" LeadSubmitted, Purchase ,")).unwrap();
        assert_eq!(list, text);
        assert!(text.contains("Purchase") && !text.contains("Lead"));
        let empty = from(serde_json::json!(" , ")).unwrap_err().to_string();
        assert!(empty.contains("empty"), "{empty}");
    }
}
