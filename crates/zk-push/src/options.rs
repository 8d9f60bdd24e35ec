//! The device's options push, `table=options` (push.md §7.5). Depends only on [`crate::text`].

/// Parse a comma-separated (or newline-separated) `Key=Value` list; split only on a comma followed by
/// `[~]Name=`, so values containing commas survive.
pub fn parse_options(body: &[u8]) -> Vec<(String, String)> {
    let _ = body;
    todo!()
}
