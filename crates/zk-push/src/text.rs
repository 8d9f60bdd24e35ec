//! Decoding device text (push.md §7 "Encoding"). Must not depend on any other module.

/// Decode device text: UTF-8, else GB18030, else Latin-1 (push.md §7 Encoding). Never fails.
pub fn decode_text(bytes: &[u8]) -> String {
    let _ = bytes;
    todo!()
}
