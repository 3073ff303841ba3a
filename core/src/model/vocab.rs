//! The field's fixed vocabulary: settings, age bands, genders, housing situations, interventions,
//! review states and retention classes.
//!
//! These are enums (not team catalogs) because statistics for the city and funders are compared
//! across teams and years; catalogs that a team shapes itself (areas, topics, materials, partners)
//! live in the Team document instead. In Automerge each value is stored as its Rust variant name
//! (`DropIn`, autosurgeon's encoding); JSON, CSV and the CLI use the snake-case key (`drop_in`).

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

macro_rules! vocab {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $key:literal => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Reconcile, Hydrate)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $key)] $variant),+ }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// A short English label with the German term where the field uses it.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// The stable snake-case name used in JSON, CSV and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $key),+ }
            }

            /// Parses the snake-case name; `None` for anything else.
            pub fn from_key(key: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == key)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocab!(
    /// Where the contact happened.
    Setting {
        /// On the street, in a park, at a station.
        Street = "street" => "street",
        /// At the drop-in centre (Anlaufstelle).
        DropIn = "drop_in" => "drop-in (Anlaufstelle)",
        /// By phone.
        Phone = "phone" => "phone",
        /// Messenger, e-mail, social media.
        Digital = "digital" => "digital",
        /// Accompanying a client to an office or service (Begleitung).
        Accompaniment = "accompaniment" => "accompaniment (Begleitung)",
        /// At an event or outreach action.
        Event = "event" => "event",
    }
);

vocab!(
    /// Age band of the person, or of most of the group.
    AgeBand {
        /// Under 14.
        Under14 = "under_14" => "under 14",
        /// 14 to 17.
        From14To17 = "14_17" => "14-17",
        /// 18 to 20.
        From18To20 = "18_20" => "18-20",
        /// 21 to 26.
        From21To26 = "21_26" => "21-26",
        /// 27 to 39.
        From27To39 = "27_39" => "27-39",
        /// 40 to 64.
        From40To64 = "40_64" => "40-64",
        /// 65 and older.
        Over64 = "65_plus" => "65+",
        /// A group of mixed ages.
        Mixed = "mixed" => "mixed group",
        /// Not known or not asked.
        Unknown = "unknown" => "unknown",
    }
);

vocab!(
    /// Gender as the person describes it (or as recorded for a group).
    Gender {
        /// Female.
        Female = "female" => "female",
        /// Male.
        Male = "male" => "male",
        /// Diverse / non-binary.
        Diverse = "diverse" => "diverse",
        /// A group of mixed genders.
        Mixed = "mixed" => "mixed group",
        /// Not known or not asked.
        Unknown = "unknown" => "unknown",
    }
);

vocab!(
    /// The person's housing situation.
    Housing {
        /// Own flat or room.
        Housed = "housed" => "housed",
        /// With family or friends, couch surfing.
        Precarious = "precarious" => "precarious (with friends, couch surfing)",
        /// Emergency shelter (Notunterkunft).
        Shelter = "shelter" => "shelter (Notunterkunft)",
        /// Sleeping rough (obdachlos).
        Rough = "rough" => "sleeping rough",
        /// Supported housing, youth welfare accommodation.
        Supported = "supported" => "supported housing",
        /// Not known.
        Unknown = "unknown" => "unknown",
    }
);

vocab!(
    /// What the worker did.
    Intervention {
        /// A conversation.
        Conversation = "conversation" => "conversation",
        /// Counselling (Beratung).
        Counselling = "counselling" => "counselling (Beratung)",
        /// Crisis intervention.
        Crisis = "crisis" => "crisis intervention",
        /// Accompaniment (Begleitung).
        Accompaniment = "accompaniment" => "accompaniment (Begleitung)",
        /// Referral (Vermittlung) to a partner organisation.
        Referral = "referral" => "referral (Vermittlung)",
        /// Material help (food, clothing, harm-reduction supplies).
        MaterialHelp = "material_help" => "material help",
    }
);

vocab!(
    /// Where a note stands in the lead's review.
    ReviewState {
        /// Being written by the worker.
        Draft = "draft" => "draft",
        /// Handed in for review.
        Submitted = "submitted" => "submitted",
        /// The lead asked a question or for changes.
        ChangesRequested = "changes_requested" => "changes requested",
        /// Approved by a lead.
        Approved = "approved" => "approved",
    }
);

vocab!(
    /// How long a record is kept before retention rules delete it.
    RetentionClass {
        /// Routine contact: the team's standard period.
        Standard = "standard" => "standard",
        /// Child-protection case (§ 8a SGB VIII): kept for the legally required period.
        Safeguarding = "safeguarding" => "safeguarding",
        /// Kept only until statistics are produced.
        Short = "short" => "short",
    }
);

vocab!(
    /// What became of a referral.
    ReferralOutcome {
        /// Not known yet.
        Open = "open" => "open",
        /// The client arrived at the partner organisation.
        Arrived = "arrived" => "arrived",
        /// The client did not go.
        NotArrived = "not_arrived" => "did not arrive",
        /// The partner declined or could not help.
        Declined = "declined" => "declined",
    }
);

vocab!(
    /// What a review comment is.
    CommentKind {
        /// A remark.
        Remark = "remark" => "remark",
        /// A lead's question that waits for the worker's answer.
        Question = "question" => "question",
        /// The worker's answer to a question.
        Answer = "answer" => "answer",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_codes_are_stable() {
        for s in Setting::ALL {
            assert_eq!(Setting::from_key(s.as_str()), Some(*s));
        }
        assert_eq!(Setting::DropIn.as_str(), "drop_in");
        assert_eq!(AgeBand::From14To17.as_str(), "14_17");
        assert_eq!(Setting::from_key("nowhere"), None);
    }
}
