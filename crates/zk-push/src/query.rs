//! The request query string (push.md §1, §1.1). Devices put everything that routes a request — `SN`, `table`,
//! `Stamp`, `options`, `INFO` — in the query; the body carries only data. Must not depend on any other module.

use percent_encoding::percent_decode;

/// Parsed query string: `&`-separated pairs, percent-decoded (`+` = space), invalid UTF-8 decoded lossily,
/// keys compared case-insensitively, first occurrence wins. Never fails.
///
/// Invalid percent escapes (`%s`, `%zz`, a lone `%`) are kept as sent, so placeholder captures stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parse a raw query string (without the leading `?`). Empty pieces (`a=1&&b=2`) are skipped; a piece
    /// without `=` becomes a key with an empty value.
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|piece| !piece.is_empty())
            .map(|piece| {
                let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
                (decode_component(key), decode_component(value))
            })
            .collect();
        Query { pairs }
    }

    /// The value of the first pair whose key equals `key` ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in wire order, decoded (duplicates kept).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// `+` means space in a query component; then percent escapes; then lossy UTF-8. A component with neither
/// (`SN=…`, `table=ATTLOG`, `Stamp=…`: nearly every one a terminal sends) is copied once, not three times.
fn decode_component(raw: &str) -> String {
    if !raw.bytes().any(|b| b == b'+' || b == b'%') {
        return raw.to_owned();
    }
    let spaced = raw.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_in_order() {
        let q = Query::parse("SN=0316144680030&INFO=Ver%202.0.12-20150625,0,0&a+b=c+d");
        assert_eq!(
            q.pairs(),
            &[
                ("SN".to_string(), "0316144680030".to_string()),
                ("INFO".to_string(), "Ver 2.0.12-20150625,0,0".to_string()),
                ("a b".to_string(), "c d".to_string()),
            ]
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_first_wins() {
        let q = Query::parse("sn=A1&SN=B2&Stamp=9999");
        assert_eq!(q.get("SN"), Some("A1"));
        assert_eq!(q.get("stamp"), Some("9999"));
        assert_eq!(q.get("table"), None);
    }

    #[test]
    fn odd_pieces_never_fail() {
        let q = Query::parse("&&options&SN=%s&x=%zz%&y=%FF%FE&=v");
        assert_eq!(q.get("options"), Some(""));
        assert_eq!(q.get("SN"), Some("%s"));
        assert_eq!(q.get("x"), Some("%zz%"));
        assert_eq!(q.get("y"), Some("\u{fffd}\u{fffd}"));
        assert_eq!(q.get(""), Some("v"));
        assert_eq!(Query::parse("").pairs(), &[]);
    }

    #[test]
    fn value_may_contain_equals() {
        let q = Query::parse("PIN=20081119172119-4.jpg&k=a=b");
        assert_eq!(q.get("PIN"), Some("20081119172119-4.jpg"));
        assert_eq!(q.get("k"), Some("a=b"));
    }
}
