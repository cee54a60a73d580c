//! The recipients file: decoding (UTF-8, BOM, Windows-1252), CSV parsing and row checks.
//!
//! Reads what Danish spreadsheets export: comma or semicolon, CRLF, quoted fields, a byte-order
//! mark, UTF-8 or Windows-1252. Every value stays a string, so leading zeros survive. Every problem
//! names the file, the line and the column. A workbook (`workbook`) gives the same header and rows,
//! so the checks and the rest of the campaign do not care which it was. This module never renders,
//! sends or writes anything.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::campaign::workbook::{self, Sheet, SheetRow};
use crate::config::{Encoding, RecipientsSource};
use crate::digest::Repeats;
use crate::problem::Problem;
use crate::sanitize::printable;

/// The recipients file, opened: its encoding, separator and header. Rows of a CSV file are read
/// by streaming the file again (`rows`), so a campaign of any size is never held in memory at
/// once; a workbook's sheet is read once and kept.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// The file as the user knows it, for messages.
    pub file: PathBuf,
    path: PathBuf,
    pub headers: Vec<String>,
    /// How the file was read (its encoding, or the kind of workbook and the sheet), for the user.
    pub encoding: String,
    source: Source,
}

/// Where the rows come from.
#[derive(Debug, Clone)]
enum Source {
    Csv { decoding: Decoding, delimiter: u8 },
    Workbook(Arc<Sheet>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoding {
    Utf8,
    Utf8Bom,
    Windows1252,
}

impl Table {
    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// Reads the rows from the start, one at a time. A row whose field count does not match the
    /// header, or that cannot be read, comes as a problem; blank lines are skipped.
    pub(crate) fn rows(&self) -> io::Result<impl Iterator<Item = Result<Row, Problem>> + '_> {
        let (decoding, delimiter) = match &self.source {
            Source::Workbook(sheet) => return Ok(Rows::Workbook(sheet.rows.iter())),
            Source::Csv {
                decoding,
                delimiter,
            } => (*decoding, *delimiter),
        };
        let file = File::open(&self.path)?;
        let lines = Rc::new(RefCell::new(Lines::default()));
        let mut text = Text::new(file, decoding);
        text.lines = Some(Rc::clone(&lines));
        let row_start = Rc::clone(&text.row_start);
        let mut reader = csv_reader(delimiter, text);
        let mut records = csv::StringRecord::new();
        let _ = reader.read_record(&mut records); // the header, read by `load`
        Ok(Rows::Csv(Box::new(RowIter {
            table: self,
            delimiter,
            reader,
            record: csv::StringRecord::new(),
            lines,
            row_start,
        })))
    }

    /// About how many rows there are, for a progress bar only: a CSV file's line breaks (CRLF,
    /// LF or CR) less the header's, so a value over several lines or a blank line makes it a
    /// little high. Reads a CSV file through once more, without parsing it.
    pub(crate) fn rows_expected(&self) -> io::Result<usize> {
        if let Source::Workbook(sheet) = &self.source {
            return Ok(sheet.rows.len());
        }
        let mut file = File::open(&self.path)?;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut lf, mut cr, mut last) = (0usize, 0usize, b'\n');
        loop {
            let n = file.read(&mut buf)?;
            let Some(&end) = buf[..n].last() else { break };
            lf += buf[..n].iter().filter(|&&b| b == b'\n').count();
            cr += buf[..n].iter().filter(|&&b| b == b'\r').count();
            last = end;
        }
        // The last row need not end in a line break.
        let breaks = lf.max(cr) + usize::from(last != b'\n' && last != b'\r');
        Ok(breaks.saturating_sub(1))
    }

    /// Pins a problem to a row (`Row::line`) and perhaps a column, the way the file names
    /// places: line and column in a CSV file, sheet and cell in a workbook.
    pub(crate) fn at(&self, problem: Problem, line: u64, column: Option<usize>) -> Problem {
        match &self.source {
            Source::Csv { .. } => {
                let problem = problem.at_line(line);
                match column {
                    Some(c) => problem.in_column(&self.headers[c]),
                    None => problem,
                }
            }
            Source::Workbook(sheet) => {
                problem.in_sheet(&sheet.name, line, column.map(|c| sheet.cell(c, line)))
            }
        }
    }

    /// A problem with the header (a missing column, say), pinned to the header's line or row.
    pub(crate) fn at_header(&self, problem: Problem) -> Problem {
        match &self.source {
            Source::Csv { .. } => problem.at_line(1),
            Source::Workbook(sheet) => problem.in_sheet(&sheet.name, sheet.header_row, None),
        }
    }

    /// How a message names a row: "line 14" in a CSV file, "row 14" in a workbook.
    pub(crate) fn row_name(&self, line: u64) -> String {
        format!("{} {line}", self.row_word(false))
    }

    /// "line" or "lines" in a CSV file, "row" or "rows" in a workbook.
    pub(crate) fn row_word(&self, plural: bool) -> &'static str {
        match (&self.source, plural) {
            (Source::Csv { .. }, false) => "line",
            (Source::Csv { .. }, true) => "lines",
            (Source::Workbook(_), false) => "row",
            (Source::Workbook(_), true) => "rows",
        }
    }
}

/// The rows of a CSV file or of a workbook's sheet, one kind of iterator for both.
enum Rows<'a> {
    Csv(Box<RowIter<'a>>),
    Workbook(std::slice::Iter<'a, Result<SheetRow, Problem>>),
}

impl Iterator for Rows<'_> {
    type Item = Result<Row, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Rows::Csv(rows) => rows.next(),
            Rows::Workbook(rows) => rows.next().cloned().map(|row| {
                row.map(|r| Row {
                    line: r.row,
                    fields: r.fields,
                })
            }),
        }
    }
}

struct RowIter<'a> {
    table: &'a Table,
    delimiter: u8,
    reader: csv::Reader<Text<File>>,
    record: csv::StringRecord,
    lines: Rc<RefCell<Lines>>,
    row_start: Rc<std::cell::Cell<u64>>,
}

/// Where the line breaks are, for true line numbers: the csv crate's own count skips blank
/// lines. Holds only the breaks the reader has read ahead, so it stays small.
#[derive(Default)]
struct Lines {
    ahead: VecDeque<u64>,
    passed: u64,
}

impl Lines {
    /// The line of the first record at or after byte `at` (blank lines there are skipped, as the
    /// csv reader skips them).
    fn line_at(&mut self, at: u64) -> u64 {
        while self.ahead.front().is_some_and(|&b| b < at) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        let blank_lines = self
            .ahead
            .iter()
            .zip(at..)
            .take_while(|(&b, expect)| b == *expect)
            .count();
        self.passed + 1 + blank_lines as u64
    }
}

impl Iterator for RowIter<'_> {
    type Item = Result<Row, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.reader.position().byte();
            self.row_start.set(start);
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {
                    let at = self.record.position().map(|p| p.byte()).unwrap_or(0);
                    let line = self.lines.borrow_mut().line_at(at);
                    if self.record.as_slice().len() as u64 > MAX_ROW_BYTES {
                        return Some(Err(self.too_long(line)));
                    }
                    if self.record.iter().all(|f| f.trim().is_empty()) {
                        continue; // a blank line, as spreadsheets leave at the end
                    }
                    let width = self.table.headers.len();
                    if self.record.len() != width {
                        return Some(Err(Problem::new(
                            &self.table.file,
                            format!(
                                "this row has {} fields but the header has {width} columns; check for a missing or extra {}",
                                self.record.len(),
                                match self.delimiter {
                                    b';' => "semicolon",
                                    b'\t' => "tab",
                                    _ => "comma",
                                }
                            ),
                        )
                        .at_line(line)));
                    }
                    return Some(Ok(Row {
                        line,
                        fields: self.record.iter().map(|f| f.trim().to_string()).collect(),
                    }));
                }
                Err(e) if is_row_too_long(&e) => {
                    let line = self.lines.borrow_mut().line_at(start);
                    return Some(Err(self.too_long(line)));
                }
                Err(e) => {
                    let line = match e.position() {
                        Some(p) => self.lines.borrow_mut().line_at(p.byte()),
                        None => 0,
                    };
                    let problem =
                        Problem::new(&self.table.file, format!("cannot read this row: {e}"))
                            .at_line(line);
                    // A broken quote can swallow the rest of the file: stop at the first such error.
                    if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                        self.reader =
                            csv_reader(self.delimiter, Text::new(empty_file(), Decoding::Utf8));
                    }
                    return Some(Err(problem));
                }
            }
        }
    }
}

impl RowIter<'_> {
    /// The problem for a row over `MAX_ROW_BYTES`; reading stops there, as nothing after it can
    /// be trusted to start a row.
    fn too_long(&mut self, line: u64) -> Problem {
        self.reader = csv_reader(self.delimiter, Text::new(empty_file(), Decoding::Utf8));
        Problem::new(
            &self.table.file,
            format!("cannot read this row: {RowTooLong}"),
        )
        .at_line(line)
    }
}

fn is_row_too_long(e: &csv::Error) -> bool {
    match e.kind() {
        csv::ErrorKind::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<RowTooLong>()),
        _ => false,
    }
}

fn empty_file() -> File {
    // /dev/null is always there on the systems rundbrev runs on; an empty reader ends the rows.
    File::open("/dev/null").expect("/dev/null")
}

fn csv_reader<R: Read>(delimiter: u8, text: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(text)
}

/// The file's bytes as UTF-8 with `\n` line ends: a byte-order mark is dropped, Windows-1252 is
/// decoded, and CRLF becomes LF (so that line numbers come out right).
struct Text<R> {
    inner: BufReader<R>,
    decoding: Decoding,
    started: bool,
    out: Vec<u8>,
    at: usize,
    /// A '\r' held back because the chunk ended right after it.
    pending_cr: bool,
    /// Bytes handed out before `out`.
    emitted: u64,
    lines: Option<Rc<RefCell<Lines>>>,
    /// Where the row being read starts (set by the row reader): reading goes at most
    /// `MAX_ROW_BYTES` (plus the csv reader's buffer) past it.
    row_start: Rc<std::cell::Cell<u64>>,
}

/// The error `Text` gives when one row goes on for more than `MAX_ROW_BYTES`.
#[derive(Debug)]
struct RowTooLong;

impl std::fmt::Display for RowTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the row is longer than {} MiB; no recipient needs that much (is a quote left open, or a huge value pasted in?)",
            MAX_ROW_BYTES / (1024 * 1024)
        )
    }
}

impl std::error::Error for RowTooLong {}

/// The csv reader's read-ahead, which `Text` may be ahead of the row being parsed.
const CSV_BUFFER: usize = 64 * 1024;

impl<R: Read> Text<R> {
    fn new(inner: R, decoding: Decoding) -> Text<R> {
        Text {
            inner: BufReader::with_capacity(64 * 1024, inner),
            decoding,
            started: false,
            out: Vec::with_capacity(64 * 1024),
            at: 0,
            pending_cr: false,
            emitted: 0,
            lines: None,
            row_start: Rc::default(),
        }
    }

    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 32 * 1024];
        let n = self.inner.read(&mut chunk)?;
        self.emitted += self.out.len() as u64;
        self.out.clear();
        self.at = 0;
        let mut bytes = &chunk[..n];
        if !self.started {
            self.started = true;
            if self.decoding == Decoding::Utf8Bom {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
        }
        if n == 0 {
            if self.pending_cr {
                self.pending_cr = false;
                self.out.push(b'\n');
                self.note_lines();
                return Ok(true);
            }
            return Ok(false);
        }
        let decoded;
        let bytes: &[u8] = if self.decoding == Decoding::Windows1252 {
            decoded = windows_1252(bytes);
            decoded.as_bytes()
        } else {
            bytes
        };
        if self.pending_cr && bytes.first() != Some(&b'\n') {
            self.out.push(b'\n');
        }
        self.pending_cr = false;
        // CRLF becomes LF, and so does a lone CR (old Mac line ends, Excel's "CSV (Macintosh)").
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\r' {
                match bytes.get(i + 1) {
                    Some(b'\n') => continue,
                    Some(_) => self.out.push(b'\n'),
                    None => self.pending_cr = true,
                }
            } else {
                self.out.push(b);
            }
        }
        self.note_lines();
        Ok(true)
    }

    /// Tells the line tracker where the line breaks in `out` are.
    fn note_lines(&self) {
        if let Some(lines) = &self.lines {
            let mut lines = lines.borrow_mut();
            let base = self.emitted;
            lines.ahead.extend(
                self.out
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(i, _)| base + i as u64),
            );
        }
    }
}

impl<R: Read> Read for Text<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let handed_out = self.emitted + self.at as u64;
        if handed_out > self.row_start.get() + MAX_ROW_BYTES + CSV_BUFFER as u64 {
            return Err(io::Error::other(RowTooLong));
        }
        while self.at >= self.out.len() {
            if !self.fill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Opens the recipients file: finds its encoding (reading it through once, without keeping it),
/// its separator and its header; or, for a workbook, reads its sheet.
pub(crate) fn load(source: &RecipientsSource, shown_as: &Path) -> Result<Table, Vec<Problem>> {
    let cannot = |e: io::Error| {
        vec![Problem::new(
            shown_as,
            format!("cannot read the recipients file: {e}"),
        )]
    };
    if workbook::is_workbook(&source.file) {
        let bytes = std::fs::read(&source.file).map_err(cannot)?;
        let sheet = workbook::read(&bytes, &source.file, source.sheet.as_deref(), shown_as)?;
        return Ok(Table {
            file: shown_as.to_path_buf(),
            path: source.file.clone(),
            headers: sheet.headers.clone(),
            encoding: format!("{}, sheet \"{}\"", sheet.kind, sheet.name),
            source: Source::Workbook(Arc::new(sheet)),
        });
    }
    if let Some(sheet) = &source.sheet {
        return Err(vec![Problem::new(
            shown_as,
            format!("recipients.sheet is set to \"{sheet}\", but this is a CSV file, which has no sheets; remove the setting, or point recipients.file at the workbook"),
        )]);
    }
    // One read of the file: the encoding is found and the start kept for the header line.
    let mut file = Prefix::new(File::open(&source.file).map_err(cannot)?);
    let (decoding, encoding) = detect(&mut file, source.encoding, shown_as).map_err(|p| vec![p])?;
    let start = file.start;
    let mut first_line = Vec::new();
    io::BufRead::read_until(
        &mut BufReader::new(Text::new(&start[..], decoding)),
        b'\n',
        &mut first_line,
    )
    .map_err(cannot)?;
    let first_line = String::from_utf8_lossy(&first_line);
    let header_line = first_line.lines().next().unwrap_or("");
    let delimiter = source
        .delimiter
        .unwrap_or_else(|| detect_delimiter(header_line));
    let mut reader = csv_reader(delimiter, Text::new(&start[..], decoding));
    let mut record = csv::StringRecord::new();
    let headers: Vec<String> = match reader.read_record(&mut record) {
        Ok(_) => record.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            return Err(vec![Problem::new(
                shown_as,
                format!("cannot read the header line: {e}"),
            )
            .at_line(1)])
        }
    };
    if headers.iter().all(|h| h.is_empty()) {
        return Err(vec![Problem::new(
            shown_as,
            "the file is empty or has no header line naming the columns",
        )
        .at_line(1)]);
    }
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            problems.push(
                Problem::new(
                    shown_as,
                    format!("column {} has no name in the header line", i + 1),
                )
                .at_line(1),
            );
        } else if let Some(first) = seen.insert(h, i) {
            problems.push(
                Problem::new(
                    shown_as,
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
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Table {
        file: shown_as.to_path_buf(),
        path: source.file.clone(),
        headers,
        encoding: encoding.to_string(),
        source: Source::Csv {
            decoding,
            delimiter,
        },
    })
}

/// The first bytes of a file as they are read, enough for its header line. (A header line longer
/// than this is read no further: its columns are cut, and the checks then say what is missing.)
struct Prefix<R> {
    inner: R,
    start: Vec<u8>,
}

const PREFIX: usize = 256 * 1024;

impl<R: Read> Prefix<R> {
    fn new(inner: R) -> Prefix<R> {
        Prefix {
            inner,
            start: Vec::new(),
        }
    }
}

impl<R: Read> Read for Prefix<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = PREFIX.saturating_sub(self.start.len()).min(n);
        self.start.extend_from_slice(&buf[..room]);
        Ok(n)
    }
}

/// Finds how the file is encoded. Never guesses silently wrong: a file that is not UTF-8 is read
/// as Windows-1252 only when the encoding is `auto` (and the caller shows which was used); with
/// an explicit `utf-8`, bytes that are not UTF-8 are an error naming the line.
fn detect(
    mut file: impl Read,
    encoding: Encoding,
    shown_as: &Path,
) -> Result<(Decoding, &'static str), Problem> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = 0usize; // bytes of an incomplete UTF-8 sequence kept from the last chunk
    let mut line = 1u64;
    let mut offset = 0u64;
    let mut first = true;
    let mut bom = false;
    loop {
        let n = file
            .read(&mut buf[carry..])
            .map_err(|e| Problem::new(shown_as, format!("cannot read the recipients file: {e}")))?;
        let filled = carry + n;
        let mut chunk = &buf[..filled];
        if first {
            first = false;
            if let Some(rest) = chunk.strip_prefix(b"\xEF\xBB\xBF") {
                bom = true;
                chunk = rest;
                offset += 3;
                if encoding == Encoding::Windows1252 {
                    return Err(Problem::new(
                        shown_as,
                        "the file starts with a UTF-8 byte-order mark, but the encoding is set to windows-1252; remove the setting or set it to utf-8",
                    ));
                }
            }
        }
        if encoding == Encoding::Windows1252 {
            return Ok((Decoding::Windows1252, "Windows-1252"));
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => carry = 0,
            Err(e) if e.error_len().is_none() && n > 0 => {
                // The chunk ends inside a character: keep its start for the next read.
                let valid = e.valid_up_to();
                line += chunk[..valid].iter().filter(|&&b| b == b'\n').count() as u64;
                offset += valid as u64;
                let start = filled - (chunk.len() - valid);
                buf.copy_within(start..filled, 0);
                carry = filled - start;
                continue;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                if encoding == Encoding::Utf8 || bom {
                    let at = line + chunk[..valid].iter().filter(|&&b| b == b'\n').count() as u64;
                    return Err(Problem::new(
                        shown_as,
                        format!(
                            "the file is not valid UTF-8 (byte {}); if it was saved by Excel as \"CSV (semikolonsepareret)\", set encoding = \"windows-1252\" or pass --encoding windows-1252",
                            offset + valid as u64
                        ),
                    )
                    .at_line(at));
                }
                return Ok((Decoding::Windows1252, "Windows-1252 (detected)"));
            }
        }
        line += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        offset += chunk.len() as u64;
        if n == 0 {
            return Ok(if bom {
                (Decoding::Utf8Bom, "UTF-8 (with byte-order mark)")
            } else {
                (Decoding::Utf8, "UTF-8")
            });
        }
    }
}

fn windows_1252(bytes: &[u8]) -> String {
    let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
    text.into_owned()
}

/// Picks the separator the header line uses most: `;` (Danish Excel), `,` or a tab.
pub(crate) fn detect_delimiter(header: &str) -> u8 {
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

/// The columns a recipient row must have, and what each letter needs from them.
pub(crate) struct Columns {
    pub key: usize,
    pub email: usize,
    pub name: usize,
    pub akt_id: Option<usize>,
    /// Columns whose values reach an e-mail header (address, name, those used in the subject).
    pub header_bound: Vec<usize>,
}

/// Finds the configured columns; a missing one is a problem naming it and the columns there are.
pub(crate) fn columns(
    table: &Table,
    source: &RecipientsSource,
    akt_id_column: Option<&str>,
    subject_template: &str,
) -> Result<Columns, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut find = |name: &str, role: &str| {
        let found = table.column(name);
        if found.is_none() {
            problems.push(table.at_header(Problem::new(
                &table.file,
                format!(
                    "the required column \"{name}\" ({role}) is missing; the header has: {}",
                    table.headers.join(", ")
                ),
            )));
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
pub(crate) fn mentions(template: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    template.match_indices(word).any(|(i, _)| {
        let before = template[..i].chars().next_back();
        let after = template[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Checks rows one at a time: keys and addresses present, valid and unique; header-bound fields
/// free of line breaks and control characters. For uniqueness it keeps only a fingerprint per key
/// and address (8 bytes each), and `repeats` finds the exact duplicates at the end, so memory
/// stays small for any number of rows.
pub(crate) struct RowChecker<'a> {
    table: &'a Table,
    cols: &'a Columns,
    keys: Repeats,
    addresses: Repeats,
}

impl<'a> RowChecker<'a> {
    pub(crate) fn new(table: &'a Table, cols: &'a Columns) -> RowChecker<'a> {
        RowChecker {
            table,
            cols,
            keys: Repeats::default(),
            addresses: Repeats::default(),
        }
    }

    /// The problems of one row (none when it is fine), except for repeated keys and addresses,
    /// which `repeats` finds when every row has been seen.
    pub(crate) fn check(&mut self, row: &Row) -> Vec<Problem> {
        let (table, cols) = (self.table, self.cols);
        let mut problems = Vec::new();
        let at =
            |col: usize, msg: String| table.at(Problem::new(&table.file, msg), row.line, Some(col));
        let key = row.fields[cols.key].as_str();
        if key.is_empty() {
            problems.push(at(
                cols.key,
                "the key is empty; every recipient needs one".into(),
            ));
        } else {
            self.keys.add(key);
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
        } else {
            self.addresses.add(&email.to_lowercase());
        }
        let mut bound = cols.header_bound.clone();
        if !bound.contains(&cols.key) {
            bound.push(cols.key);
        }
        for col in bound {
            let value = &row.fields[col];
            if let Some((at_char, c, what)) = find_header_hazard(value) {
                let reaches = if col == cols.key {
                    "the Message-ID and the archive's file names"
                } else {
                    "an e-mail header"
                };
                problems.push(at(
                    col,
                    format!(
                        "the value contains {what} (U+{:04X}) at character {at_char}, which would end up in {reaches}; remove it",
                        u32::from(c)
                    ),
                ));
            }
        }
        let too_long = |col: usize, what: &str, max: usize| {
            let n = row.fields[col].chars().count();
            (n > max).then(|| {
                at(
                    col,
                    format!(
                        "the {what} is {n} characters long; at most {max} fit in an e-mail header"
                    ),
                )
            })
        };
        problems.extend(too_long(cols.name, "name", MAX_NAME_CHARS));
        problems.extend(too_long(cols.key, "key", MAX_KEY_CHARS));
        if let Some(col) = cols.akt_id {
            if row.fields[col].is_empty() {
                problems.push(at(col, "the Akt-id is empty".into()));
            }
        }
        problems
    }
}

/// The longest display name a letter's To header takes, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// The longest key, in characters: it goes into the Message-ID and file names.
pub(crate) const MAX_KEY_CHARS: usize = 100;
/// The longest subject, in characters, once merged.
pub(crate) const MAX_SUBJECT_CHARS: usize = 400;
/// The most bytes one row of the recipients file may take (a bigger field is a mistake, and is
/// not read into memory).
pub(crate) const MAX_ROW_BYTES: u64 = 1024 * 1024;

/// Why a character must not reach an e-mail header, or None when it may: line breaks of every
/// kind (CR, LF, NEL, the Unicode line and paragraph separators), bidirectional controls (which
/// make text show in another order than it is) and other control characters.
pub(crate) fn header_hazard(c: char) -> Option<&'static str> {
    match c {
        '\n' | '\r' | '\u{0085}' => Some("a line break"),
        '\u{2028}' => Some("a Unicode line separator"),
        '\u{2029}' => Some("a Unicode paragraph separator"),
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{061C}' => Some("a bidirectional control character"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// The first character of `value` that must not reach a header: its position (1-based, in
/// characters), the character and why.
pub(crate) fn find_header_hazard(value: &str) -> Option<(usize, char, &'static str)> {
    value
        .chars()
        .enumerate()
        .find_map(|(i, c)| header_hazard(c).map(|why| (i + 1, c, why)))
}

impl RowChecker<'_> {
    /// Every key and address that is listed more than once, at each line after the first. Reads
    /// the file a second time only when a fingerprint came up twice.
    pub(crate) fn repeats(self) -> Vec<Problem> {
        let (table, cols) = (self.table, self.cols);
        let (mut keys, mut addresses) = (self.keys.suspects(), self.addresses.suspects());
        if keys.is_none() && addresses.is_none() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let Ok(rows) = table.rows() else {
            return problems;
        };
        for row in rows.flatten() {
            let at = |col: usize, msg: String| {
                table.at(Problem::new(&table.file, msg), row.line, Some(col))
            };
            let key = row.fields[cols.key].as_str();
            if let Some(first) = keys
                .as_mut()
                .filter(|_| !key.is_empty())
                .and_then(|k| k.again(key, row.line))
            {
                problems.push(at(
                    cols.key,
                    format!(
                        "\"{}\" appears twice (also on {}); each recipient must be listed once",
                        printable(key),
                        table.row_name(first)
                    ),
                ));
            }
            let email = row.fields[cols.email].as_str();
            if email.is_empty() || check_address(email).is_err() {
                continue;
            }
            if let Some(first) = addresses
                .as_mut()
                .and_then(|a| a.again(&email.to_lowercase(), row.line))
            {
                problems.push(at(
                    cols.email,
                    format!(
                        "{email} appears twice (also on {}); that recipient would get two letters",
                        table.row_name(first)
                    ),
                ));
            }
        }
        problems
    }
}

/// Checks an address the way the transport will see it.
pub(crate) fn check_address(email: &str) -> Result<(), String> {
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains a space or a control character".into());
    }
    email
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], decoding: Decoding) -> String {
        let mut out = String::new();
        Text::new(bytes, decoding).read_to_string(&mut out).unwrap();
        out
    }

    fn table(text: &str) -> (tempfile::TempDir, Result<Table, Vec<Problem>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, text).unwrap();
        let source = RecipientsSource {
            file: path,
            key: "k".into(),
            email: "e".into(),
            name: "n".into(),
            encoding: Encoding::Auto,
            delimiter: None,
            sheet: None,
        };
        let t = load(&source, Path::new("r.csv"));
        (dir, t)
    }

    fn rows(t: &Table) -> Vec<Result<Row, Problem>> {
        t.rows().unwrap().collect()
    }

    #[test]
    fn semicolons_crlf_and_quotes_are_read_with_true_line_numbers() {
        let (_d, t) = table("kode;navn\r\n0101;\"Kø; benhavn\"\r\n\r\n\"x\r\ny\";2\r\n0147;F\r\n");
        let t = t.unwrap();
        assert!(matches!(
            t.source,
            Source::Csv {
                delimiter: b';',
                ..
            }
        ));
        let rows: Vec<Row> = rows(&t).into_iter().map(Result::unwrap).collect();
        assert_eq!(rows[0].fields, vec!["0101", "Kø; benhavn"]);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].fields, vec!["x\ny", "2"]);
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[2].line, 6);
    }

    #[test]
    fn old_mac_line_ends_are_lines_too() {
        let (_d, t) = table("kode,navn\r101,A\r147,B\r");
        let rows: Vec<Row> = rows(&t.unwrap()).into_iter().map(Result::unwrap).collect();
        assert_eq!((rows[0].line, rows[1].line), (2, 3));
        assert_eq!(read(b"a\r\nb\rc\r", Decoding::Utf8), "a\nb\nc\n");
    }

    #[test]
    fn a_long_file_with_aeoeaa_everywhere_opens() {
        let mut text = String::from("kode,navn\n");
        for i in 0..5000 {
            text.push_str(&format!("{i},Ærø Søby Å\n"));
        }
        let (_d, t) = table(&text);
        assert_eq!(rows(&t.unwrap()).len(), 5000);
    }

    #[test]
    fn windows_1252_is_detected_and_aeoeaa_survive() {
        let (_d, t) = table("navn\nK\u{f8}ge \u{c6}r\u{f8} \u{c5}rhus\n");
        assert_eq!(t.unwrap().encoding, "UTF-8");
        let bytes = b"navn\r\nK\xf8ge \xc6r\xf8 \xc5rhus\r\n";
        let (decoding, name) = detect(&bytes[..], Encoding::Auto, Path::new("r.csv")).unwrap();
        assert!(name.starts_with("Windows-1252"));
        assert_eq!(read(bytes, decoding), "navn\nKøge Ærø Århus\n");
    }

    #[test]
    fn explicit_utf8_refuses_windows_1252_bytes_with_the_line() {
        let p = detect(
            &b"navn\nx\nK\xf8ge\n"[..],
            Encoding::Utf8,
            Path::new("r.csv"),
        )
        .unwrap_err();
        assert_eq!(p.line, Some(3));
    }

    #[test]
    fn a_character_split_between_two_reads_is_still_utf8() {
        let mut text = "a".repeat(64 * 1024 - 1).into_bytes();
        text.extend("ø\n".as_bytes());
        let (decoding, _) = detect(&text[..], Encoding::Auto, Path::new("r.csv")).unwrap();
        assert_eq!(decoding, Decoding::Utf8);
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let bytes = "\u{feff}navn\r\nÆrø\r\n".as_bytes();
        let (decoding, name) = detect(bytes, Encoding::Auto, Path::new("r.csv")).unwrap();
        assert!(name.contains("byte-order mark"));
        assert_eq!(read(bytes, decoding), "navn\nÆrø\n");
    }

    #[test]
    fn the_rows_expected_are_counted_by_line_breaks_of_any_kind() {
        for (text, rows) in [
            ("a,b\n1,2\n3,4\n", 2),
            ("a,b\r\n1,2\r\n3,4", 2),
            ("a,b\r1,2\r3,4\r", 2),
            ("a,b\n", 0),
        ] {
            let (_dir, t) = table(text);
            assert_eq!(t.unwrap().rows_expected().unwrap(), rows, "{text:?}");
        }
    }

    #[test]
    fn a_short_row_is_named_by_line() {
        let (_d, t) = table("a,b\n1,2\n3\n");
        let rows = rows(&t.unwrap());
        assert_eq!(rows[1].as_ref().unwrap_err().line, Some(3));
    }

    #[test]
    fn mentions_matches_whole_names_only() {
        assert!(mentions("Hej {{ navn }}", "navn"));
        assert!(!mentions("Hej {{ navnet }}", "navn"));
    }
}
