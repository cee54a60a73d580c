//! Where a key is written in the config file, so that a problem can name its line and its key.
//!
//! Plain text search over the file as written: a byte offset from the TOML parser becomes a line
//! and a dotted key, and a dotted key becomes the line it is on. This module decides nothing about
//! what a value means; the sections' `validate` functions do that.

use std::path::Path;

use crate::problem::Problem;

/// A TOML syntax or type error, at its line and, where it can be told, its key.
pub(super) fn toml_problem(path: &Path, text: &str, e: &toml::de::Error) -> Problem {
    let mut p = Problem::new(path, e.message().trim().to_string());
    if let Some(span) = e.span() {
        p = p.at_line(line_at(text, span.start));
        if let Some(key) = key_at(text, span.start) {
            p = p.at_key(&key);
        }
    }
    p
}

fn line_at(text: &str, byte: usize) -> u64 {
    text[..byte.min(text.len())].matches('\n').count() as u64 + 1
}

/// The dotted key (with its section) whose line holds `byte`, for messages about a value.
fn key_at(text: &str, byte: usize) -> Option<String> {
    let line_no = line_at(text, byte) as usize;
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = table_header(t) {
            section = name.to_string();
        }
        if i + 1 == line_no {
            let key = t.split('=').next()?.trim();
            if key.is_empty() || t.starts_with('[') {
                return (!section.is_empty()).then_some(section);
            }
            return Some(if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}

/// The table a trimmed line opens (`[transport.smtp]`, `[ sender ]`), when it is a table header;
/// a comment may follow it (`[transport.smtp] # the relay`).
fn table_header(t: &str) -> Option<&str> {
    if !t.starts_with('[') {
        return None;
    }
    let header = if t.ends_with(']') {
        t
    } else {
        t.split_once('#')
            .map(|(header, _)| header.trim_end())
            .filter(|header| header.ends_with(']'))?
    };
    Some(header.trim_matches(|c| c == '[' || c == ']').trim())
}

/// A key as the config file writes it (`transport.smtp.host`): serde's path without the steps
/// that are not keys (an optional section is a `?` there).
pub(super) fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    let (parent, step) = match path {
        Path::Root => return String::new(),
        Path::Seq { parent, index } => (parent, index.to_string()),
        Path::Map { parent, key } => (parent, key.clone()),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => return dotted(parent),
    };
    match dotted(parent) {
        above if above.is_empty() => step,
        above => format!("{above}.{step}"),
    }
}

/// The line on which a dotted key (`sender.from`) is written, when it can be found.
pub(super) fn line_of_key(text: &str, dotted: &str) -> Option<u64> {
    let mut current = String::new();
    let mut section_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = table_header(t) {
            current = name.to_string();
            if current == dotted {
                section_line = Some(i as u64 + 1);
            }
            continue;
        }
        if let Some((written, _)) = t.split_once('=') {
            if written_key(&current, written) == dotted {
                return Some(i as u64 + 1);
            }
        }
    }
    section_line
}

/// The whole dotted key an assignment in table `table` sets: `smtp.host` in `[transport]` is
/// `transport.smtp.host`, and `"host"` is `host`.
fn written_key(table: &str, written: &str) -> String {
    let parts: Vec<&str> = written
        .split('.')
        .map(|part| part.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect();
    let key = parts.join(".");
    if table.is_empty() {
        key
    } else {
        format!("{table}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{parse_str, MINIMAL};

    #[test]
    fn every_unknown_key_is_named_with_its_line() {
        let text =
            format!("{MINIMAL}\n[sender2]\nx = 1\n").replace("sags_nr", "sagsnr = \"1\"\nsags_nr");
        let problems = parse_str(&text).unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|s| s.contains("key `stamps.sagsnr`") && s.contains("line 11")),
            "{shown:?}"
        );
        assert!(
            shown.iter().any(|s| s.contains("key `sender2`")),
            "{shown:?}"
        );
    }

    #[test]
    fn an_unknown_key_written_dotted_or_quoted_is_named_with_its_line() {
        let line = MINIMAL.lines().count() + 2;
        for written in ["smtp.hots = 1", "smtp . \"hots\" = 1"] {
            let text = format!("{MINIMAL}[transport]\n{written}\n");
            let shown: Vec<String> = parse_str(&text)
                .unwrap_err()
                .iter()
                .map(|p| p.to_string())
                .collect();
            assert!(
                shown.iter().any(|s| s.contains("key `transport.smtp.hots`")
                    && s.contains(&format!("line {line},"))),
                "{written}: {shown:?}"
            );
        }
    }

    #[test]
    fn a_comment_after_a_section_header_keeps_its_keys_in_that_section() {
        let text = format!(
            "{MINIMAL}[transport.smtp] # the relay\nhost = \"mail.uim.dk\"\nport = \"587\"\n"
        );
        let shown: Vec<String> = parse_str(&text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        let line = MINIMAL.lines().count() + 3;
        assert_eq!(
            shown,
            [format!("camp/config.toml, line {line}, key `transport.smtp.port`: invalid type: string \"587\", expected u16")]
        );
        let text =
            format!("{MINIMAL}[transport.smtp] # the relay\nhost = \"mail.uim.dk\"\nhots = 1\n");
        let shown: Vec<String> = parse_str(&text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            shown,
            [format!("camp/config.toml, line {line}, key `transport.smtp.hots`: unknown key; check its spelling and section")]
        );
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let text = MINIMAL.replace("sags_nr = \"2020-1\"", "sags_nr = 2020");
        let problems = parse_str(&text).unwrap_err();
        assert_eq!(problems.len(), 1);
        let shown = problems[0].to_string();
        assert!(shown.contains("stamps.sags_nr"), "{shown}");
        assert!(shown.contains("line 11"), "{shown}");
    }
}
