//! The kinds of record. A leaf: the store, the engine and the wire mapping all name a record's
//! kind, and none of them may own the definition without the others importing upward.

/// The kinds of record, each one Automerge document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A contact (Kontakt).
    Contact,
    /// A client (pseudonymous person).
    Client,
    /// The team document.
    Team,
}

impl RecordKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            RecordKind::Contact => 1,
            RecordKind::Client => 2,
            RecordKind::Team => 3,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(RecordKind::Contact),
            2 => Some(RecordKind::Client),
            3 => Some(RecordKind::Team),
            _ => None,
        }
    }

    pub(crate) fn from_name(s: &str) -> Option<Self> {
        match s {
            "contact" => Some(RecordKind::Contact),
            "client" => Some(RecordKind::Client),
            "team" => Some(RecordKind::Team),
            _ => None,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Contact => "contact",
            RecordKind::Client => "client",
            RecordKind::Team => "team",
        })
    }
}
