//! The commands: each one reads the campaign, decides with the pure modules, and does its I/O here.
//!
//! This is the edge where files are written, the ledger is opened and locked, the user is asked,
//! and text is printed. Decisions (who gets a letter, what it says) are made in `campaign`,
//! `render` and `compose`, never here.

use std::collections::HashSet;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::campaign::recipients::printable;
use crate::campaign::{self, Letter, Mode, Observer, Pace, Prepared, Selection, Summary};
use crate::cli::args::{
    Cli, Command, Format, OutputFormat, ResendArgs, RunArgs, StateFilter, StatusArgs,
};
use crate::cli::terminal::{Stream, Tone};
use crate::clock;
use crate::config::{self, Config, Encoding, Transport as TransportConfig};
use crate::delivery;
use crate::delivery::archive;
use crate::delivery::smtp;
use crate::delivery::transport::{Outbox, Transport};
use crate::letter::page;
use crate::problem::{display_path, Problems};
use crate::record::ledger::{Frozen, Ledger, State};
use crate::record::report as case_report;
use crate::record::status;

pub mod args;
pub mod browser;
pub mod diagnostics;
pub mod init;
pub mod manual;
pub mod progress;
pub mod summary;
pub mod terminal;

/// How a command ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything delivered, or nothing to do.
    Done = 0,
    /// Some recipients were not delivered.
    SomeFailed = 1,
    /// Usage, input or systemic errors.
    Error = 2,
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<Exit> {
    let out = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
        human_on_stderr: matches!(&cli.command, Command::Send(a) if a.run.format == OutputFormat::Json)
            || matches!(&cli.command, Command::Resend(a) if a.run.format == OutputFormat::Json),
    };
    // Commands that need no campaign.
    match &cli.command {
        Command::Init(args) => return init(&out, &args.dir),
        Command::Completions(args) => return manual::completions(args.shell),
        Command::Man => return manual::man(),
        _ => {}
    }
    let config = load_config(&cli)?;
    tracing::debug!(config = %cli.config.display(), campaign = %config.campaign.id, "campaign loaded");
    match &cli.command {
        Command::Check => check(&config, &out),
        Command::Preview(args) => preview(
            &config,
            &out,
            args.recipient.as_deref(),
            args.out.as_deref(),
            args.open,
        ),
        Command::Send(args) => send(&config, &out, Mode::Send, &args.run),
        Command::Resend(args) => resend(&config, &out, args),
        Command::Status(args) => status(&config, args),
        Command::TestSend(args) => {
            smtp::test_send(&config, &out, &args.to, args.recipient.as_deref())
        }
        Command::CheckSmtp => smtp::check_smtp(&config, &out),
        Command::Report(args) => case_report::run(&config, args, &out),
        Command::Init(_) | Command::Completions(_) | Command::Man => {
            unreachable!("handled before the campaign is loaded")
        }
    }
}

fn init(out: &Output, dir: &Path) -> Result<Exit> {
    let written = crate::cli::init::init(dir)?;
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

/// Prints for the person at the terminal. Every text passes `terminal::safe`, so text from the
/// recipients file can never carry a control or bidi character to the terminal.
pub struct Output {
    pub quiet: bool,
    pub verbose: bool,
    /// With `--format json` standard output carries only the JSON; the words go to standard error.
    pub human_on_stderr: bool,
}

impl Output {
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.quiet {
            self.always(text);
        }
    }

    /// Prints a line even with --quiet. A closed pipe is ignored: the run goes on, the ledger
    /// is the record.
    pub fn always(&self, text: impl AsRef<str>) {
        self.write(&terminal::safe(text.as_ref()));
    }

    /// `always`, in a colour for its tone when the stream is a terminal.
    pub fn always_in(&self, tone: Tone, text: impl AsRef<str>) {
        let stream = if self.human_on_stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        self.write(&terminal::paint(
            stream,
            tone,
            &terminal::safe(text.as_ref()),
        ));
    }

    fn write(&self, text: &str) {
        let _ = if self.human_on_stderr {
            writeln!(std::io::stderr(), "{text}")
        } else {
            writeln!(std::io::stdout(), "{text}")
        };
    }

    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(
                std::io::stderr(),
                "{} {}",
                terminal::paint(Stream::Stderr, Tone::Warning, "note:"),
                terminal::safe(text.as_ref())
            );
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = config::load(&cli.config).map_err(Problems)?;
    if let Some(enc) = &cli.encoding {
        config.recipients.encoding = match enc.as_str() {
            "utf-8" => Encoding::Utf8,
            "windows-1252" => Encoding::Windows1252,
            _ => Encoding::Auto,
        };
    }
    Ok(config)
}

fn ledger_path(config: &Config) -> PathBuf {
    Ledger::path_for(&config.ledger_dir, &config.campaign.id)
}

fn shown(config: &Config, path: &Path) -> String {
    display_path(path, &config.base).display().to_string()
}

/// Loads, checks and merges every letter; with the ledger's frozen stamps when there is one.
fn prepare_all(config: &Config, ledger: Option<&Ledger>, out: &Output) -> Result<Prepared> {
    let prepared = campaign::prepare(config.clone(), ledger, clock::now()).map_err(Problems)?;
    if prepared.table.encoding != "UTF-8" {
        out.note(format!(
            "{} was read as {}",
            shown(config, &config.recipients.file),
            prepared.table.encoding
        ));
    }
    for note in &prepared.notes {
        out.note(note);
    }
    Ok(prepared)
}

/// Extra checks that apply when the letters go out over SMTP; `only` limits them to some keys.
fn transport_problems(
    p: &Prepared,
    ledger: Option<&Ledger>,
    only: &[String],
) -> Result<Vec<crate::problem::Problem>> {
    match &p.config.transport {
        TransportConfig::Smtp(_) => smtp::reserved_address_problems(p, ledger, only),
        TransportConfig::Outbox { .. } => Ok(Vec::new()),
    }
}

fn describe_transport(config: &Config) -> String {
    match &config.transport {
        TransportConfig::Outbox { dir } => format!("the outbox folder {}", shown(config, dir)),
        TransportConfig::Smtp(s) => smtp::describe(s),
    }
}

fn check(config: &Config, out: &Output) -> Result<Exit> {
    let ledger = Ledger::open_existing(&ledger_path(config))?;
    let p = prepare_all(config, ledger.as_ref(), out)?;
    let problems = transport_problems(&p, ledger.as_ref(), &[])?;
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    out.always(format!(
        "All {} letters are ready: {} ({}), template {}, subject and stamps checked.",
        p.count,
        shown(config, &config.recipients.file),
        p.table.encoding,
        shown(config, &config.template),
    ));
    out.say(format!(
        "Letter date {}, Sags nr. {}. They would go via {} from {}.",
        crate::letter::stamp::danish_date(p.letter_date),
        p.sags_nr,
        describe_transport(config),
        config.sender.from
    ));
    Ok(Exit::Done)
}

fn preview(
    config: &Config,
    out: &Output,
    recipient: Option<&str>,
    dir: Option<&Path>,
    open: bool,
) -> Result<Exit> {
    let ledger = Ledger::open_existing(&ledger_path(config))?;
    let p = prepare_all(config, ledger.as_ref(), out)?;
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
    let now = clock::now();
    let date = now
        .with_timezone(&chrono_tz::Europe::Copenhagen)
        .to_rfc2822();
    let index = dir.join("index.html");
    let partial = dir.join("index.html.partial");
    let mut index_file = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?,
    );
    index_file
        .write_all(page::index_head(&config.campaign.id, &describe_transport(config)).as_bytes())?;
    let mut count = 0usize;
    let ticker = progress::Ticker::new(p.count, "letters", out.quiet);
    for letter in p.letters(ledger.as_ref())? {
        let letter = letter?;
        ticker.tick();
        let (rendered, composed) = p.compose(&letter, now).map_err(anyhow::Error::msg)?;
        let stem = p.file_stem(&letter);
        crate::delivery::transport::write_whole(
            &dir.join(format!("{stem}.eml")),
            &composed.bytes,
            false,
        )?;
        let to = format!("{} <{}>", letter.to.name, letter.to.email);
        let shown_headers = page::Shown {
            from: &config.sender.from,
            to: &to,
            copies: p.envelope.copies().collect(),
            subject: &rendered.subject,
            date: &date,
            message_id: &letter.stamp.message_id,
        };
        let page = page::letter_page(&shown_headers, &rendered.html_body, &format!("{stem}.eml"));
        crate::delivery::transport::write_whole(
            &dir.join(format!("{stem}.html")),
            page.as_bytes(),
            false,
        )?;
        let show = if shown_key.is_empty() {
            count == 0
        } else {
            letter.key == shown_key
        };
        if show && !out.quiet {
            ticker.suspend(|| print_letter(&shown_headers, &rendered.text));
        }
        let entry = page::Entry {
            state: letter
                .recorded
                .as_ref()
                .map(|r| status::shown_state(r.state, false).to_string()),
            key: letter.key,
            name: letter.to.name,
            address: letter.to.email,
            akt_id: letter.stamp.akt_id,
            subject: rendered.subject,
            file_stem: stem,
        };
        index_file.write_all(page::index_row(&entry).as_bytes())?;
        count += 1;
    }
    index_file.write_all(page::index_tail(count).as_bytes())?;
    index_file
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::rename(&partial, &index)?;
    drop(ticker);
    out.always(format!(
        "Preview: wrote {count} letters to {} (an .eml and an .html each). Open {} in a browser to look through them. Nothing was sent and the ledger was not changed.",
        shown(config, &dir),
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

/// Removes an earlier preview's letters so that none is left over from old data.
fn clear_preview(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("eml" | "html")
        ) {
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

fn resend(config: &Config, out: &Output, args: &ResendArgs) -> Result<Exit> {
    debug_assert!(args.failed);
    let mode = Mode::Resend {
        temporary_only: args.temporary_only,
        include_unknown: args.include_unknown,
    };
    send(config, out, mode, &args.run)
}

fn send(config: &Config, out: &Output, mode: Mode, args: &RunArgs) -> Result<Exit> {
    let path = ledger_path(config);
    std::fs::create_dir_all(&config.ledger_dir).with_context(|| {
        format!(
            "cannot create the ledger folder {}",
            config.ledger_dir.display()
        )
    })?;
    let _lock = Ledger::lock(&path)?;
    let existing = Ledger::open_existing(&path)?;
    let p = prepare_all(config, existing.as_ref(), out)?;
    if !args.only.is_empty() {
        campaign::find_letters(&p, existing.as_ref(), &args.only)
            .map_err(|e| anyhow::anyhow!("--only: {e}"))?;
    }
    // Placeholder addresses are refused before anything is written: every letter this run may
    // send (those named by --only, or all) is checked.
    let problems = transport_problems(&p, existing.as_ref(), &args.only)?;
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    drop(existing);
    let mut ledger = Ledger::create_or_open(&path)?;
    let now = clock::stamp_time(clock::now());
    let interrupted = ledger.mark_interrupted(&now)?;
    if !interrupted.is_empty() {
        out.note(format!(
            "{} letter(s) were being handed over when an earlier run stopped ({}); they may have been delivered and are now marked unknown. They are not sent again unless you run `rundbrev resend --failed --include-unknown`.",
            interrupted.len(),
            interrupted.join(", ")
        ));
    }
    let frozen = ledger.frozen()?;
    refuse_what_would_differ(config, &p, &ledger, frozen.as_ref(), args.accept_changes)?;
    {
        let letters = p.letters(None)?;
        ledger.sync(
            letters.map(|l| {
                l.map(|l| crate::record::ledger::Listed {
                    key: l.key.into(),
                    position: l.index as i64,
                    address: l.to.email.into(),
                    name: l.to.name.into(),
                })
            }),
            &now,
        )?;
    }
    let reader = Ledger::open_existing(&path)?;
    let selection = Selection {
        only: args.only.clone(),
        limit: args.limit,
    };
    // Planned while the letters stream by: nothing of the campaign is held in memory.
    let mut unreadable = None;
    let plan = campaign::plan(
        p.letters(reader.as_ref())?
            .map_while(|l| match l {
                Ok(l) => Some((l.index, l.state(), l.key)),
                Err(e) => {
                    unreadable = Some(e);
                    None
                }
            })
            .map(|(index, state, key)| (index, key, state)),
        mode,
        &selection,
    );
    if let Some(e) = unreadable {
        return Err(e);
    }
    let skipped = describe_skipped(&plan, mode);
    if plan.send.is_empty() {
        out.always(format!("Nothing to send. {skipped}"));
        out.say(format!(
            "See the record with: rundbrev status{}",
            config_flag(config)
        ));
        if args.format == OutputFormat::Json {
            crate::cli::summary::write_json(config, &Summary::default(), &ledger, &HashSet::new())?;
        }
        return Ok(Exit::Done);
    }

    let n = plan.send.len();
    let letters = if n == 1 { "letter" } else { "letters" };
    out.always(format!(
        "About to send {n} {letters} via {}, from {}.",
        describe_transport(config),
        config.sender.from
    ));
    for (kind, addr) in p.envelope.copies() {
        out.always(format!(
            "  {kind}: {addr} gets a copy of every letter ({n} copies)."
        ));
    }
    if !skipped.is_empty() {
        out.say(skipped.clone());
    }
    // Every letter is kept in the archive, as the exact bytes handed over, for the case file.
    let archive = &config.archive_dir;
    let transports: Vec<Box<dyn Transport + Send>> = match &config.transport {
        TransportConfig::Outbox { dir } => {
            vec![Box::new(archive::Archiving::new(Outbox::new(dir), archive))]
        }
        TransportConfig::Smtp(smtp) => {
            confirm(args.yes, n)?;
            smtp::connect_all(smtp, n, out)?
                .into_iter()
                .map(|t| Box::new(archive::Archiving::new(t, archive)) as Box<dyn Transport + Send>)
                .collect()
        }
    };
    if frozen.is_none() || args.accept_changes {
        let f = frozen.clone();
        ledger.freeze(&Frozen {
            campaign_id: config.campaign.id.clone(),
            letter_date: f
                .as_ref()
                .map(|f| f.letter_date.clone())
                .unwrap_or_else(|| p.letter_date.to_string()),
            sags_nr: f
                .as_ref()
                .map(|f| f.sags_nr.clone())
                .unwrap_or_else(|| p.sags_nr.clone()),
            template_hash: p.template_hash.clone(),
            content_hash: p.content_hash.clone(),
            content_desc: p.content_desc.clone(),
            frozen_at: f.map(|f| f.frozen_at).unwrap_or_else(|| now.clone()),
        })?;
    }
    install_ctrl_c();
    let pace = match &config.transport {
        TransportConfig::Smtp(s) => Pace {
            retries: s.retries,
            retry_delay: s.retry_delay,
            rate_per_minute: s.rate_per_minute,
        },
        TransportConfig::Outbox { .. } => Pace {
            retries: 0,
            retry_delay: Duration::ZERO,
            rate_per_minute: None,
        },
    };
    let mut observer: Box<dyn Observer + '_> = if progress::wanted(out.quiet) {
        Box::new(progress::Bar::new(n, out.verbose))
    } else {
        Box::new(LineObserver { out })
    };
    let summary = delivery::execute(
        &p,
        reader.as_ref(),
        &mut ledger,
        transports,
        &plan,
        pace,
        observer.as_mut(),
    );
    drop(observer);
    let summary = summary?;
    let run: HashSet<u64> = plan.send.iter().map(|x| x.key).collect();
    print_summary(config, out, &summary, &ledger, &run);
    if args.format == OutputFormat::Json {
        crate::cli::summary::write_json(config, &summary, &ledger, &run)?;
    }
    Ok(if summary.stopped.is_some() {
        Exit::Error
    } else if summary.failed() > 0 {
        Exit::SomeFailed
    } else {
        Exit::Done
    })
}

/// Refuses a run that would make the remaining letters differ from those already sent, or send
/// the letter again to an address that has it under another key.
fn refuse_what_would_differ(
    config: &Config,
    p: &Prepared,
    ledger: &Ledger,
    frozen: Option<&Frozen>,
    accept_changes: bool,
) -> Result<()> {
    if let Some(f) = frozen {
        let changes = campaign::changes_since_freeze(p, f, ledger)?;
        if !changes.is_empty() && !accept_changes {
            let sent = ledger.records()?.iter().filter(|r| r.attempts > 0).count();
            bail!(
                "refusing to send: {} since the first letters went out ({sent} recipient(s) already sent to, first on {}), so the remaining recipients would get a different letter:\n  - {}\nUndo the change, or pass --accept-changes if the difference is intended.",
                if changes.len() == 1 { "something changed" } else { "things changed" },
                f.frozen_at,
                changes.join("\n  - ")
            );
        }
    }
    // An address that has (or may have) the letter under another key must not get it again:
    // a key changed in the file (Excel drops leading zeros) would otherwise look like a new
    // recipient.
    let reached = ledger.reached()?;
    if reached.is_empty() {
        return Ok(());
    }
    let mut twice = Vec::new();
    for letter in p.letters(None)? {
        let letter = letter?;
        let address = crate::campaign::recipients::fingerprint(&letter.to.email.to_lowercase());
        if let Some(other) = reached.get(&address).filter(|k| **k != letter.key) {
            twice.push(format!(
                "{} (line {}, {}) already has the letter as {other}",
                printable(&letter.to.email),
                letter.line,
                printable(&letter.key),
            ));
        }
    }
    if !twice.is_empty() {
        bail!(
            "refusing to send: these addresses have, or may have, the letter under another {} in the ledger:\n  - {}\nIf a key was changed in {}, change it back.",
            config.recipients.key,
            twice.join("\n  - "),
            shown(config, &config.recipients.file)
        );
    }
    Ok(())
}

fn config_flag(config: &Config) -> String {
    if config.path == Path::new("config.toml") {
        String::new()
    } else {
        format!(" --config {}", config.path.display())
    }
}

fn describe_skipped(plan: &campaign::Plan, mode: Mode) -> String {
    let mut parts = Vec::new();
    if plan.already_delivered > 0 {
        parts.push(format!(
            "{} already delivered (skipped, never sent twice)",
            plan.already_delivered
        ));
    }
    if plan.unknown > 0 {
        parts.push(format!(
            "{} unknown: may have been delivered, not sent again (use `rundbrev resend --failed --include-unknown` after checking with the recipient)",
            plan.unknown
        ));
    }
    if plan.failed > 0 && mode == Mode::Send {
        parts.push(format!(
            "{} failed earlier (use `rundbrev resend --failed`)",
            plan.failed
        ));
    }
    if plan.pending > 0 {
        parts.push(format!(
            "{} not sent yet (use `rundbrev send`)",
            plan.pending
        ));
    }
    if plan.not_selected > 0 {
        parts.push(format!(
            "{} left out by --only, --limit or --temporary-only",
            plan.not_selected
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("Recipients: {}.", parts.join("; "))
    }
}

/// On a terminal, asks before anything leaves; without one, `--yes` is required.
fn confirm(yes: bool, n: usize) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not sending: confirmation is needed, but there is no terminal to ask on; pass --yes to send without asking");
    }
    print!(
        "Send {n} letter{}? Type yes to send: ",
        if n == 1 { "" } else { "s" }
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(
        answer.trim().to_lowercase().as_str(),
        "yes" | "ja" | "y" | "j"
    ) {
        Ok(())
    } else {
        bail!("not sending: you did not confirm; nothing was sent")
    }
}

fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if delivery::STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // A second Ctrl-C: leave at once; a letter in flight stays `sending` and shows as unknown.
            std::process::exit(130);
        }
        eprintln!("\nStopping after the letter in flight (press Ctrl-C again to stop at once)…");
    });
}

struct LineObserver<'a> {
    out: &'a Output,
}

impl Observer for LineObserver<'_> {
    fn letter_done(
        &mut self,
        done: usize,
        total: usize,
        letter: &Letter,
        state: State,
        reply: &str,
    ) {
        let line = progress::letter_line(done, total, letter, state, reply);
        if state == State::Delivered {
            self.out.say(line);
        } else {
            self.out.always(line);
        }
    }

    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: Duration, reply: &str) {
        self.out
            .say(progress::retry_line(letter, attempt, wait, reply));
    }
}

fn print_summary(config: &Config, out: &Output, s: &Summary, ledger: &Ledger, run: &HashSet<u64>) {
    let mut line = format!(
        "Delivered {} letter{}",
        s.delivered,
        if s.delivered == 1 { "" } else { "s" }
    );
    if let TransportConfig::Outbox { dir } = &config.transport {
        line.push_str(&format!(
            " to {} (one .eml file each, named by Akt-id and kommunekode)",
            shown(config, dir)
        ));
    }
    line.push('.');
    out.always_in(Tone::Good, line);
    let failed = s.failed_temporary + s.failed_permanent;
    if failed > 0 {
        let why = crate::cli::summary::failure_reason(ledger, run)
            .map(|why| format!(": {why}"))
            .unwrap_or_default();
        out.always_in(Tone::Bad, format!(
            "{failed} {} not delivered ({} for now, {} refused for good){why}. See `rundbrev status --state failed`; send them again with `rundbrev resend --failed`.",
            if failed == 1 { "letter was" } else { "letters were" },
            s.failed_temporary,
            s.failed_permanent
        ));
    }
    if s.unknown > 0 {
        out.always(format!(
            "{} letter{} may or may not have arrived: the connection broke after the letter was sent. See `rundbrev status --state unknown`.",
            s.unknown,
            if s.unknown == 1 { "" } else { "s" }
        ));
    }
    if let Some(reason) = &s.stopped {
        out.always(format!(
            "The run stopped: {reason}. {} letter{} were not sent and stay pending; nothing is lost. Fix the cause and run the same command again to continue.",
            s.left,
            if s.left == 1 { "" } else { "s" }
        ));
    }
    out.always(format!(
        "The record is in {}. See who got the letter: rundbrev status{}",
        shown(config, ledger.path()),
        config_flag(config)
    ));
}

fn status(config: &Config, args: &StatusArgs) -> Result<Exit> {
    let path = ledger_path(config);
    let Some(ledger) = Ledger::open_existing(&path)? else {
        let _ = writeln!(
            std::io::stdout(),
            "Nothing has been sent yet for campaign {} (there is no ledger at {}). Run `rundbrev send` to start.",
            config.campaign.id,
            shown(config, &path)
        );
        return Ok(Exit::Done);
    };
    let rows = status::rows(&ledger.records()?, Ledger::is_locked(&path));
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| match args.state {
            None => true,
            Some(f) => matches_filter(f, State::parse(r.state).unwrap_or(State::Unknown)),
        })
        .collect();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let written = match args.format {
        Format::Table => status::write_table(&mut lock, &rows).map_err(anyhow::Error::from),
        Format::Csv => status::write_csv(&mut lock, &rows),
        Format::Json => status::write_json(&mut lock, &config.campaign.id, &rows),
    };
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(Exit::Done),
        Err(e) => Err(e),
        Ok(()) => Ok(Exit::Done),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == Some(std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe))
    })
}

fn matches_filter(f: StateFilter, s: State) -> bool {
    match f {
        StateFilter::Pending => s == State::Pending,
        StateFilter::Sending => s == State::Sending,
        StateFilter::Delivered => s == State::Delivered,
        StateFilter::Failed => s.is_failed(),
        StateFilter::FailedTemporary => s == State::FailedTemporary,
        StateFilter::FailedPermanent => s == State::FailedPermanent,
        StateFilter::Unknown => s == State::Unknown,
    }
}
