//! Decoding device text (push.md §7 "Encoding", §13 item 11). Bodies are UTF-8 except user names on
//! Chinese-language firmware, which come as GB2312/GBK/GB18030. Must not depend on any other module.

use std::borrow::Cow;

use encoding_rs::GB18030;

/// Decode device text: UTF-8, else GB18030, else Latin-1 (push.md §7 Encoding). Never fails.
///
/// GB18030 is a superset of GB2312 and GBK, so one decoder covers all three. It is tried only when the bytes
/// are not valid UTF-8, and accepted only when it decodes without a single malformed sequence; Latin-1 maps
/// every byte to the code point of the same value, so nothing is ever lost or replaced.
pub fn decode_text(bytes: &[u8]) -> String {
    decode_text_cow(bytes).into_owned()
}

/// [`decode_text`], borrowing `bytes` when they are UTF-8 (nearly always) instead of copying them.
pub fn decode_text_cow(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    if let Some(text) = GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
        return Cow::Owned(text.into_owned());
    }
    Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
}

/// The lines of an upload body with their 1-based numbers: split on `\n`, one trailing `\r` removed, lines that
/// are empty or only whitespace skipped (push.md §7 general rules).
pub(crate) fn body_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(idx, line)| (idx + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

/// Trim ASCII whitespace and NUL padding from a field before interpreting it as a number, PIN or time.
pub(crate) fn trim_field(field: &str) -> &str {
    field.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_blank_ones_skipped() {
        let lines: Vec<(usize, &[u8])> = body_lines(b"a\r\n\n \t\nb\n").collect();
        assert_eq!(lines, vec![(1, &b"a"[..]), (4, &b"b"[..])]);
        assert_eq!(body_lines(b"").count(), 0);
    }

    #[test]
    fn utf8_is_kept() {
        assert_eq!(decode_text("张三 Zoë".as_bytes()), "张三 Zoë");
        assert_eq!(decode_text(b""), "");
    }

    #[test]
    fn gbk_name_is_decoded() {
        let (gbk, _, had_errors) = encoding_rs::GBK.encode("张三");
        assert!(!had_errors);
        assert_eq!(gbk.as_ref(), &[0xD5, 0xC5, 0xC8, 0xFD]);
        assert_eq!(decode_text(&gbk), "张三");
    }

    #[test]
    fn invalid_in_both_falls_back_to_latin1() {
        // 0xFF is not a GB18030 lead byte and not UTF-8.
        assert_eq!(decode_text(&[b'A', 0xFF, b'B']), "A\u{ff}B");
        // A lone GB18030 lead byte at the end is malformed too.
        assert_eq!(decode_text(&[b'x', 0x81]), "x\u{81}");
    }
}
