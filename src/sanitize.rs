//! The one sanitiser: text that came from outside (the recipients file, a server's reply, a
//! bounce) made safe to show on a terminal or in a one-line report cell.
//!
//! Control and bidi characters are written as `\u{..}` escapes, so they can never move the
//! cursor, hide text or reorder what a clerk reads. This module only transforms strings; it never
//! prints and never decides what is valid input (the checks refuse such characters where they
//! would reach a header).

/// What a caught panic said, in one printable line (its payload is usually a `&str` or a
/// `String`).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    printable(text.lines().next().unwrap_or_default())
}

/// Makes untrusted text safe to print on a terminal: control and bidi characters are escaped.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Makes a text of one or more lines safe for a terminal: line breaks and tabs stay, every other
/// control character and every bidi control is shown escaped (`\u{202e}`).
pub(crate) fn safe(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split('\t')
                .map(|part| printable(part.strip_suffix('\r').unwrap_or(part)))
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_bidi_and_control_characters() {
        assert_eq!(printable("a\u{202E}b\u{7}"), "a\\u{202e}b\\u{7}");
    }
    #[test]
    fn safe_keeps_lines_and_escapes_what_could_fool_the_reader() {
        assert_eq!(
            safe("Ærø\u{202E} Kommune\n\tline\u{1b}[2J"),
            "Ærø\\u{202e} Kommune\n\tline\\u{1b}[2J"
        );
    }

    #[test]
    fn safe_is_idempotent() {
        let once = safe("a\u{7}b\u{2066}");
        assert_eq!(safe(&once), once);
    }
}
