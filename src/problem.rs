//! Problems found in the user's input, each pinned to a place: file, line, column or key, or for
//! a workbook: file, sheet and cell.
//!
//! A `Problem` is data, not control flow: checks collect every problem they find so that
//! `rundbrev check` can list them all at once. This module never prints and never exits.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with the input, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub file: PathBuf,
    /// The sheet, when the file is a workbook.
    pub sheet: Option<String>,
    /// The 1-based line in the file (in a workbook: the sheet row), when known.
    pub line: Option<u64>,
    /// The CSV column, the workbook cell or the config key the problem is about, labelled.
    pub column: Option<String>,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(file: &Path, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            sheet: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub(crate) fn at_line(mut self, line: u64) -> Problem {
        self.line = Some(line);
        self
    }

    pub(crate) fn in_column(mut self, column: &str) -> Problem {
        self.column = Some(format!("column \"{column}\""));
        self
    }

    /// Pins the problem to a sheet row of a workbook and, when known, a cell (e.g. `C14`).
    pub(crate) fn in_sheet(mut self, sheet: &str, row: u64, cell: Option<String>) -> Problem {
        self.sheet = Some(sheet.to_string());
        self.line = Some(row);
        self.column = cell.map(|c| format!("cell {c}"));
        self
    }

    pub(crate) fn at_key(mut self, key: &str) -> Problem {
        self.column = Some(format!("key `{key}`"));
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        match (&self.sheet, self.line) {
            // A cell names its row already.
            (Some(sheet), _) if self.column.is_some() => write!(f, ", sheet \"{sheet}\"")?,
            (Some(sheet), Some(row)) => write!(f, ", sheet \"{sheet}\", row {row}")?,
            (Some(sheet), None) => write!(f, ", sheet \"{sheet}\"")?,
            (None, Some(line)) => write!(f, ", line {line}")?,
            (None, None) => {}
        }
        if let Some(column) = &self.column {
            write!(f, ", {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The problems of a failed check, as one error value.
#[derive(Debug)]
pub(crate) struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "found {n} problem{} in the input; nothing was sent:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Shows a path relative to `base` when it lies below it, so messages name files as the user knows them.
pub(crate) fn display_path(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
