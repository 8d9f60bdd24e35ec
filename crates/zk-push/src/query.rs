//! The request query string (push.md §1). Must not depend on any other module.

/// Parsed query string: `&`-separated pairs, percent-decoded (`+` = space), invalid UTF-8 decoded lossily,
/// keys compared case-insensitively, first occurrence wins. Never fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parse a raw query string (without the leading `?`).
    pub fn parse(raw: &str) -> Query {
        let _ = raw;
        todo!()
    }

    /// The value of the first pair whose key equals `key` ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in wire order, decoded.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}
