//! What goes with each letter besides the e-mail text: the PDF letter on the letterhead, the
//! cover text, and the campaign's own attachments.
//!
//! `load` reads and checks every file the campaign names before any letter is made: the logo,
//! the cover template, the attachments for all and those named in the recipients' column (each
//! must exist and be readable). It records a SHA-256 of each, so a file that changes after the
//! first send is found like a changed template. `Enclosures::files` reads one recipient's own
//! files again when their letter is made. Reading files happens here, at the campaign's edge;
//! setting the PDF is `letter::pdf`'s work. This module prints nothing and writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::letter::attachment::Attached;
use crate::letter::pdf::{Letterhead, Logo};
use crate::letter::render::Renderer;
use crate::problem::{display_path, Problem};

use super::recipients::Table;

/// The files and settings that go with every letter, checked.
pub(crate) struct Enclosures {
    /// Set when each letter goes as a PDF too.
    pub letterhead: Option<Letterhead>,
    /// The e-mail's text when it is a cover for the PDF letter.
    pub cover: Option<Renderer>,
    /// Attached to every letter.
    common: Vec<Attached>,
    /// The column naming one recipient's own files.
    column: Option<usize>,
    /// The columns that make the recipient's address lines.
    address_columns: Vec<usize>,
    base: PathBuf,
    /// A letter's message may be at most this many bytes.
    pub max_size: u64,
    /// `file <path>` → SHA-256 of every file used, for the change check.
    pub fingerprint: BTreeMap<String, String>,
}

/// The key under which a file's digest is recorded: "file <path as shown>".
pub(crate) const FILE_KEY: &str = "file ";

/// Reads and checks the campaign's files. Every problem is listed, each naming its file and,
/// for a recipient's own file, the line and column.
pub(crate) fn load(config: &Config, table: &Table) -> Result<Enclosures, Vec<Problem>> {
    let s = &config.letter;
    let shown = |p: &Path| display_path(p, &config.base);
    let mut problems = Vec::new();
    let mut fingerprint = BTreeMap::new();
    let read = |path: &Path, fingerprint: &mut BTreeMap<String, String>| {
        let bytes = std::fs::read(path)?;
        fingerprint.insert(
            format!("{FILE_KEY}{}", shown(path).display()),
            crate::digest::hex(&Sha256::digest(&bytes)),
        );
        Ok::<Vec<u8>, std::io::Error>(bytes)
    };

    let logo = match &s.logo {
        None => None,
        Some(path) => match read(path, &mut fingerprint) {
            Err(e) => {
                problems.push(
                    Problem::new(
                        &shown(&config.path),
                        format!("cannot read the logo {}: {e}", shown(path).display()),
                    )
                    .at_key("letter.logo"),
                );
                None
            }
            Ok(bytes) => match Logo::from_bytes(&path.to_string_lossy(), bytes) {
                Ok(logo) => Some(logo),
                Err(why) => {
                    problems.push(
                        Problem::new(&shown(path), format!("the logo {why}")).at_key("letter.logo"),
                    );
                    None
                }
            },
        },
    };

    let cover = match &s.cover {
        None => None,
        Some(path) => match read(path, &mut fingerprint) {
            Err(e) => {
                problems.push(
                    Problem::new(
                        &shown(&config.path),
                        format!(
                            "cannot read the cover template {}: {e}",
                            shown(path).display()
                        ),
                    )
                    .at_key("letter.cover"),
                );
                None
            }
            Ok(bytes) => {
                let src = String::from_utf8_lossy(&bytes);
                match Renderer::new(&src, &config.campaign.subject) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        problems.push(Problem::new(
                            &shown(path),
                            format!("the cover template has an error: {}", e.message),
                        ));
                        None
                    }
                }
            }
        },
    };

    let mut common = Vec::new();
    for path in &s.attachments {
        match read(path, &mut fingerprint) {
            Ok(bytes) => common.push(Attached::new(file_name(path), Arc::new(bytes))),
            Err(e) => problems.push(
                Problem::new(
                    &shown(&config.path),
                    format!("cannot read the attachment {}: {e}", shown(path).display()),
                )
                .at_key("letter.attachments"),
            ),
        }
    }

    let column = match &s.attachments_column {
        None => None,
        Some(name) => match table.column(name) {
            Some(c) => Some(c),
            None => {
                problems.push(
                    Problem::new(
                        &table.file,
                        format!(
                            "there is no column `{name}` for the attachments (columns: {})",
                            table.headers.join(", ")
                        ),
                    )
                    .at_line(1),
                );
                None
            }
        },
    };
    if let Some(c) = column {
        match table.rows() {
            Err(e) => problems.push(Problem::new(
                &table.file,
                format!("cannot read the recipients file: {e}"),
            )),
            Ok(rows) => {
                for row in rows.flatten() {
                    for name in paths_in(&row.fields[c]) {
                        let path = config.base.join(name);
                        let key = format!("{FILE_KEY}{}", shown(&path).display());
                        if fingerprint.contains_key(&key) {
                            continue;
                        }
                        if let Err(e) = read(&path, &mut fingerprint) {
                            problems.push(
                                Problem::new(
                                    &table.file,
                                    format!(
                                        "cannot read the attachment {}: {e}",
                                        shown(&path).display()
                                    ),
                                )
                                .at_line(row.line)
                                .in_column(&table.headers[c]),
                            );
                        }
                    }
                }
            }
        }
    }

    let letterhead = s.pdf.then(|| letterhead(config, logo));
    let address_columns = s
        .recipient_address
        .iter()
        .filter_map(|name| table.column(name))
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Enclosures {
        letterhead,
        cover,
        common,
        column,
        address_columns,
        base: config.base.clone(),
        max_size: s.max_size,
        fingerprint,
    })
}

fn letterhead(config: &Config, logo: Option<Logo>) -> Letterhead {
    let s = &config.letter;
    let sender_name = config
        .sender
        .from
        .parse::<lettre::message::Mailbox>()
        .ok()
        .and_then(|m| m.name)
        .unwrap_or_else(|| config.sender.from.clone());
    let ministry = s.ministry.clone().unwrap_or(sender_name);
    let cvr = s.cvr.as_ref().map(|c| format!("CVR-nr. {c}"));
    let mut sender: Vec<String> = s.address.iter().chain(&s.contact).cloned().collect();
    sender.extend(cvr.clone());
    let footer = s.footer.clone().unwrap_or_else(|| {
        std::iter::once(ministry.clone())
            .chain(s.address.iter().cloned())
            .chain(cvr)
            .collect::<Vec<_>>()
            .join(" · ")
    });
    Letterhead {
        author: ministry.clone(),
        ministry,
        logo,
        sender,
        footer,
    }
}

/// The file name a path is attached under: its last part, as written.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The paths in a recipient's attachments cell: separated by ';', blanks ignored.
pub(crate) fn paths_in(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(';').map(str::trim).filter(|p| !p.is_empty())
}

impl Enclosures {
    /// The recipient's block on the PDF: the name, then the address columns that have a value.
    pub(crate) fn recipient_lines(&self, name: &str, fields: &[String]) -> Vec<String> {
        std::iter::once(name.to_string())
            .chain(
                self.address_columns
                    .iter()
                    .filter_map(|&c| fields.get(c))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty()),
            )
            .collect()
    }

    /// The files for one letter after its PDF: those for all, then the recipient's own (read now).
    pub(crate) fn files(&self, fields: &[String]) -> Result<Vec<Attached>, String> {
        let mut files = self.common.clone();
        if let Some(c) = self.column {
            for name in paths_in(fields.get(c).map(String::as_str).unwrap_or("")) {
                let path = self.base.join(name);
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read the attachment {name}: {e}"))?;
                files.push(Attached::new(file_name(&path), Arc::new(bytes)));
            }
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_may_name_several_files() {
        let v: Vec<&str> = paths_in(" bilag/a.pdf ;; bilag/kort over Ærø.png;").collect();
        assert_eq!(v, ["bilag/a.pdf", "bilag/kort over Ærø.png"]);
    }
}
