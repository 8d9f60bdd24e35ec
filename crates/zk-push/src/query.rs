//! The request query string (push.md §1, §1.1). Devices put everything that routes a request — `SN`, `table`,
//! `Stamp`, `options`, `INFO` — in the query; the body carries only data. Must not depend on any other module.

use percent_encoding::percent_decode;

/// Parsed query string: `&`-separated pairs, percent-decoded (`+` = space), invalid UTF-8 decoded lossily,
/// keys compared case-insensitively, first occurrence wins. Never fails.
///
/// Invalid percent escapes (`%s`, `%zz`, a lone `%`) are kept as sent, so placeholder captures stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// Every pair's decoded key and value, one after another: two allocations per query however many pairs it
    /// has (a terminal sends three to five on every request; issue 6).
    text: String,
    /// Where each pair's key and value end in `text`: (key end, value end). A key starts where the previous
    /// pair's value ended.
    ends: Vec<(usize, usize)>,
}

impl Query {
    /// Parse a raw query string (without the leading `?`). Empty pieces (`a=1&&b=2`) are skipped; a piece
    /// without `=` becomes a key with an empty value.
    pub fn parse(raw: &str) -> Query {
        let mut query = Query {
            text: String::with_capacity(raw.len()),
            ends: Vec::with_capacity(4),
        };
        for piece in raw.split('&').filter(|piece| !piece.is_empty()) {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            decode_component(key, &mut query.text);
            let key_end = query.text.len();
            decode_component(value, &mut query.text);
            query.ends.push((key_end, query.text.len()));
        }
        query
    }

    /// The value of the first pair whose key equals `key` ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut start = 0;
        for &(key_end, value_end) in &self.ends {
            let candidate = &self.text.as_bytes()[start..key_end];
            if candidate.eq_ignore_ascii_case(key.as_bytes()) {
                return self.text.get(key_end..value_end);
            }
            start = value_end;
        }
        None
    }

    /// Every pair as (key, value), in wire order, decoded (duplicates kept).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(key_end, value_end)| {
            let pair = (&self.text[start..key_end], &self.text[key_end..value_end]);
            start = value_end;
            pair
        })
    }
}

/// Append one decoded component to `out`: `+` means space in a query component; then percent escapes; then lossy
/// UTF-8. A component with neither (`SN=…`, `table=ATTLOG`, `Stamp=…`: nearly every one a terminal sends) is
/// copied as it is.
fn decode_component(raw: &str, out: &mut String) {
    if !raw.bytes().any(|b| b == b'+' || b == b'%') {
        out.push_str(raw);
        return;
    }
    let spaced = raw.replace('+', " ");
    out.push_str(&percent_decode(spaced.as_bytes()).decode_utf8_lossy());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_in_order() {
        let q = Query::parse("SN=0316144680030&INFO=Ver%202.0.12-20150625,0,0&a+b=c+d");
        assert_eq!(
            q.pairs().collect::<Vec<_>>(),
            [
                ("SN", "0316144680030"),
                ("INFO", "Ver 2.0.12-20150625,0,0"),
                ("a b", "c d"),
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
        assert_eq!(Query::parse("").pairs().count(), 0);
        // Empty keys and values keep their places between their neighbours.
        assert_eq!(
            Query::parse("a=&=b&c").pairs().collect::<Vec<_>>(),
            [("a", ""), ("", "b"), ("c", "")]
        );
    }

    #[test]
    fn value_may_contain_equals() {
        let q = Query::parse("PIN=20081119172119-4.jpg&k=a=b");
        assert_eq!(q.get("PIN"), Some("20081119172119-4.jpg"));
        assert_eq!(q.get("k"), Some("a=b"));
    }
}
