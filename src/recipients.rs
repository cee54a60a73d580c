//! The recipients file: decoding (UTF-8, BOM, Windows-1252), CSV parsing and row checks.
//!
//! Reads what Danish spreadsheets export: comma or semicolon, CRLF, quoted fields, a byte-order
//! mark, UTF-8 or Windows-1252. Every value stays a string, so leading zeros survive. Every problem
//! names the file, the line and the column. This module never renders, sends or writes anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::{Encoding, RecipientsSource};
use crate::problem::Problem;

/// The recipients file, decoded and split into rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub file: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
    /// The encoding the file was read in, for the user to see.
    pub encoding: &'static str,
    pub delimiter: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    pub fields: Vec<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }
}

/// Reads and parses the recipients file. Problems here stop everything; row checks come after.
pub fn load(source: &RecipientsSource, shown_as: &Path) -> Result<Table, Vec<Problem>> {
    let bytes = std::fs::read(&source.file).map_err(|e| {
        vec![Problem::new(
            shown_as,
            format!("cannot read the recipients file: {e}"),
        )]
    })?;
    let (text, encoding) = decode(&bytes, source.encoding, shown_as).map_err(|p| vec![p])?;
    let delimiter = source.delimiter.unwrap_or_else(|| detect_delimiter(&text));
    parse(&text, delimiter, shown_as, encoding)
}

/// Turns the file's bytes into text. Never guesses silently wrong: a file that is not UTF-8 is
/// read as Windows-1252 only when the encoding is `auto` (and the caller shows which was used);
/// with an explicit `utf-8`, bytes that are not UTF-8 are an error naming the line.
pub fn decode(
    bytes: &[u8],
    encoding: Encoding,
    file: &Path,
) -> Result<(String, &'static str), Problem> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        if encoding == Encoding::Windows1252 {
            return Err(Problem::new(
                file,
                "the file starts with a UTF-8 byte-order mark, but the encoding is set to windows-1252; remove the setting or set it to utf-8",
            ));
        }
        return utf8(rest, file).map(|t| (t, "UTF-8 (with byte-order mark)"));
    }
    match encoding {
        Encoding::Utf8 => utf8(bytes, file).map(|t| (t, "UTF-8")),
        Encoding::Windows1252 => Ok((windows_1252(bytes), "Windows-1252")),
        Encoding::Auto => match std::str::from_utf8(bytes) {
            Ok(t) => Ok((t.to_string(), "UTF-8")),
            Err(_) => Ok((windows_1252(bytes), "Windows-1252 (detected)")),
        },
    }
}

fn utf8(bytes: &[u8], file: &Path) -> Result<String, Problem> {
    std::str::from_utf8(bytes).map(str::to_string).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        Problem::new(
            file,
            format!(
                "the file is not valid UTF-8 (byte {at}); if it was saved by Excel as \"CSV (semikolonsepareret)\", set encoding = \"windows-1252\" or pass --encoding windows-1252"
            ),
        )
        .at_line(line)
    })
}

fn windows_1252(bytes: &[u8]) -> String {
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
    text.into_owned()
}

/// Picks the separator the header line uses most: `;` (Danish Excel), `,` or a tab.
pub fn detect_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    let mut in_quotes = false;
    let mut counts = [0usize; 3];
    for c in header.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => counts[0] += 1,
            ';' if !in_quotes => counts[1] += 1,
            '\t' if !in_quotes => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], i == 0)).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

/// Parses CSV text into a table, collecting every structural problem (not only the first).
pub fn parse(
    text: &str,
    delimiter: u8,
    file: &Path,
    encoding: &'static str,
) -> Result<Table, Vec<Problem>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut problems = Vec::new();
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            return Err(vec![Problem::new(
                file,
                format!("cannot read the header line: {e}"),
            )
            .at_line(1)])
        }
    };
    if headers.iter().all(|h| h.is_empty()) {
        return Err(vec![Problem::new(
            file,
            "the file is empty or has no header line naming the columns",
        )
        .at_line(1)]);
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            problems.push(
                Problem::new(
                    file,
                    format!("column {} has no name in the header line", i + 1),
                )
                .at_line(1),
            );
        } else if let Some(first) = seen.insert(h, i) {
            problems.push(
                Problem::new(
                    file,
                    format!(
                        "the header names this column twice (columns {} and {})",
                        first + 1,
                        i + 1
                    ),
                )
                .at_line(1)
                .in_column(h),
            );
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) => {
                let line = record
                    .position()
                    .map(|p| line_of(text, p.byte()))
                    .unwrap_or(0);
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue; // blank line, as spreadsheets leave at the end
                }
                if record.len() != headers.len() {
                    problems.push(
                        Problem::new(
                            file,
                            format!(
                                "this row has {} fields but the header has {} columns; check for a missing or extra {}",
                                record.len(),
                                headers.len(),
                                if delimiter == b';' { "semicolon" } else { "comma" }
                            ),
                        )
                        .at_line(line),
                    );
                    continue;
                }
                rows.push(Row {
                    line,
                    fields: record.iter().map(|f| f.trim().to_string()).collect(),
                });
            }
            Err(e) => {
                let line = e.position().map(|p| line_of(text, p.byte())).unwrap_or(0);
                problems
                    .push(Problem::new(file, format!("cannot read this row: {e}")).at_line(line));
            }
        }
    }
    if problems.is_empty() {
        Ok(Table {
            file: file.to_path_buf(),
            headers,
            rows,
            encoding,
            delimiter,
        })
    } else {
        Err(problems)
    }
}

/// The 1-based line of a byte offset. (csv's own line count is off for CRLF files.)
fn line_of(text: &str, byte: u64) -> u64 {
    // For CRLF files csv puts a record's start on the "\n" that ends the line before.
    let bytes = text.as_bytes();
    let mut end = (byte as usize).min(bytes.len());
    while end < bytes.len() && (bytes[end] == b'\n' || bytes[end] == b'\r') {
        end += 1;
    }
    bytes[..end].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// The columns a recipient row must have, and what each letter needs from them.
pub struct Columns {
    pub key: usize,
    pub email: usize,
    pub name: usize,
    pub akt_id: Option<usize>,
    /// Columns whose values reach an e-mail header (address, name, those used in the subject).
    pub header_bound: Vec<usize>,
}

/// Finds the configured columns; a missing one is a problem naming it and the columns there are.
pub fn columns(
    table: &Table,
    source: &RecipientsSource,
    akt_id_column: Option<&str>,
    subject_template: &str,
) -> Result<Columns, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut find = |name: &str, role: &str| {
        let found = table.column(name);
        if found.is_none() {
            problems.push(
                Problem::new(
                    &table.file,
                    format!(
                        "the required column \"{name}\" ({role}) is missing; the header has: {}",
                        table.headers.join(", ")
                    ),
                )
                .at_line(1),
            );
        }
        found
    };
    let key = find(&source.key, "the recipient's key, set by recipients.key");
    let email = find(&source.email, "the e-mail address, set by recipients.email");
    let name = find(&source.name, "the recipient's name, set by recipients.name");
    let akt_id =
        akt_id_column.map(|c| find(c, "the Akt-id of each letter, set by stamps.akt_id_column"));
    if !problems.is_empty() {
        return Err(problems);
    }
    let (key, email, name) = (key.unwrap_or(0), email.unwrap_or(0), name.unwrap_or(0));
    let mut header_bound = vec![email, name];
    for (i, h) in table.headers.iter().enumerate() {
        if !header_bound.contains(&i) && mentions(subject_template, h) {
            header_bound.push(i);
        }
    }
    Ok(Columns {
        key,
        email,
        name,
        akt_id: akt_id.flatten(),
        header_bound,
    })
}

/// Whether a template text names `word` as an identifier (not as part of a longer name).
pub fn mentions(template: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    template.match_indices(word).any(|(i, _)| {
        let before = template[..i].chars().next_back();
        let after = template[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Checks every row: keys and addresses present, valid and unique; header-bound fields free of
/// line breaks and control characters. Returns every problem found.
pub fn check_rows(table: &Table, cols: &Columns) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut keys: HashMap<&str, u64> = HashMap::new();
    let mut addresses: HashMap<String, u64> = HashMap::new();
    let header = |i: usize| table.headers[i].as_str();
    for row in &table.rows {
        let at = |col: usize, msg: String| {
            Problem::new(&table.file, msg)
                .at_line(row.line)
                .in_column(header(col))
        };
        let key = row.fields[cols.key].as_str();
        if key.is_empty() {
            problems.push(at(
                cols.key,
                "the key is empty; every recipient needs one".into(),
            ));
        } else if let Some(first) = keys.insert(key, row.line) {
            problems.push(at(
                cols.key,
                format!("\"{key}\" appears twice (also on line {first}); each recipient must be listed once"),
            ));
        }
        let email = row.fields[cols.email].as_str();
        if email.is_empty() {
            problems.push(at(cols.email, "the e-mail address is empty".into()));
        } else if let Err(why) = check_address(email) {
            problems.push(at(
                cols.email,
                format!(
                    "\"{}\" is not a valid e-mail address: {why}",
                    printable(email)
                ),
            ));
        } else if let Some(first) = addresses.insert(email.to_lowercase(), row.line) {
            problems.push(at(
                cols.email,
                format!("{email} appears twice (also on line {first}); that recipient would get two letters"),
            ));
        }
        for &col in &cols.header_bound {
            let value = &row.fields[col];
            if let Some(c) = value.chars().find(|c| c.is_control()) {
                let what = if c == '\n' || c == '\r' {
                    "a line break"
                } else {
                    "a control character"
                };
                problems.push(at(
                    col,
                    format!(
                        "the value contains {what} ({:?}), which would end up in an e-mail header",
                        c
                    ),
                ));
            }
        }
        if let Some(col) = cols.akt_id {
            if row.fields[col].is_empty() {
                problems.push(at(col, "the Akt-id is empty".into()));
            }
        }
    }
    problems
}

/// Checks an address the way the transport will see it.
pub fn check_address(email: &str) -> Result<(), String> {
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains a space or a control character".into());
    }
    email
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Makes untrusted text safe to print on a terminal: control and bidi characters are escaped.
pub fn printable(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Table, Vec<Problem>> {
        let delimiter = detect_delimiter(text);
        parse(text, delimiter, Path::new("r.csv"), "UTF-8")
    }

    #[test]
    fn semicolons_are_detected_and_quotes_handled() {
        let t = table("kode;navn\r\n0101;\"Kø; benhavn\"\r\n").unwrap();
        assert_eq!(t.delimiter, b';');
        assert_eq!(t.rows[0].fields, vec!["0101", "Kø; benhavn"]);
        assert_eq!(t.rows[0].line, 2);
    }

    #[test]
    fn windows_1252_is_detected_and_aeoeaa_survive() {
        let bytes = b"navn\nK\xf8ge \xc6r\xf8 \xc5rhus\n";
        let (text, enc) = decode(bytes, Encoding::Auto, Path::new("r.csv")).unwrap();
        assert_eq!(text, "navn\nKøge Ærø Århus\n");
        assert!(enc.starts_with("Windows-1252"));
    }

    #[test]
    fn explicit_utf8_refuses_windows_1252_bytes_with_the_line() {
        let p = decode(b"navn\nx\nK\xf8ge\n", Encoding::Utf8, Path::new("r.csv")).unwrap_err();
        assert_eq!(p.line, Some(3));
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let (text, enc) = decode(
            "\u{feff}navn\nÆrø\n".as_bytes(),
            Encoding::Auto,
            Path::new("r.csv"),
        )
        .unwrap();
        assert_eq!(text, "navn\nÆrø\n");
        assert!(enc.contains("byte-order mark"));
    }

    #[test]
    fn a_short_row_is_named_by_line() {
        let problems = table("a,b\n1,2\n3\n").unwrap_err();
        assert_eq!(problems[0].line, Some(3));
    }

    #[test]
    fn mentions_matches_whole_names_only() {
        assert!(mentions("Hej {{ navn }}", "navn"));
        assert!(!mentions("Hej {{ navnet }}", "navn"));
    }

    #[test]
    fn printable_escapes_bidi_and_control_characters() {
        assert_eq!(printable("a\u{202E}b\u{7}"), "a\\u{202e}b\\u{7}");
    }
}
