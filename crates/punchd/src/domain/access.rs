//! Who may do what, through the API and the web UI: the scope of an API token, and the role of a UI account.
//!
//! Four levels, each including the ones below it: `read` < `hr` < `operate` < `admin`. Roles and scopes are one
//! model: a UI account's [`Role`] is a name for a scope (viewer → `read`, hr → `hr`, admin → `admin`), and UI
//! pages check the same scope as the JSON route they stand for, so what a viewer cannot do in the UI a `read`
//! token cannot do through the API, and the other way round.

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
    /// Read everything (every `GET`): devices, punches, users, commands, the journal, attendance and its
    /// exports.
    Read,
    /// Read, and HR's work on attendance (every attendance change: employees, PIN mapping, shifts and roster,
    /// policy, corrections, the review, sign-off and reopen).
    Hr,
    /// Everything `hr` may, and operate terminals: queue and cancel commands, approve and block devices.
    Operate,
    /// Everything: create, change and delete devices, settings, tokens.
    Admin,
}

impl Scope {
    /// Every scope, lowest first.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Hr, Scope::Operate, Scope::Admin];

    /// Lowercase name as stored and shown (`read`, `hr`, `operate`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Hr => "hr",
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

/// The role of a web UI account: a name people use for a [`Scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing (scope `read`).
    Viewer,
    /// People, PIN mapping, shifts, policy, the monthly review, sign-off, exports (scope `hr`).
    Hr,
    /// Everything, terminals and accounts included (scope `admin`).
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Hr, Role::Admin];

    /// Lowercase name as stored and shown (`viewer`, `hr`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Hr => "hr",
            Role::Admin => "admin",
        }
    }

    /// Parse the lowercase name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == s)
    }

    /// The API token scope with exactly this role's rights.
    pub fn scope(self) -> Scope {
        match self {
            Role::Viewer => Scope::Read,
            Role::Hr => Scope::Hr,
            Role::Admin => Scope::Admin,
        }
    }

    /// Whether this role may do what needs `needed` (the same test as for a token of [`Role::scope`]).
    pub fn allows(self, needed: Scope) -> bool {
        self.scope().allows(needed)
    }
}

impl std::fmt::Display for Role {
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
        assert!(Scope::Operate.allows(Scope::Hr) && Scope::Hr.allows(Scope::Read));
        assert!(!Scope::Hr.allows(Scope::Operate));
        assert_eq!(Scope::parse("hr"), Some(Scope::Hr));
    }

    #[test]
    fn roles_are_names_for_scopes() {
        assert_eq!(Role::Viewer.scope(), Scope::Read);
        assert_eq!(Role::Hr.scope(), Scope::Hr);
        assert_eq!(Role::Admin.scope(), Scope::Admin);
        // HR changes attendance but does not operate terminals; a viewer changes nothing.
        assert!(Role::Hr.allows(Scope::Hr) && !Role::Hr.allows(Scope::Operate));
        assert!(!Role::Viewer.allows(Scope::Hr));
        assert_eq!(Role::parse("hr"), Some(Role::Hr));
        assert_eq!(Role::parse("operate"), None);
    }
}
