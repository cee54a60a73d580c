//! `rundbrev init`: a new campaign folder to start from, made from the shipped sample.
//!
//! It writes a commented `config.toml`, the letter template and a recipients file with three
//! municipalities on placeholder addresses (the reserved `.invalid` domain, so nothing can reach a
//! real mailbox by accident). It never overwrites anything: if any of the files already exists it
//! names it and writes nothing at all.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::cli::exit::Exit;
use crate::cli::output::Output;

const CONFIG: &str = include_str!("../../config.toml");
const TEMPLATE: &str = include_str!("../../templates/rundbrev.md");
const RECIPIENTS: &str = include_str!("../../recipients/kommuner.csv");

/// How many sample recipients the new campaign gets.
const SAMPLE_ROWS: usize = 3;

/// The files of a new campaign, relative to its folder, with their contents.
pub(super) fn files() -> Vec<(&'static str, String)> {
    let config = format!(
        "# Made by `rundbrev init` from the sample campaign. Before the first send, change\n\
         # campaign.id, the subject, the sender, the stamps, the template and the recipients.\n\
         # `rundbrev check` then checks everything; `rundbrev preview --open` shows every letter.\n\
         {}",
        CONFIG.replacen(
            "id = \"uim-2020-aeresrelaterede-konflikter\"",
            "id = \"ny-kampagne\"",
            1
        )
    );
    vec![
        ("config.toml", config),
        ("templates/rundbrev.md", TEMPLATE.to_string()),
        ("recipients/kommuner.csv", sample_recipients()),
    ]
}

/// The header and the first few rows with placeholder addresses.
fn sample_recipients() -> String {
    let mut lines = RECIPIENTS.lines();
    let mut out = String::new();
    let header = lines.next().unwrap_or_default();
    out.push_str(header);
    out.push('\n');
    // The shipped file has no quoted fields, so its columns are split at the commas.
    let email = header.split(',').position(|h| h == "email").unwrap_or(0);
    let placeholder = |l: &&str| {
        l.split(',')
            .nth(email)
            .is_some_and(|e| e.ends_with(".invalid"))
    };
    for line in lines.filter(placeholder).take(SAMPLE_ROWS) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes the new campaign into `dir`; returns the paths written.
pub(super) fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = files();
    let existing: Vec<String> = files
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "not starting a campaign in {}: {} already {}; nothing was written (rundbrev init never overwrites a file)",
            dir.display(),
            existing.join(", "),
            if existing.len() == 1 { "exists" } else { "exist" }
        );
    }
    let mut written = Vec::new();
    for (rel, contents) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        }
        // create_new: a file that appeared meanwhile is still never overwritten.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, contents.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the new campaign folder and says what to do next.
pub(super) fn run(out: &Output, dir: &Path) -> Result<Exit> {
    let written = init(dir)?;
    let mut text = format!("Started a new campaign in {}:", dir.display());
    for path in &written {
        text.push_str(&format!("\n  {}", path.display()));
    }
    text.push_str(&format!(
        "\nEdit config.toml, the template and the recipients, then run `rundbrev check`{}.",
        if dir == Path::new(".") {
            String::new()
        } else {
            format!(" in {}", dir.display())
        }
    ));
    out.always(text);
    Ok(Exit::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_has_three_placeholder_recipients() {
        let csv = sample_recipients();
        assert_eq!(csv.lines().count(), 1 + SAMPLE_ROWS);
        assert!(
            csv.starts_with("kommunekode,navn,region,cvr,domain,mail_domain,email,email_kilde\n")
        );
        assert!(csv
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(6).unwrap().ends_with(".invalid")));
    }
}
