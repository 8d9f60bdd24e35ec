//! NUL characters in what terminals send, made storable on PostgreSQL.
//!
//! PostgreSQL's `text` cannot hold U+0000 (refused as an invalid byte sequence for UTF-8) and neither can `jsonb`
//! (refused as an "unsupported Unicode escape sequence", SQLSTATE 22P05); SQLite can. Terminals do send NUL bytes:
//! fixed-width fields padded with them, damaged lines. Refused, a terminal's upload was answered 503 and sent again
//! for ever, holding back every later punch of that terminal. So before a write, every U+0000 in the text a batch
//! carries (punch fields, line errors, users, templates, photos, operation log, records, stamps, device info,
//! command results) becomes [`REPLACEMENT`], U+FFFD, as invalid UTF-8 already does. The raw journal keeps the exact
//! bytes (`bytea`). Depends on the store types only.

use crate::store::{Batch, CommandCompletion, RawEntry};

/// What a NUL character becomes: U+FFFD REPLACEMENT CHARACTER.
pub(super) const REPLACEMENT: char = '\u{FFFD}';

/// `s` with every U+0000 replaced by [`REPLACEMENT`]; untouched (no allocation) when it holds none.
pub(super) fn clean(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', REPLACEMENT.encode_utf8(&mut [0; 3]));
    }
}

/// [`clean`] on an optional text.
pub(super) fn clean_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        clean(s);
    }
}

/// [`clean`] on every string of a JSON value, keys included.
pub(super) fn clean_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => clean(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(clean_json),
        serde_json::Value::Object(map) => clean_map(map),
        _ => {}
    }
}

/// [`clean`] on the keys and values of a JSON object.
pub(super) fn clean_map(map: &mut serde_json::Map<String, serde_json::Value>) {
    if map.keys().any(|k| k.contains('\0')) {
        *map = std::mem::take(map)
            .into_iter()
            .map(|(mut k, v)| {
                clean(&mut k);
                (k, v)
            })
            .collect();
    }
    map.values_mut().for_each(clean_json);
}

/// [`clean`] on the text of a raw entry (its body is bytes and stays exact).
pub(super) fn clean_raw(raw: &mut RawEntry) {
    clean(&mut raw.kind);
    clean(&mut raw.request);
    clean_opt(&mut raw.remote_addr);
    for issue in &mut raw.errors {
        clean(&mut issue.line);
        clean(&mut issue.reason);
    }
}

/// [`clean`] on every text of a batch.
pub(super) fn clean_batch(batch: &mut Batch) {
    clean_raw(&mut batch.raw);
    for p in &mut batch.punches {
        clean(&mut p.pin.0);
        clean(&mut p.time_zone);
        clean_opt(&mut p.work_code);
        p.extra.iter_mut().for_each(clean);
    }
    for u in &mut batch.users {
        clean(&mut u.pin.0);
        for s in [
            &mut u.name,
            &mut u.password,
            &mut u.card,
            &mut u.group,
            &mut u.time_zones,
        ] {
            clean(s);
        }
        clean_map(&mut u.fields);
    }
    for t in &mut batch.templates {
        clean(&mut t.pin.0);
        clean(&mut t.kind);
        clean(&mut t.template);
        clean_opt(&mut t.major_ver);
        clean_opt(&mut t.minor_ver);
    }
    for p in &mut batch.photos {
        clean(&mut p.kind);
        clean(&mut p.file_name);
        clean_opt(&mut p.pin);
    }
    for o in &mut batch.oplog {
        clean(&mut o.operator);
        o.objects.iter_mut().for_each(clean);
    }
    for r in &mut batch.records {
        clean(&mut r.tag);
        for (k, v) in &mut r.fields {
            clean(k);
            clean(v);
        }
    }
    if let Some((_, table, value)) = &mut batch.stamp {
        clean(table);
        clean(value);
    }
    if let Some((_, info)) = &mut batch.device_info {
        clean_map(info);
    }
}

/// [`clean`] on a command result's message and fields.
pub(super) fn clean_completion(c: &mut CommandCompletion) {
    clean(&mut c.message);
    if let Some(result) = &mut c.result {
        clean_json(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_in_text_and_json_keys_and_values() {
        let mut s = String::from("10\u{0}02");
        clean(&mut s);
        assert_eq!(s, "10\u{FFFD}02");
        let mut v = serde_json::json!({"a\u{0}": ["x\u{0}", 1, {"b": "\u{0}"}]});
        clean_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a\u{FFFD}": ["x\u{FFFD}", 1, {"b": "\u{FFFD}"}]})
        );
        let mut clean_already = String::from("1001");
        let before = clean_already.as_ptr();
        clean(&mut clean_already);
        assert_eq!(clean_already.as_ptr(), before, "no new allocation");
    }
}
