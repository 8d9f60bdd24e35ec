//! The device's options push, `table=options` (push.md §7.5), also the 3.x `registry` capability body
//! (push.md §10). Depends only on [`crate::text`].

use crate::text::decode_text;

/// Parse a comma-separated (or newline-separated) `Key=Value` list; split only on a comma followed by
/// `[~]Name=`, so values containing commas survive (`~OEMVendor=ZKTECO CO., LTD.`).
///
/// `Name` is ASCII letters, digits and `_`. Keys are trimmed; values are kept as sent (empty values are
/// legal, `~MaxPvCount=`). A fragment without `=` becomes a key with an empty value. Never fails.
pub fn parse_options(body: &[u8]) -> Vec<(String, String)> {
    let text = decode_text(body);
    let mut pairs = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        for segment in split_at_key_commas(line) {
            if segment.trim().is_empty() {
                continue;
            }
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            pairs.push((key.trim().to_string(), value.to_string()));
        }
    }
    pairs
}

fn split_at_key_commas(line: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut start = 0;
    for (at, _) in line.match_indices(',') {
        if starts_with_key(&line[at + 1..]) {
            segments.push(&line[start..at]);
            start = at + 1;
        }
    }
    segments.push(&line[start..]);
    segments
}

/// `[~]Name=` at the start of `rest`.
fn starts_with_key(rest: &str) -> bool {
    let rest = rest.strip_prefix('~').unwrap_or(rest);
    let name_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    name_len > 0 && rest.as_bytes().get(name_len) == Some(&b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn commas_inside_values_survive() {
        let body = b"~OEMVendor=ZKTECO CO., LTD.,FWVersion=ZAM180,~MaxPvCount=,x=a,b,c";
        assert_eq!(
            parse_options(body),
            pairs(&[
                ("~OEMVendor", "ZKTECO CO., LTD."),
                ("FWVersion", "ZAM180"),
                ("~MaxPvCount", ""),
                ("x", "a,b,c"),
            ])
        );
    }

    #[test]
    fn newline_separated_and_crlf() {
        assert_eq!(
            parse_options(b"A=1\r\nB=2,C=3\n\nD\n"),
            pairs(&[("A", "1"), ("B", "2"), ("C", "3"), ("D", "")])
        );
    }

    #[test]
    fn empty_and_garbage() {
        assert!(parse_options(b"").is_empty());
        assert_eq!(parse_options(b",,=,"), pairs(&[(",,", ",")]));
        assert_eq!(
            parse_options(&[0xFF, b'=', 0xFE]),
            pairs(&[("\u{ff}", "\u{fe}")])
        );
    }
}
