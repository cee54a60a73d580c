//! A small harness: a campaign in a temporary folder, and the real `rundbrev` run inside it.
//!
//! The environment is scrubbed before each run so that the developer's own settings cannot leak
//! in, and the clock is pinned (`RUNDBREV_NOW`) unless a test sets it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mail_parser::{Message, MessageParser};

pub(crate) const PINNED_NOW: &str = "2020-06-29T10:00:00+02:00";

/// A campaign folder with a config, a template and recipients.
pub(crate) struct Campaign {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What a run printed and how it ended.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails the test, showing both streams, unless standard output contains `text`.
    #[track_caller]
    pub(crate) fn stdout_has(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Fails the test, showing both streams, unless standard error contains `text`.
    #[track_caller]
    pub(crate) fn stderr_has(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub(crate) fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub(crate) fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A three-recipient recipients file for small fixtures.
pub(crate) const SMALL_CSV: &str = "kommunekode,navn,region,email\n\
101,Københavns Kommune,Region Hovedstaden,post@kk.dk\n\
492,Ærø Kommune,Region Syddanmark,post@aeroe.dk\n\
607,Fredericia Kommune,Region Syddanmark,kommunen@fredericia.dk\n";

impl Campaign {
    /// The shipped sample, exactly as a new user finds it in the repository.
    pub(crate) fn shipped() -> Campaign {
        let c = Campaign::empty();
        std::fs::copy(repo().join("config.toml"), c.path("config.toml")).unwrap();
        copy_dir(&repo().join("templates"), &c.path("templates"));
        copy_dir(&repo().join("recipients"), &c.path("recipients"));
        c
    }

    /// The shipped config and template with three recipients.
    pub(crate) fn small() -> Campaign {
        let c = Campaign::shipped();
        c.write("recipients/kommuner.csv", SMALL_CSV);
        c
    }

    pub(crate) fn empty() -> Campaign {
        Campaign {
            dir: tempfile::Builder::new()
                .prefix("rundbrev-test")
                .tempdir()
                .unwrap(),
            env: vec![("RUNDBREV_NOW".into(), PINNED_NOW.into())],
        }
    }

    /// A copy of this campaign folder, everything in it, in a new temporary folder (with the
    /// same environment): the campaign moved to another disk.
    pub(crate) fn copy(&self) -> Campaign {
        let c = Campaign {
            dir: Campaign::empty().dir,
            env: self.env.clone(),
        };
        copy_dir(self.root(), c.root());
        c
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Changes a text file by replacing `from` (which must be there) with `to`.
    #[track_caller]
    pub(crate) fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, text.replacen(from, to, 1));
    }

    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// The real binary, in the campaign folder, with a scrubbed environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rundbrev"));
        cmd.current_dir(self.root()).args(args).env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd.env("HOME", self.root());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("cannot run rundbrev"))
    }

    pub(crate) fn ledger_path(&self) -> PathBuf {
        self.path("uim-2020-aeresrelaterede-konflikter.ledger.sqlite")
    }

    /// The files in a folder of the campaign, sorted; empty when the folder does not exist.
    pub(crate) fn files(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.path(rel)) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// The ledger as `status --format json` reports it.
    pub(crate) fn status_json(&self) -> serde_json::Value {
        let run = self.run(&["status", "--format", "json"]).expect(0);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status JSON: {e}\n{}", run.stdout))
    }

    /// key → state, from the ledger.
    pub(crate) fn states(&self) -> std::collections::BTreeMap<String, String> {
        self.status_json()["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub(crate) fn ledger(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.ledger_path()).unwrap()
    }
}

/// A parsed e-mail, as a mail client would read it.
pub(crate) struct Mail {
    pub raw: Vec<u8>,
}

impl Mail {
    pub(crate) fn from_file(path: &Path) -> Mail {
        Mail {
            raw: std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        }
    }

    fn parsed(&self) -> Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .expect("not an e-mail")
    }

    pub(crate) fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }

    /// "Name <address>" of the first To.
    pub(crate) fn to(&self) -> String {
        let m = self.parsed();
        let a = m.to().and_then(|t| t.first()).expect("no To");
        format!(
            "{} <{}>",
            a.name().unwrap_or_default(),
            a.address().unwrap_or_default()
        )
    }

    pub(crate) fn message_id(&self) -> String {
        self.parsed().message_id().unwrap_or_default().to_string()
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.raw);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let prefix = format!("{}:", name.to_lowercase());
        head.split("\r\n")
            .find(|l| l.to_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }

    /// The plain-text part, decoded, with line ends as `\n`.
    pub(crate) fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .unwrap_or_default()
            .replace("\r\n", "\n")
    }

    pub(crate) fn html(&self) -> String {
        self.parsed().body_html(0).unwrap_or_default().into_owned()
    }
}
