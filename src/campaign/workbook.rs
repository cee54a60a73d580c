//! Recipients from a spreadsheet workbook (.xlsx, .xlsm, .xlsb, .xls, .ods), read with calamine.
//!
//! One sheet (the first, or the one `recipients.sheet` names) becomes a header and rows of text,
//! which `recipients` hands on exactly as it hands on the rows of a CSV file, each cell as the clerk sees it: text as typed (`0101` keeps its
//! zero), whole numbers without a decimal part (`101`, not `101.0`), other numbers with a decimal
//! comma, dates as ISO dates (`2020-08-31`). Empty rows are skipped, as blank CSV lines are, and
//! empty trailing rows and columns are ignored. Row numbers are the sheet's own, so every problem
//! names the sheet and the cell. The sheet is held in memory, as calamine reads it whole. This
//! module never renders, sends or writes anything.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use calamine::{Data, Reader};

use crate::problem::Problem;

/// The file name endings read as workbooks.
const ENDINGS: [&str; 5] = ["xlsx", "xlsm", "xlsb", "xls", "ods"];

/// Whether the file is a workbook (by its name), rather than a CSV file.
pub(crate) fn is_workbook(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ENDINGS.contains(&e.to_ascii_lowercase().as_str()))
}

/// One sheet, read: its header and its rows, with where they are in the sheet.
#[derive(Debug)]
pub(crate) struct Sheet {
    pub name: String,
    /// What kind of workbook it is, for the user to see ("an Excel workbook").
    pub kind: &'static str,
    pub headers: Vec<String>,
    /// The sheet row of the header (1-based, as the spreadsheet shows it).
    pub header_row: u64,
    /// The sheet column of the first header cell (0 is column A).
    first_column: u32,
    /// The data rows in sheet order. A row that cannot be used (a formula error, a value outside
    /// the named columns) is a problem naming its cell.
    pub rows: Vec<Result<SheetRow, Problem>>,
}

/// One row of the sheet: its number as the spreadsheet shows it, and its values, one per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SheetRow {
    pub row: u64,
    pub fields: Vec<String>,
}

impl Sheet {
    /// The cell reference (e.g. `C14`) of a header column in a sheet row.
    pub(crate) fn cell(&self, column: usize, row: u64) -> String {
        format!("{}{row}", column_letters(self.first_column + column as u32))
    }
}

/// Reads the sheet `wanted` (or the first) of the workbook `bytes`, named `path`.
pub(crate) fn read(
    bytes: &[u8],
    path: &Path,
    wanted: Option<&str>,
    shown_as: &Path,
) -> Result<Sheet, Vec<Problem>> {
    let whole = |msg: String| vec![Problem::new(shown_as, msg)];
    let ending = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (mut book, kind) = open(bytes, &ending).map_err(|e| {
        whole(format!(
            "cannot read the workbook: {e}; save it again from the spreadsheet program, or export the sheet as CSV"
        ))
    })?;
    let names = book.sheet_names();
    let name = match wanted {
        Some(w) => names.iter().find(|n| *n == w).cloned().ok_or_else(|| {
            whole(format!(
                "the workbook has no sheet \"{w}\" (set by recipients.sheet); its sheets are: {}",
                quoted(&names)
            ))
        })?,
        None => names
            .first()
            .cloned()
            .ok_or_else(|| whole("the workbook has no sheets".into()))?,
    };
    let range = book
        .worksheet_range(&name)
        .map_err(|e| whole(format!("cannot read the sheet \"{name}\": {e}")))?;
    let start = range.start().unwrap_or((0, 0));
    let cells: Vec<&[Data]> = range.rows().collect();
    sheet(name, kind, start, &cells, shown_as)
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

type Book = calamine::Sheets<Cursor<Vec<u8>>>;

fn open(bytes: &[u8], ending: &str) -> Result<(Book, &'static str), String> {
    let data = Cursor::new(bytes.to_vec());
    let err = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match ending {
        "xls" => (
            calamine::Sheets::Xls(calamine::Xls::new(data).map_err(|e| err(&e))?),
            "an Excel 97-2003 workbook",
        ),
        "xlsb" => (
            calamine::Sheets::Xlsb(calamine::Xlsb::new(data).map_err(|e| err(&e))?),
            "an Excel binary workbook",
        ),
        "ods" => (
            calamine::Sheets::Ods(calamine::Ods::new(data).map_err(|e| err(&e))?),
            "an OpenDocument spreadsheet",
        ),
        _ => (
            calamine::Sheets::Xlsx(calamine::Xlsx::new(data).map_err(|e| err(&e))?),
            "an Excel workbook",
        ),
    })
}

/// Turns the used area of a sheet, whose top left cell is at `start` (0-based row and column),
/// into a header and rows. Pure, so that tests can feed it cells.
fn sheet(
    name: String,
    kind: &'static str,
    start: (u32, u32),
    cells: &[&[Data]],
    shown_as: &Path,
) -> Result<Sheet, Vec<Problem>> {
    let sheet_row = |i: usize| u64::from(start.0) + i as u64 + 1;
    let cell_ref =
        |col: usize, i: usize| format!("{}{}", column_letters(start.1 + col as u32), sheet_row(i));
    let at = |col: usize, i: usize, msg: String| {
        Problem::new(shown_as, msg).in_sheet(&name, sheet_row(i), Some(cell_ref(col, i)))
    };
    let Some(header_at) = cells.iter().position(|r| r.iter().any(has_value)) else {
        return Err(vec![Problem::new(
            shown_as,
            format!("the sheet \"{name}\" is empty; its first row must name the columns"),
        )
        .in_sheet(&name, 1, None)]);
    };
    let header_cells = cells[header_at];
    let width = header_cells
        .iter()
        .rposition(has_value)
        .map_or(0, |last| last + 1);
    let mut problems = Vec::new();
    let mut headers = Vec::with_capacity(width);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (col, value) in header_cells[..width].iter().enumerate() {
        let h = shown(value).unwrap_or_default().trim().to_string();
        if h.is_empty() {
            problems.push(at(
                col,
                header_at,
                "this column has no name in the header row".into(),
            ));
        } else if let Some(first) = seen.insert(h.clone(), col) {
            problems.push(at(
                col,
                header_at,
                format!(
                    "the header names the column \"{h}\" twice (also in cell {})",
                    cell_ref(first, header_at)
                ),
            ));
        }
        headers.push(h);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    for (i, row) in cells.iter().enumerate().skip(header_at + 1) {
        if !row.iter().any(has_value) {
            continue; // an empty row, as a blank line in a CSV file
        }
        let mut fields = Vec::with_capacity(width);
        let mut problem = None;
        for (col, value) in row.iter().enumerate() {
            if col >= width {
                if has_value(value) && problem.is_none() {
                    problem = Some(at(
                        col,
                        i,
                        "this cell has a value, but its column has no name in the header row; name the column or clear the cell".into(),
                    ));
                }
                continue;
            }
            match shown(value) {
                Ok(text) => fields.push(text.trim().to_string()),
                Err(why) => {
                    fields.push(String::new());
                    if problem.is_none() {
                        problem = Some(at(col, i, why));
                    }
                }
            }
        }
        fields.resize(width, String::new());
        rows.push(match problem {
            Some(p) => Err(p),
            None => Ok(SheetRow {
                row: sheet_row(i),
                fields,
            }),
        });
    }
    Ok(Sheet {
        name,
        kind,
        headers,
        header_row: sheet_row(header_at),
        first_column: start.1,
        rows,
    })
}

fn has_value(value: &Data) -> bool {
    match value {
        Data::Empty => false,
        Data::String(s) => !s.trim().is_empty(),
        _ => true,
    }
}

/// A cell's value as the clerk sees it in the sheet, or why it has none.
fn shown(value: &Data) -> Result<String, String> {
    Ok(match value {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number(*f),
        Data::Bool(b) => if *b { "SAND" } else { "FALSK" }.to_string(),
        Data::DateTime(d) if d.is_duration() => duration(d.as_f64()),
        Data::DateTime(d) => match d.as_datetime() {
            Some(t) if d.as_f64() < 1.0 => time(t.time()),
            Some(t) => date_time(t),
            None => number(d.as_f64()),
        },
        Data::DateTimeIso(s) => iso(s),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => {
            return Err(format!(
                "the cell shows the error {e}; correct the formula, or type the value"
            ))
        }
    })
}

/// A number as a spreadsheet shows it with a Danish number format: whole numbers as digits,
/// others rounded to 15 significant digits, with a decimal comma.
fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return format!("{}", f as i64);
    }
    let rounded: f64 = format!("{f:.14e}").parse().unwrap_or(f);
    rounded.to_string().replace('.', ",")
}

fn date_time(t: chrono::NaiveDateTime) -> String {
    if t.time() == chrono::NaiveTime::MIN {
        t.format("%Y-%m-%d").to_string()
    } else {
        format!("{} {}", t.format("%Y-%m-%d"), time(t.time()))
    }
}

fn time(t: chrono::NaiveTime) -> String {
    use chrono::Timelike as _;
    if t.second() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

/// A duration cell (`[t]:mm`) as hours and minutes, e.g. `37:30`.
fn duration(days: f64) -> String {
    let seconds = (days * 86_400.0).round() as i64;
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if s == 0 {
        format!("{h}:{m:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

/// An OpenDocument date (`2020-08-31` or `2020-08-31T14:30:00`) in the same form as Excel's.
fn iso(s: &str) -> String {
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return date_time(t);
    }
    s.to_string()
}

/// The letters of a 0-based column: 0 is A, 25 is Z, 26 is AA.
pub(crate) fn column_letters(mut column: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (column % 26) as u8);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};

    fn s(text: &str) -> Data {
        Data::String(text.into())
    }

    fn date(serial: f64) -> Data {
        Data::DateTime(ExcelDateTime::new(
            serial,
            ExcelDateTimeType::DateTime,
            false,
        ))
    }

    fn read_cells(start: (u32, u32), rows: &[Vec<Data>]) -> Result<Sheet, Vec<Problem>> {
        let cells: Vec<&[Data]> = rows.iter().map(Vec::as_slice).collect();
        sheet(
            "Ark1".into(),
            "an Excel workbook",
            start,
            &cells,
            Path::new("k.xlsx"),
        )
    }

    #[test]
    fn cells_read_as_the_clerk_sees_them() {
        assert_eq!(shown(&s("0101")).unwrap(), "0101");
        assert_eq!(shown(&Data::Float(101.0)).unwrap(), "101");
        assert_eq!(shown(&Data::Float(1286555.0)).unwrap(), "1286555");
        assert_eq!(shown(&Data::Float(3.5)).unwrap(), "3,5");
        assert_eq!(shown(&Data::Float(0.1 + 0.2)).unwrap(), "0,3");
        assert_eq!(shown(&Data::Float(-0.0)).unwrap(), "0");
        assert_eq!(shown(&Data::Int(7)).unwrap(), "7");
        assert_eq!(shown(&date(44074.0)).unwrap(), "2020-08-31");
        assert_eq!(shown(&date(44074.5)).unwrap(), "2020-08-31 12:00");
        assert_eq!(shown(&date(0.75)).unwrap(), "18:00");
        assert_eq!(
            shown(&s("2020-08-31T00:00:00")).unwrap(),
            "2020-08-31T00:00:00"
        );
        assert_eq!(
            shown(&Data::DateTimeIso("2020-08-31T00:00:00".into())).unwrap(),
            "2020-08-31"
        );
        assert_eq!(
            shown(&Data::DateTimeIso("2020-08-31".into())).unwrap(),
            "2020-08-31"
        );
        assert_eq!(
            shown(&Data::DateTime(ExcelDateTime::new(
                1.5625,
                ExcelDateTimeType::TimeDelta,
                false
            )))
            .unwrap(),
            "37:30"
        );
        assert_eq!(shown(&Data::Bool(true)).unwrap(), "SAND");
        assert!(shown(&Data::Error(CellErrorType::Div0))
            .unwrap_err()
            .contains("#DIV/0!"));
    }

    #[test]
    fn column_letters_run_past_z() {
        let got: Vec<String> = [0, 2, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_letters)
            .collect();
        assert_eq!(
            got,
            ["A", "C", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"].map(String::from)
        );
    }

    #[test]
    fn empty_rows_are_skipped_and_rows_keep_their_sheet_numbers() {
        // The used area starts at B3: a title row above was empty.
        let sheet = read_cells(
            (2, 1),
            &[
                vec![s("kode"), s("navn"), Data::Empty],
                vec![s("0101"), s("Kø"), Data::Empty],
                vec![Data::Empty, s("  "), Data::Empty],
                vec![Data::Float(147.0), s("Fr"), Data::Empty],
                vec![Data::Empty, Data::Empty, Data::Empty],
            ],
        )
        .unwrap();
        assert_eq!(sheet.headers, ["kode", "navn"]);
        assert_eq!(sheet.header_row, 3);
        let rows: Vec<SheetRow> = sheet.rows.iter().cloned().map(Result::unwrap).collect();
        assert_eq!((rows[0].row, rows[1].row), (4, 6));
        assert_eq!(rows[1].fields, ["147", "Fr"]);
        assert_eq!(sheet.cell(1, 6), "C6");
    }

    #[test]
    fn a_problem_names_the_sheet_and_the_cell() {
        let sheet = read_cells(
            (0, 0),
            &[
                vec![s("kode"), s("navn"), Data::Empty],
                vec![s("1"), Data::Error(CellErrorType::Ref), Data::Empty],
                vec![s("2"), s("x"), s("a note")],
            ],
        )
        .unwrap();
        assert_eq!(
            sheet.rows[0].as_ref().unwrap_err().to_string(),
            "k.xlsx, sheet \"Ark1\", cell B2: the cell shows the error #REF!; correct the formula, or type the value"
        );
        assert!(sheet.rows[1].as_ref().unwrap_err().to_string().starts_with(
            "k.xlsx, sheet \"Ark1\", cell C3: this cell has a value, but its column has no name"
        ));

        let problems = read_cells(
            (0, 0),
            &[vec![s("kode"), Data::Empty, s("kode")], vec![s("1")]],
        )
        .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "k.xlsx, sheet \"Ark1\", cell B1: this column has no name in the header row",
                "k.xlsx, sheet \"Ark1\", cell C1: the header names the column \"kode\" twice (also in cell A1)",
            ]
        );
    }
}
