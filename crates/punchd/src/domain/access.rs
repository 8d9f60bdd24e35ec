//! Who may do what through the API: the scope of an API token.
//!
//! Three levels, each including the ones below it: `read` < `operate` < `admin`. A later UI maps its roles onto
//! them (viewer → read, HR → operate, admin → admin), so this stays a small ordered enum.

use serde::{Deserialize, Serialize};

/// What a token may do. Ordered: a token may call a route when its scope is at least the route's.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read everything (every `GET`): devices, punches, users, commands, the journal.
    Read,
    /// Read, and operate terminals: queue and cancel commands, approve and block devices.
    Operate,
    /// Everything: create, change and delete devices, settings, tokens.
    Admin,
}

impl Scope {
    /// Every scope, lowest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Operate, Scope::Admin];

    /// Lowercase name as stored and shown (`read`, `operate`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }

    /// Parse the lowercase name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// Whether a token of this scope may call a route that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_lower_ones() {
        assert!(Scope::Admin.allows(Scope::Operate) && Scope::Operate.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Operate) && !Scope::Operate.allows(Scope::Admin));
        assert_eq!(Scope::parse("operate"), Some(Scope::Operate));
        assert_eq!(Scope::parse("Admin"), None);
    }
}
