//! The command line: what the user can type, as clap definitions. No behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rundbrev",
    version,
    about = "Send one official circular letter by e-mail to many recipients, one stamped letter each, and keep an exact record of who got it.",
    after_help = "The usual order: rundbrev check → rundbrev preview → rundbrev send → rundbrev status\n\nExit codes: 0 all letters delivered (or nothing to do), 1 some letters were not delivered, 2 a problem with the input, the setup or the server (nothing or not everything was sent)."
)]
pub(super) struct Cli {
    /// The campaign file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "config.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,

    /// How the recipients file is encoded (overrides recipients.encoding in the config).
    #[arg(long, global = true, value_name = "ENCODING")]
    pub encoding: Option<EncodingArg>,

    /// Print only problems and the final summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more about what happens.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Check the config, the template and the recipients, and merge every letter in memory.
    #[command(
        after_help = "Example:\n  rundbrev check\n  rundbrev --config kampagne/config.toml check"
    )]
    Check,

    /// Write every letter to the preview folder (.eml and .html, with an index.html); send nothing.
    #[command(
        after_help = "Examples:\n  rundbrev preview\n  rundbrev preview --recipient 101\n  rundbrev preview --open"
    )]
    Preview(PreviewArgs),

    /// Send the letters that have not been sent yet, and record each outcome in the ledger.
    #[command(
        after_help = "Examples:\n  rundbrev send\n  rundbrev send --yes\n  rundbrev send --only 101 147\n  rundbrev send --limit 5\n  rundbrev send --yes --format json"
    )]
    Send(SendArgs),

    /// Send again to recipients whose letter failed. Delivered recipients are never sent again.
    #[command(
        after_help = "Examples:\n  rundbrev resend --failed\n  rundbrev resend --failed --temporary-only\n  rundbrev resend --failed --include-unknown"
    )]
    Resend(ResendArgs),

    /// Show who got the letter: state, attempts and last server reply for every recipient.
    #[command(
        after_help = "Examples:\n  rundbrev status\n  rundbrev status --state failed\n  rundbrev status --format csv > levering.csv"
    )]
    Status(StatusArgs),

    /// Send one rendered letter to your own address to see it as the recipients will.
    /// It does not count as that recipient's delivery.
    #[command(
        name = "test-send",
        after_help = "Example:\n  rundbrev test-send --to mig@uim.dk --recipient 101"
    )]
    TestSend(TestSendArgs),

    /// Connect to the SMTP server, start TLS and log in, without sending anything.
    #[command(name = "check-smtp", after_help = "Example:\n  rundbrev check-smtp")]
    CheckSmtp,

    /// Write the delivery report for the case file: a CSV with one row per recipient and a
    /// printable HTML summary with the letter's text.
    #[command(
        after_help = "Examples:\n  rundbrev report\n  rundbrev report --out journal/2020-12345\n  rundbrev report --format json"
    )]
    Report(ReportArgs),

    /// Read what came back after sending (bounces, delivery reports, read receipts, replies) into
    /// the record, or show what such messages say.
    #[command(
        subcommand,
        after_help = "Examples:\n  rundbrev receipts import ~/Downloads/bounces\n  rundbrev receipts import indbakke.mbox\n  rundbrev receipts inspect returned.eml\n  rundbrev receipts fetch"
    )]
    Receipts(ReceiptsCommand),

    /// Start a new campaign in DIR (default: this folder): a commented config.toml, a letter
    /// template and a small recipients file. Never overwrites anything.
    #[command(after_help = "Examples:\n  rundbrev init kampagne\n  cd kampagne && rundbrev check")]
    Init(InitArgs),

    /// Print shell completions for rundbrev.
    #[command(
        after_help = "Examples:\n  rundbrev completions bash > /etc/bash_completion.d/rundbrev\n  rundbrev completions zsh > ~/.zfunc/_rundbrev"
    )]
    Completions(CompletionsArgs),

    /// Print rundbrev's manual page (roff).
    #[command(after_help = "Example:\n  rundbrev man > rundbrev.1 && man ./rundbrev.1")]
    Man,
}

/// Text for people, or JSON for scripts.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub(super) enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// The folder to write the report to (default: report/ beside config.toml).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// `json` also prints the report (counts and every recipient) on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub(super) enum ReceiptsCommand {
    /// Read bounces, delivery reports, read receipts and replies from .eml files, folders of them,
    /// mbox files and Maildir folders, and record each against its letter. Messages that cannot
    /// be matched to a letter are listed and change nothing; the same message read twice is
    /// recorded once.
    #[command(
        after_help = "Examples:\n  rundbrev receipts import returned/\n  rundbrev receipts import Bounces.mbox ~/Maildir/.Bounces"
    )]
    Import(ReceiptsImportArgs),

    /// Show what messages say (kind, recipients, status codes, the letter they return), without
    /// touching any ledger.
    #[command(
        after_help = "Examples:\n  rundbrev receipts inspect returned.eml\n  rundbrev receipts inspect --format json returned/*.eml"
    )]
    Inspect(ReceiptsInspectArgs),

    /// Read the new messages in the [receipts.imap] mailbox and record what they say. Read-only:
    /// nothing in the mailbox is deleted, moved or marked as read.
    #[command(
        after_help = "Examples:\n  rundbrev receipts fetch\n  RUNDBREV_IMAP_PASSWORD=... rundbrev receipts fetch"
    )]
    Fetch,
}

#[derive(Debug, Args)]
pub(super) struct ReceiptsImportArgs {
    /// Message files (.eml), folders of them, mbox files or Maildir folders.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ReceiptsInspectArgs {
    /// Message files (.eml), folders of them, mbox files or Maildir folders.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// `json` prints one object per message, for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The folder for the new campaign; created if needed.
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(super) struct PreviewArgs {
    /// Show this recipient's letter (by kommunekode) in the terminal; the first one otherwise.
    #[arg(long, value_name = "KODE")]
    pub recipient: Option<String>,
    /// Write the preview here instead of the folder set in the config.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Open the index in the default browser afterwards.
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Do not ask for confirmation (for scripts).
    #[arg(short, long)]
    pub yes: bool,
    /// Send at most N letters in this run.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Send only to these recipients (by kommunekode).
    #[arg(long, value_name = "KODE", num_args = 1..)]
    pub only: Vec<String>,
    /// Send even though the template, the config or recipients' data changed after letters went
    /// out (the remaining recipients then get a different letter from the first ones).
    #[arg(long)]
    pub accept_changes: bool,
    /// `json` prints the run's summary as JSON on standard output (the rest goes to standard error).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub(super) struct SendArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub(super) struct ResendArgs {
    /// Send to recipients whose letter failed (required, so that the intent is explicit).
    #[arg(long, required = true)]
    pub failed: bool,
    /// Only those that failed for now (4xx, timeouts), not those the server refused for good.
    #[arg(long)]
    pub temporary_only: bool,
    /// Also send to recipients whose outcome is unknown (they may already have the letter).
    #[arg(long)]
    pub include_unknown: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(super) enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(super) enum StateFilter {
    Pending,
    Sending,
    Delivered,
    /// failed-temporary, failed-permanent and bounced
    Failed,
    FailedTemporary,
    FailedPermanent,
    Unknown,
    /// Accepted by the relay, then reported back as not delivered.
    Bounced,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Show only recipients in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateFilter>,
}

#[derive(Debug, Args)]
pub(super) struct TestSendArgs {
    /// Your own address; the letter goes only there.
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// Whose letter to send (by kommunekode); the first recipient's otherwise.
    #[arg(long, value_name = "KODE")]
    pub recipient: Option<String>,
}

/// The encodings `--encoding` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EncodingArg {
    /// UTF-8 when the file is valid UTF-8, otherwise Windows-1252.
    Auto,
    #[value(name = "utf-8")]
    Utf8,
    #[value(name = "windows-1252")]
    Windows1252,
}

impl From<EncodingArg> for crate::config::Encoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Auto => crate::config::Encoding::Auto,
            EncodingArg::Utf8 => crate::config::Encoding::Utf8,
            EncodingArg::Windows1252 => crate::config::Encoding::Windows1252,
        }
    }
}
