//! The `[letter]` section: the PDF letter on the letterhead, the cover text, the attachments.
//!
//! `validate` turns what the TOML says into `LetterSettings`, naming the key of every problem.
//! Paths are resolved against the config file's folder; whether the files exist and can be read
//! is checked with the campaign (`campaign::enclosures`), not here. This module reads no file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the `[letter]` section may say.
#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawLetter {
    pdf: bool,
    cover: Option<PathBuf>,
    logo: Option<PathBuf>,
    ministry: Option<String>,
    address: Vec<String>,
    contact: Vec<String>,
    cvr: Option<String>,
    footer: Option<String>,
    recipient_address: Vec<String>,
    attachments: Vec<PathBuf>,
    attachments_column: Option<String>,
    max_size_mb: f64,
}

impl Default for RawLetter {
    fn default() -> Self {
        RawLetter {
            pdf: false,
            cover: None,
            logo: None,
            ministry: None,
            address: Vec::new(),
            contact: Vec::new(),
            cvr: None,
            footer: None,
            recipient_address: vec!["adresse".into(), "postnr_by".into()],
            attachments: Vec::new(),
            attachments_column: None,
            max_size_mb: 20.0,
        }
    }
}

/// The letter as a document, and what goes with each e-mail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LetterSettings {
    /// Attach each letter as a PDF on the letterhead.
    pub pdf: bool,
    /// A template (Markdown) for a short e-mail text; without it the e-mail is the letter itself.
    pub cover: Option<PathBuf>,
    /// An SVG or PNG logo for the letterhead.
    pub logo: Option<PathBuf>,
    /// The name on the letterhead; by default the sender's name.
    pub ministry: Option<String>,
    /// The sender's address lines, in the sender block and the footer.
    pub address: Vec<String>,
    /// Telephone, mail and web lines for the sender block.
    pub contact: Vec<String>,
    pub cvr: Option<String>,
    /// The footer line; by default the name, the address and the CVR number.
    pub footer: Option<String>,
    /// Columns whose values (where the file has them) make the recipient's address lines.
    pub recipient_address: Vec<String>,
    /// Files attached to every letter.
    pub attachments: Vec<PathBuf>,
    /// A column naming files for one recipient's letter, separated by ';'.
    pub attachments_column: Option<String>,
    /// A letter whose message would be larger than this (in bytes) is refused.
    pub max_size: u64,
}

impl LetterSettings {
    /// The settings that decide what each letter looks like, for the change check; empty when
    /// nothing of this section is used, so that campaigns without it fingerprint as before.
    pub(crate) fn fingerprint_parts(&self) -> Vec<(&'static str, String)> {
        let mut parts = Vec::new();
        if self.pdf {
            parts.push(("letter.pdf", "true".to_string()));
            let show = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            };
            parts.push(("letter.cover", show(&self.cover)));
            parts.push(("letter.logo", show(&self.logo)));
            parts.push(("letter.ministry", self.ministry.clone().unwrap_or_default()));
            parts.push(("letter.address", self.address.join(" | ")));
            parts.push(("letter.contact", self.contact.join(" | ")));
            parts.push(("letter.cvr", self.cvr.clone().unwrap_or_default()));
            parts.push(("letter.footer", self.footer.clone().unwrap_or_default()));
            parts.push(("letter.recipient_address", self.recipient_address.join(",")));
        }
        if !self.attachments.is_empty() {
            let names: Vec<String> = self
                .attachments
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            parts.push(("letter.attachments", names.join(",")));
        }
        if let Some(c) = &self.attachments_column {
            parts.push(("letter.attachments_column", c.clone()));
        }
        parts
    }
}

/// Checks the section; `bad(key, message)` records a problem.
pub(super) fn validate(
    raw: RawLetter,
    base: &Path,
    bad: &mut dyn FnMut(&str, String),
) -> LetterSettings {
    if !(raw.max_size_mb > 0.0 && raw.max_size_mb <= 1024.0) {
        bad(
            "letter.max_size_mb",
            format!(
                "{} is not a size in megabytes between 0 and 1024",
                raw.max_size_mb
            ),
        );
    }
    if raw.cover.is_some() && !raw.pdf {
        bad(
            "letter.cover",
            "a cover text goes with the PDF letter; set pdf = true as well, or remove cover".into(),
        );
    }
    if let Some(logo) = &raw.logo {
        let name = logo.to_string_lossy().to_ascii_lowercase();
        if !(name.ends_with(".svg") || name.ends_with(".png")) {
            bad(
                "letter.logo",
                format!("`{}` must be an SVG or PNG file", logo.display()),
            );
        }
    }
    if let Some(cvr) = &raw.cvr {
        if cvr.trim().is_empty() {
            bad("letter.cvr", "the CVR number is empty".into());
        }
    }
    if raw
        .attachments_column
        .as_ref()
        .is_some_and(|c| c.trim().is_empty())
    {
        bad(
            "letter.attachments_column",
            "the column name is empty".into(),
        );
    }
    let join = |p: PathBuf| base.join(p);
    LetterSettings {
        pdf: raw.pdf,
        cover: raw.cover.map(join),
        logo: raw.logo.map(join),
        ministry: raw.ministry.filter(|m| !m.trim().is_empty()),
        address: raw.address,
        contact: raw.contact,
        cvr: raw.cvr.map(|c| c.trim().to_string()),
        footer: raw.footer,
        recipient_address: raw.recipient_address,
        attachments: raw.attachments.into_iter().map(join).collect(),
        attachments_column: raw.attachments_column,
        max_size: (raw.max_size_mb.clamp(0.0, 1024.0) * 1_000_000.0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    const BASE: &str = "[campaign]\nid = \"t\"\nsubject = \"Hej\"\n[sender]\nfrom = \"Ministeriet <uim@uim.dk>\"\n[stamps]\nsags_nr = \"1\"\nakt_id_first = \"1\"\n";

    #[test]
    fn without_a_letter_section_nothing_is_attached_and_nothing_fingerprinted() {
        let c = parse(BASE, Path::new("camp/config.toml")).unwrap();
        assert!(!c.letter.pdf);
        assert_eq!(c.letter.max_size, 20_000_000);
        assert!(c.letter.fingerprint_parts().is_empty());
    }

    #[test]
    fn paths_are_resolved_and_every_bad_key_is_named() {
        let text = format!("{BASE}[letter]\npdf = true\ncover = \"følgebrev.md\"\nattachments = [\"bilag/a.pdf\"]\nmax_size_mb = 2.5\n");
        let c = parse(&text, Path::new("camp/config.toml")).unwrap();
        assert_eq!(
            c.letter.cover.as_deref(),
            Some(Path::new("camp/følgebrev.md"))
        );
        assert_eq!(c.letter.attachments, [Path::new("camp/bilag/a.pdf")]);
        assert_eq!(c.letter.max_size, 2_500_000);
        assert!(c
            .letter
            .fingerprint_parts()
            .contains(&("letter.attachments", "camp/bilag/a.pdf".to_string())));

        let bad =
            format!("{BASE}[letter]\ncover = \"x.md\"\nlogo = \"logo.gif\"\nmax_size_mb = 0\n");
        let problems = parse(&bad, Path::new("camp/config.toml")).unwrap_err();
        let keys: Vec<&str> = problems
            .iter()
            .filter_map(|p| p.column.as_deref())
            .collect();
        assert_eq!(
            keys,
            [
                "key `letter.max_size_mb`",
                "key `letter.cover`",
                "key `letter.logo`"
            ],
            "{problems:?}"
        );
    }
}
