//! How log fields are written: every field (and the message) with its control characters escaped and clipped
//! to [`MAX_FIELD_CHARS`], so nothing a client sends can forge a log line, move the cursor or fill the log
//! (issue 6: `table=X%0A2026-11-30T06:00:00Z%20ERROR%20fake` printed a second, forged line; a 16 MiB bad line
//! printed an 84 MB log line). Colours only when standard error is a terminal and `NO_COLOR` is not set.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;

/// The longest a logged field is, in characters; a longer one ends with `…(N bytes)`.
pub const MAX_FIELD_CHARS: usize = 2048;

/// `text` with control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`…) and at most `max` characters kept.
pub fn escape_field(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 16));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            let _ = write!(out, "…({} bytes)", text.len());
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether log output gets ANSI colours: only on a terminal, and not when `NO_COLOR` is set.
pub fn use_colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The field formatter for the `fmt` subscriber: `name=value` separated by spaces, the message bare, each
/// escaped and clipped with [`escape_field`].
pub fn fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = escape_field(&format!("{value:?}"), MAX_FIELD_CHARS);
        if field.name() == "message" {
            writer.write_str(&text)
        } else {
            write!(writer, "{}={}", field.name(), text)
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_fields_clipped() {
        assert_eq!(
            escape_field("X\n2026-11-30T06:00:00Z ERROR fake\r\u{1b}[31m", 100),
            "X\\n2026-11-30T06:00:00Z ERROR fake\\r\\u{1b}[31m"
        );
        assert_eq!(escape_field("abcdef", 3), "abc…(6 bytes)");
        assert_eq!(escape_field("Zoë 张三", 100), "Zoë 张三");
    }
}
