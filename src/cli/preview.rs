//! `rundbrev preview`: every letter as an `.eml` and a readable `.html` page, with an index, and
//! one letter shown in the terminal.
//!
//! The pages are built by `letter::page` from escaped values; this command only writes them. The
//! check composes every letter once, on every core, and hands each one that composed without a
//! problem to this command's keeper, which writes its files on that thread; the index gets the
//! rows back in file order. The check decides, this command writes, and the run reads the clock
//! once, so the check, the Date headers and the pages share one time. Nothing is sent and the
//! ledger is not changed. An earlier preview's letters are removed first so that none is left
//! over from old data. Each file has its name only once it is whole, and the index comes last,
//! once the check has passed: a preview cut short (even by `kill -9`) holds no part of a letter
//! and no index, and one that the check refuses or that fails is removed again.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};

use crate::campaign::guard::Watch;
use crate::campaign::{self, Keeper, Letter, Made, Prepared};
use crate::cli::args::PreviewArgs;
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::storage;
use crate::cli::workspace::{check_keeping, ledger_path, shown};
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
    let ledger = Ledger::open_existing(&ledger_path(config))?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| config.preview_dir.clone());
    let index = dir.join("index.html");
    // The run's one look at the clock: the check composes the letters at this time.
    let dates = Dates::at(clock::now());
    let (p, count, shown_letter) = write_preview(config, out, ledger.as_ref(), &dir, args, &dates)?;
    if let (Some(w), false) = (shown_letter, out.quiet) {
        let to = format!("{} <{}>", w.entry.name, w.entry.address);
        let text = w.text.unwrap_or_default();
        print_letter(
            &page::Shown {
                from: &config.sender.from,
                to: &to,
                copies: p.envelope.copies().collect(),
                subject: &w.entry.subject,
                date: &dates.header,
                message_id: &w.message_id,
            },
            &text,
        );
    }
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
    if args.open {
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

/// The run's time as the letters show it.
struct Dates {
    now: DateTime<Utc>,
    /// The e-mail's Date header, as the terminal shows it.
    header: String,
    /// The page's Danish date: "29. juni 2020 kl. 10.00".
    page: String,
}

impl Dates {
    fn at(now: DateTime<Utc>) -> Dates {
        let local = now.with_timezone(&chrono_tz::Europe::Copenhagen);
        Dates {
            now,
            header: local.to_rfc2822(),
            page: format!(
                "{} kl. {}",
                crate::letter::stamp::danish_date(local.date_naive()),
                local.format("%H.%M")
            ),
        }
    }
}

/// Checks every letter, writing each one's `.eml` and `.html` as the check composes it, and,
/// once the check has passed, the index; returns the campaign, how many letters, and the letter
/// to show. A refusal or a failure leaves no letter and no index.
fn write_preview(
    config: &Config,
    out: &Output,
    ledger: Option<&Ledger>,
    dir: &Path,
    args: &PreviewArgs,
    dates: &Dates,
) -> Result<(Prepared, usize, Option<Written>)> {
    // Made ready before the check, which composes the letters for this run only once.
    let folder = ready(dir);
    let made = folder.as_ref().ok().cloned().flatten();
    let mut index = folder.is_ok().then(|| Index::start(config, dir));
    let shown_key = args.recipient.as_deref().unwrap_or_default();
    let mut key_found = args.recipient.is_none();
    let mut see = |letter: &Letter| key_found |= letter.key == shown_key;
    let keep = |p: &Prepared, letter: &Letter, made: Made| {
        write_letter(p, letter, made, dir, dates, shown_key)
    };
    let checked = match index.as_mut() {
        Some(Ok(index)) => {
            let mut kept = |p: &Prepared, w: Written| index.add(p, w, out.quiet);
            let keeper = Keeper {
                keep: &keep,
                kept: &mut kept,
            };
            check_keeping(
                config,
                ledger,
                Watch::default(),
                dates.now,
                &mut see,
                Some(keeper),
            )
        }
        // The folder or the index could not be started: the check alone, and its verdict first.
        _ => check_keeping::<Written>(config, ledger, Watch::default(), dates.now, &mut see, None),
    };
    if let Some(Ok(index)) = index.as_mut() {
        // The bar goes before anything more is said.
        index.ticker = None;
    }
    // Refused by the check, its verdict or an unknown --recipient: nothing of this run is left,
    // not even a folder it made, as when the check came before any letter was written.
    let refused = |e: anyhow::Error| {
        remove_preview(dir, made.as_deref());
        e
    };
    let (checked, kept) = checked.map_err(refused)?;
    let p = checked.accept(config, out).map_err(refused)?;
    if !key_found {
        return Err(refused(campaign::no_recipient(&p, shown_key)));
    }
    folder?;
    let failed = |e: anyhow::Error| failed_write(config, dir, e);
    let index = index
        .expect("started when the folder is ready")
        .map_err(failed)?;
    kept.map_err(failed)?;
    let (count, shown_letter) = index.finish(dir).map_err(failed)?;
    Ok((p, count, shown_letter))
}

/// Empties the preview folder of an earlier preview's letters, or makes it; returns the first
/// folder this made, if any.
fn ready(dir: &Path) -> Result<Option<PathBuf>> {
    clear_preview(dir)?;
    let made = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .last()
        .map(Path::to_path_buf);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(made)
}

/// Removes what this run wrote: its letters and its unfinished index, and the folders it `made`
/// (the first of them and those below it), if they are empty.
fn remove_preview(dir: &Path, made: Option<&Path>) {
    let _ = clear_preview(dir);
    let _ = std::fs::remove_file(dir.join("index.html.partial"));
    if let Some(top) = made {
        for d in dir.ancestors() {
            if std::fs::remove_dir(d).is_err() || d == top {
                break;
            }
        }
    }
}

/// A preview that could not be written: this run's files go, and the error says why in the
/// words `storage` has for a disk that is full or read-only.
fn failed_write(config: &Config, dir: &Path, e: anyhow::Error) -> anyhow::Error {
    // No preview is better than part of one that looks whole.
    remove_preview(dir, None);
    match Cause::of(&e) {
        Some(cause) => anyhow::anyhow!(
            "cannot write the preview to {}: {}. The letters written so far were removed again, so that no part of a preview is mistaken for a whole one. Nothing was sent and the ledger was not changed.\nWhat to do: {}.",
            shown(config, dir),
            storage::why(cause),
            storage::fix(
                cause,
                "the preview folder",
                "write the preview elsewhere with `--out FOLDER`",
                "run `rundbrev preview` again"
            )
        ),
        None => e,
    }
}

/// The index while the letters are written: its rows, in file order, go into
/// `index.html.partial`, which takes the index's name once the check has passed.
struct Index {
    file: BufWriter<File>,
    partial: PathBuf,
    count: usize,
    /// The letter shown in the terminal, once it has come.
    shown: Option<Written>,
    ticker: Option<progress::Ticker>,
}

impl Index {
    fn start(config: &Config, dir: &Path) -> Result<Index> {
        let partial = dir.join("index.html.partial");
        let mut file = BufWriter::new(
            File::create(&partial)
                .with_context(|| format!("cannot write {}", partial.display()))?,
        );
        file.write_all(
            page::index_head(&config.campaign.id, &wording::transport(config)).as_bytes(),
        )?;
        Ok(Index {
            file,
            partial,
            count: 0,
            shown: None,
            ticker: None,
        })
    }

    /// One letter written: its row.
    fn add(&mut self, p: &Prepared, w: Written, quiet: bool) -> Result<()> {
        self.ticker
            .get_or_insert_with(|| {
                progress::Ticker::new(|| p.table.rows_expected().unwrap_or(0), "letters", quiet)
            })
            .tick();
        self.file.write_all(page::index_row(&w.entry).as_bytes())?;
        self.count += 1;
        if w.text.is_some() {
            self.shown = Some(w);
        }
        Ok(())
    }

    /// The last lines, on disk, and the index's name; returns how many letters it lists, and
    /// the letter to show.
    fn finish(mut self, dir: &Path) -> Result<(usize, Option<Written>)> {
        self.file
            .write_all(page::index_tail(self.count).as_bytes())?;
        self.file
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        std::fs::rename(&self.partial, dir.join("index.html"))?;
        Ok((self.count, self.shown))
    }
}

/// One letter written: its index row, and its text when it is the one shown in the terminal.
struct Written {
    entry: page::Entry,
    message_id: String,
    text: Option<String>,
}

/// Writes one letter as the check composed it: its `.eml`, its `.html` page and its PDF.
fn write_letter(
    p: &Prepared,
    letter: &Letter,
    made: Made,
    dir: &Path,
    dates: &Dates,
    shown_key: &str,
) -> Result<Written> {
    let config = &p.config;
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
        date: &dates.header,
        message_id: &letter.stamp.message_id,
    };
    let page = page::letter_page(
        &page::Shown {
            date: &dates.page,
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
