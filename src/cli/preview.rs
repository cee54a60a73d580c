//! `rundbrev preview`: every letter as an `.eml` and a readable `.html` page, with an index, and
//! one letter shown in the terminal.
//!
//! The pages are built by `letter::page` from escaped values; this command only writes them, on
//! every core, and the index lists them in file order.
//! Nothing is sent and the ledger is not changed. An earlier preview's letters are removed first
//! so that none is left over from old data. Each file has its name only once it is whole, and the
//! index comes last: a preview cut short (even by `kill -9`) holds no part of a letter and no
//! index, and one that fails is removed again.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use crate::campaign::{self, Letter, Prepared};
use crate::cli::args::PreviewArgs;
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::storage;
use crate::cli::workspace::{ledger_path, prepare, shown};
use crate::cli::{browser, progress};
use crate::clock;
use crate::config::Config;
use crate::letter::page;
use crate::record::ledger::Ledger;
use crate::record::storage::Cause;
use crate::record::{status, wording};
use crate::sanitize::printable;
use crate::whole_file;

pub(super) fn run(config: &Config, out: &Output, args: &PreviewArgs) -> Result<Exit> {
    let (recipient, dir, open) = (args.recipient.as_deref(), args.out.as_deref(), args.open);
    let ledger = Ledger::open_existing(&ledger_path(config))?;
    let p = prepare(config, ledger.as_ref(), out)?;
    let shown_key = match recipient {
        Some(key) => {
            campaign::find_letters(&p, ledger.as_ref(), &[key.to_string()])?
                .remove(0)
                .key
        }
        None => String::new(),
    };
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| config.preview_dir.clone());
    clear_preview(&dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let index = dir.join("index.html");
    let count = match write_preview(config, out, &p, ledger.as_ref(), &dir, &shown_key) {
        Ok(count) => count,
        Err(e) => {
            // No preview is better than part of one that looks whole: this run's files go.
            let _ = clear_preview(&dir);
            let _ = std::fs::remove_file(dir.join("index.html.partial"));
            return Err(match Cause::of(&e) {
                Some(cause) => anyhow::anyhow!(
                    "cannot write the preview to {}: {}. The letters written so far were removed again, so that no part of a preview is mistaken for a whole one. Nothing was sent and the ledger was not changed.\nWhat to do: {}.",
                    shown(config, &dir),
                    storage::why(cause),
                    storage::fix(
                        cause,
                        "the preview folder",
                        "write the preview elsewhere with `--out FOLDER`",
                        "run `rundbrev preview` again"
                    )
                ),
                None => e,
            });
        }
    };
    out.always(format!(
        "Preview: wrote {count} letters to {} (an .eml and an .html each{}). Open {} in a browser to look through them. Nothing was sent and the ledger was not changed.",
        shown(config, &dir),
        if p.enclosures.letterhead.is_some() {
            ", and the letter as a PDF"
        } else {
            ""
        },
        shown(config, &index)
    ));
    if open {
        match browser::open(&index) {
            Ok(()) => out.say(format!("Opened {} in the browser.", shown(config, &index))),
            Err(why) => out.always(format!(
                "Could not open a browser: {why}. Open this file yourself: {}",
                std::path::absolute(&index)
                    .unwrap_or(index.clone())
                    .display()
            )),
        }
    }
    Ok(Exit::Done)
}

/// Writes every letter's `.eml` and `.html` and, last, the index; returns how many letters.
fn write_preview(
    config: &Config,
    out: &Output,
    p: &Prepared,
    ledger: Option<&Ledger>,
    dir: &Path,
    shown_key: &str,
) -> Result<usize> {
    let now = clock::now();
    let local = now.with_timezone(&chrono_tz::Europe::Copenhagen);
    let date = local.to_rfc2822();
    // The page is Danish: "29. juni 2020 kl. 10.00".
    let danish_date = format!(
        "{} kl. {}",
        crate::letter::stamp::danish_date(local.date_naive()),
        local.format("%H.%M")
    );
    let index = dir.join("index.html");
    let partial = dir.join("index.html.partial");
    let mut index_file = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?,
    );
    index_file
        .write_all(page::index_head(&config.campaign.id, &wording::transport(config)).as_bytes())?;
    let mut count = 0usize;
    let ticker = progress::Ticker::new(p.count, "letters", out.quiet);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let mut letters = p.letters(ledger)?;
    loop {
        // A chunk at a time, its letters composed and written on every core; the index in order.
        let chunk = letters
            .by_ref()
            .take(CHUNK)
            .collect::<Result<Vec<Letter>>>()?;
        if chunk.is_empty() {
            break;
        }
        let written = write_chunk(
            p,
            &chunk,
            dir,
            now,
            (&date, &danish_date),
            shown_key,
            threads,
        )?;
        for w in written {
            ticker.tick();
            if let Some(text) = &w.text {
                if !out.quiet {
                    let to = format!("{} <{}>", w.entry.name, w.entry.address);
                    let shown_headers = page::Shown {
                        from: &config.sender.from,
                        to: &to,
                        copies: p.envelope.copies().collect(),
                        subject: &w.entry.subject,
                        date: &date,
                        message_id: &w.message_id,
                    };
                    ticker.suspend(|| print_letter(&shown_headers, text));
                }
            }
            index_file.write_all(page::index_row(&w.entry).as_bytes())?;
            count += 1;
        }
    }
    index_file.write_all(page::index_tail(count).as_bytes())?;
    index_file
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::rename(&partial, &index)?;
    drop(ticker);
    Ok(count)
}

/// Letters written by one thread at a time, before the index gets their rows.
const CHUNK: usize = 512;

/// One letter written: its index row, and its text when it is the one shown in the terminal.
struct Written {
    entry: page::Entry,
    message_id: String,
    text: Option<String>,
}

/// Composes and writes the chunk's letters (`.eml` and `.html`) on `threads` threads; returns
/// them in the chunk's order.
fn write_chunk(
    p: &Prepared,
    chunk: &[Letter],
    dir: &Path,
    now: DateTime<Utc>,
    dates: (&str, &str),
    shown_key: &str,
    threads: usize,
) -> Result<Vec<Written>> {
    let per = chunk.len().div_ceil(threads);
    let parts: Vec<Result<Vec<Written>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunk
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|letter| write_letter(p, letter, dir, now, dates, shown_key))
                        .collect::<Result<Vec<Written>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a preview thread failed")))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(chunk.len());
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

/// Composes one letter and writes its `.eml` and its `.html` page.
fn write_letter(
    p: &Prepared,
    letter: &Letter,
    dir: &Path,
    now: DateTime<Utc>,
    (date, danish_date): (&str, &str),
    shown_key: &str,
) -> Result<Written> {
    let config = &p.config;
    let made = p.make(letter, now)?;
    let (rendered, composed) = (made.body, made.composed);
    let stem = p.file_stem(letter);
    // Each file gets its name only once it is whole; the folder was cleared and made before.
    whole_file::create_new(&dir.join(format!("{stem}.eml")), &composed.bytes)?;
    let pdf_file = match &made.pdf {
        Some(pdf) => {
            let name = format!("{stem}.pdf");
            whole_file::create_new(&dir.join(&name), &pdf.bytes)?;
            Some(name)
        }
        None => None,
    };
    let to = format!("{} <{}>", letter.to.name, letter.to.email);
    let shown_headers = page::Shown {
        from: &config.sender.from,
        to: &to,
        copies: p.envelope.copies().collect(),
        subject: &rendered.subject,
        date,
        message_id: &letter.stamp.message_id,
    };
    let page = page::letter_page(
        &page::Shown {
            date: danish_date,
            copies: shown_headers.copies.clone(),
            ..shown_headers
        },
        &rendered.html_body,
        &format!("{stem}.eml"),
    );
    whole_file::create_new(&dir.join(format!("{stem}.html")), page.as_bytes())?;
    let show = if shown_key.is_empty() {
        letter.index == 0
    } else {
        letter.key == shown_key
    };
    Ok(Written {
        entry: page::Entry {
            state: letter
                .recorded
                .as_ref()
                .map(|r| wording::state(status::shown_state(r.state, false)))
                .unwrap_or(wording::NOT_SENT)
                .to_string(),
            key: letter.key.clone(),
            name: letter.to.name.clone(),
            address: letter.to.email.clone(),
            akt_id: letter.stamp.akt_id.clone(),
            subject: rendered.subject,
            file_stem: stem,
            pdf_file,
        },
        message_id: letter.stamp.message_id.clone(),
        text: show.then_some(rendered.text),
    })
}

/// Removes an earlier preview's letters so that none is left over from old data.
fn clear_preview(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        // A `.partial` file is one that a crashed run of an earlier version left behind.
        let name = name.strip_suffix(b".partial").unwrap_or(name);
        if [&b".eml"[..], b".html", b".pdf"]
            .iter()
            .any(|e| name.len() > e.len() && name.ends_with(e))
        {
            std::fs::remove_file(&path).with_context(|| {
                format!("cannot remove the old preview file {}", path.display())
            })?;
        }
    }
    Ok(())
}

fn print_letter(h: &page::Shown<'_>, text: &str) {
    let mut s = String::new();
    s.push_str(&format!("From:       {}\n", printable(h.from)));
    s.push_str(&format!("To:         {}\n", printable(h.to)));
    for (kind, addr) in &h.copies {
        s.push_str(&format!("{:<11} {}\n", format!("{kind}:"), addr));
    }
    s.push_str(&format!("Subject:    {}\n", printable(h.subject)));
    s.push_str(&format!("Date:       {}\n", h.date));
    s.push_str(&format!("Message-ID: <{}>\n", h.message_id));
    s.push_str(&"─".repeat(72));
    s.push('\n');
    for line in text.lines() {
        s.push_str(&printable(line));
        s.push('\n');
    }
    s.push_str(&"─".repeat(72));
    let _ = writeln!(std::io::stdout(), "{s}");
}
