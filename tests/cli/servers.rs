//! Real SMTP servers on 127.0.0.1 for the integration tests, and what they received.
//!
//! [`SmtpSink`] runs Postfix's `smtp-sink`: fast, with fault flags (`-r`, `-f`, `-Q`,
//! `-q`, `-n`, `-M`, `-w`, ...) for failure paths, no TLS, and it accepts any AUTH.
//! [`Aiosmtpd`] runs `smtpd.py` (aiosmtpd) with a fresh self-signed certificate for
//! STARTTLS or implicit TLS and, optionally, required AUTH PLAIN/LOGIN; it does not offer
//! PIPELINING. [`Scripted`] runs `scripted_smtpd.py` (Python's standard library only): a
//! pipelining server that refuses recipients or hangs up after its 354 on demand and logs how
//! the commands arrived. All keep every received message in their own temporary directory, read
//! back as
//! [`Received`], whose helpers decode the headers and bodies with mail-parser. Each
//! server is killed when dropped. `ci-install.sh` (`.ci/install-test-servers` in the
//! project) installs both programs.

#![allow(dead_code)] // each test uses only part of the harness

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use mail_parser::{DateTime, Message, MessageParser, PartType};
use tempfile::TempDir;

/// How long a server may take to start listening before the test panics.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const INSTALL_HINT: &str = "run `bash .ci/install-test-servers` or apt-get install postfix \
                            (choose 'No configuration')";

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// One message as the server received it: envelope plus message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    /// Envelope sender (MAIL FROM), without angle brackets; "" for `<>`.
    pub mail_from: String,
    /// Envelope recipients (RCPT TO) in the order sent, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The parameters of MAIL FROM as sent after the address ("RET=HDRS ENVID=..."), or "".
    pub mail_params: String,
    /// The parameters of each accepted RCPT TO, in the order of `rcpt_to`.
    pub rcpt_params: Vec<String>,
    /// The message (headers and body). Aiosmtpd: the exact DATA bytes. SmtpSink:
    /// the same up to line ends, which smtp-sink stores as LF and this restores to CRLF.
    pub raw: Vec<u8>,
}

/// An address from a header such as To, with its decoded display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mailbox {
    pub name: Option<String>,
    pub address: String,
}

impl Received {
    /// The parsed message, for anything the helpers below don't cover.
    pub(crate) fn parsed(&self) -> Message<'_> {
        MessageParser::default()
            .parse(&self.raw)
            .expect("mail-parser could not parse the received message")
    }

    /// Subject, with RFC 2047 encoded words decoded.
    pub(crate) fn subject(&self) -> Option<String> {
        self.parsed().subject().map(str::to_owned)
    }

    /// The To header's mailboxes (group members flattened).
    pub(crate) fn to(&self) -> Vec<Mailbox> {
        let msg = self.parsed();
        let Some(to) = msg.to() else {
            return Vec::new();
        };
        to.iter()
            .map(|a| Mailbox {
                name: a.name().map(str::to_owned),
                address: a.address().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The Date header, parsed; `to_rfc3339()` and the `tz_*` fields show the offset.
    pub(crate) fn date(&self) -> Option<DateTime> {
        self.parsed().date().cloned()
    }

    /// Message-ID without the angle brackets.
    pub(crate) fn message_id(&self) -> Option<String> {
        self.parsed().message_id().map(str::to_owned)
    }

    /// A header's value as sent (not RFC 2047-decoded), unfolded and trimmed.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let msg = self.parsed();
        let raw = msg.header_raw(name)?;
        Some(raw.replace("\r\n", "").replace('\n', "").trim().to_owned())
    }

    /// The first inline text/plain part, transfer-decoded to text. None if the
    /// message has no such part (mail-parser's own body_text would convert HTML).
    pub(crate) fn text_body(&self) -> Option<String> {
        let msg = self.parsed();
        let found = msg.text_bodies().find_map(|part| match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            _ => None,
        });
        found
    }

    /// The first inline text/html part, transfer-decoded to text. None if the
    /// message has no such part (mail-parser's own body_html would convert text).
    pub(crate) fn html_body(&self) -> Option<String> {
        let msg = self.parsed();
        let found = msg.html_bodies().find_map(|part| match &part.body {
            PartType::Html(html) => Some(html.to_string()),
            _ => None,
        });
        found
    }
}

/// Postfix's `smtp-sink` on 127.0.0.1, killed on drop.
pub(crate) struct SmtpSink {
    child: Child,
    port: u16,
    dir: TempDir,
    dumping: bool,
}

impl SmtpSink {
    /// Starts smtp-sink saving every message (`-d`); `extra_args` go before the
    /// address, e.g. `&["-r", "RCPT"]`. Note that smtp-sink saves a message once its
    /// data has arrived, before it replies to ".": messages rejected with `-f .` or
    /// `-r .`, dropped with `-q .` or ended by `-M` are in `messages()` too.
    pub(crate) fn start(extra_args: &[&str]) -> SmtpSink {
        Self::spawn(extra_args, true)
    }

    /// Like `start`, but keeps no messages, only the count (for many messages).
    pub(crate) fn start_counting(extra_args: &[&str]) -> SmtpSink {
        Self::spawn(extra_args, false)
    }

    fn spawn(extra_args: &[&str], dumping: bool) -> SmtpSink {
        let program = find_smtp_sink();
        let dir = tempfile::Builder::new()
            .prefix("smtp-sink")
            .tempdir()
            .unwrap();
        let dump = dir.path().join("dump");
        fs::create_dir(&dump).unwrap();
        // As root smtp-sink must drop to another user (-u), who then writes the dump files.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&dump, fs::Permissions::from_mode(0o777)).unwrap();

        let mut args: Vec<String> = vec!["-c".into()]; // counters for count(); -n needs it too
        if running_as_root() {
            args.extend(["-u".into(), "nobody".into()]);
        }
        if dumping {
            // One file per message, named <minute>.<random hex>; see smtp-sink(1).
            args.extend(["-d".into(), format!("{}/%M.", dump.display())]);
        }
        args.extend(extra_args.iter().map(|a| a.to_string()));

        for _attempt in 0..3 {
            let port = free_port();
            let stderr = dir.path().join("stderr");
            let mut child = Command::new(&program)
                .args(&args)
                .arg(format!("127.0.0.1:{port}"))
                .arg("100")
                .stdin(Stdio::null())
                .stdout(fs::File::create(dir.path().join("stdout")).unwrap())
                .stderr(fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
            match wait_listening(&mut child, port) {
                Ok(()) => {
                    return SmtpSink {
                        child,
                        port,
                        dir,
                        dumping,
                    }
                }
                Err(exited) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&stderr).unwrap_or_default();
                    // Another process took the port between free_port() and bind: retry.
                    if !(exited && log.contains("Address already in use")) {
                        let why = if exited { log } else { "timed out".into() };
                        panic!("smtp-sink {args:?} did not listen on 127.0.0.1:{port}: {why}");
                    }
                }
            }
        }
        panic!("smtp-sink found no free port in 3 attempts")
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:<port>".
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether smtp-sink is still running (it stops by itself with `-n` or `-M`).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What smtp-sink wrote to stderr (add `-v` to see each SMTP dialogue).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Messages whose data was completely received, oldest first (by file time).
    /// Call it after the client is done: smtp-sink writes a file from MAIL on, so a
    /// message still being sent may show up cut short. (Files of transactions that
    /// have not reached DATA are skipped; smtp-sink deletes them when they end.)
    pub(crate) fn messages(&self) -> Vec<Received> {
        assert!(
            self.dumping,
            "messages() needs SmtpSink::start, not start_counting"
        );
        // smtp-sink may delete a file meanwhile (a transaction that ended before DATA).
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            fs::read_dir(self.dir.path().join("dump"))
                .unwrap()
                .filter_map(|e| {
                    let path = e.ok()?.path();
                    Some((fs::metadata(&path).ok()?.modified().ok()?, path))
                })
                .collect();
        files.sort();
        files
            .iter()
            .filter_map(|(_, path)| parse_sink_dump(&fs::read(path).ok()?, path))
            .collect()
    }

    /// Messages whose data was completely received (smtp-sink's "mesg" counter).
    pub(crate) fn count(&self) -> usize {
        let out = fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default();
        // Counter lines look like "sess=2 quit=2 mesg=2\r"; the last one is current.
        out.rsplit("mesg=")
            .next()
            .filter(|_| out.contains("mesg="))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .map_or(0, |n| n.parse().unwrap())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One dump file of `smtp-sink -d`, which looks like this (LF line ends):
///
/// ```text
/// X-Client-Addr: 127.0.0.1
/// X-Client-Proto: ESMTP
/// X-Helo-Args: [127.0.0.1]
/// X-Mail-Args: <from@example.org> BODY=8BITMIME SIZE=1234
/// X-Rcpt-Args: <to@example.org>
/// Received: from [127.0.0.1] ([127.0.0.1])
///         by smtp-sink (smtp-sink) with ESMTP id 02d8589d;
///         Thu, 26 Nov 2026 16:59:10 +0000 (UTC)
/// <the message, dot-unstuffed>
/// <one empty line: the "\n" of the final ".\r\n">
/// ```
fn parse_sink_dump(data: &[u8], path: &Path) -> Option<Received> {
    let mut mail_from = None;
    let mut mail_params = String::new();
    let mut rcpt_to = Vec::new();
    let mut rcpt_params = Vec::new();
    let mut rest = data;
    let mut in_received = false;
    loop {
        // No complete Received header: a transaction before DATA, whose file smtp-sink
        // deletes when it ends without data (rejected RCPT, RSET, disconnect).
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..end]);
        if in_received && !line.starts_with(['\t', ' ']) {
            break; // the message starts here
        }
        if let Some(args) = line.strip_prefix("X-Mail-Args: ") {
            mail_from = Some(envelope_address(args));
            mail_params = envelope_params(args);
        } else if let Some(args) = line.strip_prefix("X-Rcpt-Args: ") {
            rcpt_to.push(envelope_address(args));
            rcpt_params.push(envelope_params(args));
        } else if line.starts_with("Received: ") {
            in_received = true;
        }
        rest = &rest[end + 1..];
    }
    let message = rest.strip_suffix(b"\n").unwrap_or(rest);
    let mut raw = Vec::with_capacity(message.len() + message.len() / 40);
    for &b in message {
        if b == b'\n' {
            raw.push(b'\r');
        }
        raw.push(b);
    }
    Some(Received {
        mail_from: mail_from.unwrap_or_else(|| panic!("{}: no X-Mail-Args", path.display())),
        rcpt_to,
        mail_params,
        rcpt_params,
        raw,
    })
}

/// "<a@b> SIZE=12 RET=HDRS" -> "SIZE=12 RET=HDRS"; "<a@b>" -> "".
fn envelope_params(args: &str) -> String {
    let args = args.trim();
    match args.strip_prefix('<').and_then(|a| a.split_once('>')) {
        Some((_addr, params)) => params.trim().to_owned(),
        None => args
            .split_once(char::is_whitespace)
            .map_or("", |(_, p)| p)
            .trim()
            .to_owned(),
    }
}

/// "<a@b> SIZE=12" -> "a@b"; "<>" -> "".
fn envelope_address(args: &str) -> String {
    let args = args.trim();
    match args.strip_prefix('<').and_then(|a| a.split_once('>')) {
        Some((addr, _params)) => addr.to_owned(),
        None => args.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

fn find_smtp_sink() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("smtp-sink"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("smtp-sink not found: {INSTALL_HINT}"))
}

fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid:\t<real>\t<effective>\t...": smtp-sink checks the effective one.
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// Waits until 127.0.0.1:port is in LISTEN state. It reads /proc/net/tcp instead of
/// connecting, because a probe connection would be an SMTP session to smtp-sink (and
/// would show in its counters and dialogue log). Err(true): the process exited first;
/// Err(false): timeout.
fn wait_listening(child: &mut Child, port: u16) -> Result<(), bool> {
    let local = format!("{:08X}:{port:04X}", u32::from_ne_bytes([127, 0, 0, 1]));
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let listening = table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A")
        });
        if listening {
            return Ok(());
        }
        if child.try_wait().unwrap().is_some() {
            return Err(true);
        }
        sleep(Duration::from_millis(10));
    }
    Err(false)
}

/// TLS on an [`Aiosmtpd`] server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain SMTP, no STARTTLS offered.
    #[default]
    None,
    /// STARTTLS offered (port 587 style).
    StartTls,
    /// TLS from the first byte (port 465 style).
    Implicit,
}

/// The certificate an [`Aiosmtpd`] server shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ServerCert {
    /// Self-signed, not a CA, for 127.0.0.1 and localhost.
    #[default]
    Simple,
    /// Self-signed and marked CA:TRUE, for 127.0.0.1 and localhost: what
    /// `openssl req -x509 -newkey ... -subj /CN=localhost -addext subjectAltName=...` makes.
    SelfSignedCa,
    /// Like `SelfSignedCa`, but it expired in 2021.
    ExpiredCa,
    /// Like `SelfSignedCa`, but only for relay.uim.test.
    CaForOtherName,
    /// Issued by a CA of its own ("UIM intern CA", in `issuer_ca_path`), for 127.0.0.1 and
    /// localhost, as an internal CA would issue it.
    IssuedByOwnCa,
}

/// Settings for [`Aiosmtpd::start`]; `AiosmtpdOptions::default()` is plain SMTP.
#[derive(Debug, Clone, Default)]
pub(crate) struct AiosmtpdOptions {
    pub cert: ServerCert,
    pub tls: TlsMode,
    /// With `TlsMode::StartTls`: answer 530 to MAIL and the rest until STARTTLS.
    pub require_starttls: bool,
    /// Require AUTH PLAIN or LOGIN with this user and password before MAIL (with
    /// STARTTLS, AUTH is only accepted after it).
    pub auth: Option<(String, String)>,
    /// List DSN (RFC 3461) in the EHLO reply and accept its parameters; without it the
    /// server refuses them with 555, as aiosmtpd does.
    pub dsn: bool,
}

/// `smtpd.py` (aiosmtpd) on 127.0.0.1 with its own self-signed certificate,
/// killed on drop. Runs `python3`, or the interpreter named by `$PYTHON`.
pub(crate) struct Aiosmtpd {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Aiosmtpd {
    pub(crate) fn start(opts: AiosmtpdOptions) -> Aiosmtpd {
        let dir = tempfile::Builder::new()
            .prefix("aiosmtpd")
            .tempdir()
            .unwrap();
        let p = |name: &str| dir.path().join(name);
        let script = p("smtpd.py");
        fs::write(&script, include_str!("smtpd.py")).unwrap();

        let (cert_pem, key_pem, ca_pem) = make_cert(opts.cert);
        fs::write(p("cert.pem"), cert_pem).unwrap();
        fs::write(p("key.pem"), key_pem).unwrap();
        if let Some(ca) = ca_pem {
            fs::write(p("issuer-ca.pem"), ca).unwrap();
        }

        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--dump")
            .arg(p("dump"))
            .arg("--ready-file")
            .arg(p("ready"));
        let mode = match opts.tls {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "implicit",
        };
        cmd.args(["--tls-mode", mode]);
        if opts.tls != TlsMode::None {
            cmd.arg("--cert").arg(p("cert.pem"));
            cmd.arg("--key").arg(p("key.pem"));
        }
        if opts.require_starttls {
            cmd.arg("--require-starttls");
        }
        if opts.dsn {
            cmd.arg("--dsn");
        }
        if let Some((user, password)) = &opts.auth {
            cmd.args(["--auth-user", user, "--auth-password", password]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(p("smtpd.log")).unwrap());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run {python}: {e}; install Python 3 and `pip install aiosmtpd`")
        });
        let mut server = Aiosmtpd {
            child,
            port: 0,
            dir,
        };
        server.port = server.wait_ready();
        server
    }

    /// Reads the port that smtpd.py writes to its ready file once it listens.
    fn wait_ready(&mut self) -> u16 {
        let ready = self.dir.path().join("ready");
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(text) = fs::read_to_string(&ready) {
                return text.trim().parse().expect("port number in the ready file");
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                self.startup_failed(status);
            }
            sleep(Duration::from_millis(10));
        }
        panic!(
            "smtpd.py did not listen within {START_TIMEOUT:?}: {}",
            self.log()
        );
    }

    fn startup_failed(&self, status: ExitStatus) -> ! {
        let log = self.log();
        if log.contains("No module named 'aiosmtpd'") || log.contains("cannot import aiosmtpd") {
            panic!(
                "aiosmtpd is missing: run `pip install aiosmtpd` for the python3 on PATH \
                 (or `bash .ci/install-test-servers`)"
            );
        }
        panic!("smtpd.py exited at startup ({status}): {log}");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:<port>".
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's self-signed certificate (PEM, for 127.0.0.1 and localhost): the
    /// file to give the client as its CA file.
    pub(crate) fn ca_cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// With `ServerCert::IssuedByOwnCa`: the CA certificate that issued the server's.
    pub(crate) fn issuer_ca_path(&self) -> PathBuf {
        self.dir.path().join("issuer-ca.pem")
    }

    /// SHA-256 of the server's certificate (DER), as "AB:CD:...".
    pub(crate) fn cert_sha256(&self) -> String {
        pem_sha256(&fs::read_to_string(self.ca_cert_path()).unwrap())
    }

    /// The server's log (stderr): connections, commands, failed AUTH (no passwords).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("smtpd.log")).unwrap_or_default()
    }

    /// Every accepted message, in the order received. All are complete: each is saved
    /// before the client is told 250.
    pub(crate) fn messages(&self) -> Vec<Received> {
        read_dump(&self.dir.path().join("dump"))
    }
}

/// The messages saved in a dump folder of `smtpd.py` or `scripted_smtpd.py`, in order.
fn read_dump(dump: &Path) -> Vec<Received> {
    let mut envelopes: Vec<PathBuf> = match fs::read_dir(dump) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(), // nothing received yet
    };
    envelopes.retain(|p| p.extension().is_some_and(|e| e == "json"));
    envelopes.sort();
    envelopes
        .iter()
        .map(|json| {
            let strings = json_strings(&fs::read_to_string(json).unwrap());
            // {"mail_from": "<from>", "rcpt_tos": ["<to>", ...]}
            assert_eq!(strings.first().map(String::as_str), Some("mail_from"));
            assert_eq!(strings.get(2).map(String::as_str), Some("rcpt_tos"));
            // "MAIL <from> PARAMS" then "RCPT <to> PARAMS" for each recipient
            let args = fs::read_to_string(json.with_extension("params")).unwrap();
            let mut lines = args.lines();
            let mail_params = lines
                .next()
                .and_then(|l| l.strip_prefix("MAIL "))
                .map(envelope_params)
                .unwrap_or_default();
            let rcpt_params = lines
                .filter_map(|l| l.strip_prefix("RCPT "))
                .map(envelope_params)
                .collect();
            Received {
                mail_from: strings[1].clone(),
                rcpt_to: strings[3..].to_vec(),
                mail_params,
                rcpt_params,
                raw: fs::read(json.with_extension("eml")).unwrap(),
            }
        })
        .collect()
}

/// Settings for [`Scripted::start`]; the default offers PIPELINING and behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScriptedOptions {
    /// Leave PIPELINING out of the EHLO reply.
    pub no_pipelining: bool,
    /// (address, reply): answer RCPT TO for this address with this reply.
    pub refuse: Vec<(String, String)>,
    /// (address, times): answer DATA with 354 and hang up, the first `times` transactions
    /// with this address among their recipients.
    pub drop_after_354: Vec<(String, u32)>,
}

/// `scripted_smtpd.py` on 127.0.0.1 (Python's standard library only): a pipelining server that
/// refuses recipients or hangs up after its 354 on demand, and logs how the commands arrived.
/// Killed on drop. Runs `python3`, or the interpreter named by `$PYTHON`.
pub(crate) struct Scripted {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Scripted {
    pub(crate) fn start(opts: ScriptedOptions) -> Scripted {
        let dir = tempfile::Builder::new()
            .prefix("scripted-smtpd")
            .tempdir()
            .unwrap();
        let p = |name: &str| dir.path().join(name);
        let script = p("scripted_smtpd.py");
        fs::write(&script, include_str!("scripted_smtpd.py")).unwrap();
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--dump")
            .arg(p("dump"))
            .arg("--ready-file")
            .arg(p("ready"));
        if opts.no_pipelining {
            cmd.arg("--no-pipelining");
        }
        for (address, reply) in &opts.refuse {
            cmd.arg("--refuse").arg(format!("{address}={reply}"));
        }
        for (address, times) in &opts.drop_after_354 {
            cmd.arg("--drop-after-354")
                .arg(format!("{address}:{times}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(p("server.log")).unwrap());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run {python}: {e}; install Python 3 (python3 on PATH, or set $PYTHON)")
        });
        let ready = p("ready");
        let log = p("server.log");
        let mut server = Scripted {
            child,
            port: 0,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(text) = fs::read_to_string(&ready) {
                server.port = text.trim().parse().expect("port number in the ready file");
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "scripted_smtpd.py exited at startup ({status}): {}; it needs Python 3 \
                     (python3 on PATH, or set $PYTHON)",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                panic!("scripted_smtpd.py did not listen within {START_TIMEOUT:?}");
            }
            sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Every accepted message, in the order received (each saved before its "250").
    pub(crate) fn messages(&self) -> Vec<Received> {
        read_dump(&self.dir.path().join("dump"))
    }

    /// One entry per read that held commands: their verbs in order, "MAIL RCPT DATA" for a
    /// pipelined group.
    pub(crate) fn command_reads(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// How many connections the client opened.
    pub(crate) fn sessions(&self) -> usize {
        fs::read_to_string(self.dir.path().join("sessions.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "connected")
            .count()
    }

    /// How many times the server hung up after its 354, as asked.
    pub(crate) fn drops(&self) -> usize {
        fs::read_to_string(self.dir.path().join("sessions.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("dropped after 354"))
            .count()
    }

    /// What the server wrote to stderr.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SHA-256 of the (first) certificate in a PEM text, of its DER bytes, as "AB:CD:...": what
/// `openssl x509 -noout -fingerprint -sha256` prints.
pub(crate) fn pem_sha256(pem: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate and its key, both PEM, and the CA certificate that issued it (if not itself).
fn make_cert(kind: ServerCert) -> (String, String, Option<String>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let names: Vec<String> = match kind {
        ServerCert::CaForOtherName => vec!["relay.uim.test".into()],
        _ => vec!["127.0.0.1".into(), "localhost".into()],
    };
    if kind == ServerCert::Simple {
        let made = rcgen::generate_simple_self_signed(names).expect("rcgen: certificate");
        return (made.cert.pem(), made.signing_key.serialize_pem(), None);
    }
    if kind == ServerCert::IssuedByOwnCa {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("rcgen: CA parameters");
        ca.distinguished_name
            .push(DnType::CommonName, "UIM intern CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("rcgen: CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("rcgen: CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let leaf = CertificateParams::new(names).expect("rcgen: parameters");
        let key = KeyPair::generate().expect("rcgen: key");
        let cert = leaf.signed_by(&key, &issuer).expect("rcgen: signed");
        return (cert.pem(), key.serialize_pem(), Some(ca_cert.pem()));
    }
    let mut params = CertificateParams::new(names).expect("rcgen: parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "relay.uim.test");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Uddannelsesministeriet");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = if kind == ServerCert::ExpiredCa {
        rcgen::date_time_ymd(2021, 1, 1)
    } else {
        rcgen::date_time_ymd(2120, 1, 1)
    };
    let key = KeyPair::generate().expect("rcgen: key");
    let cert = params.self_signed(&key).expect("rcgen: self-signed");
    (cert.pem(), key.serialize_pem(), None)
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The string literals of a small JSON document, in order, unescaped.
fn json_strings(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        loop {
            match chars.next().expect("unterminated JSON string") {
                '"' => break,
                '\\' => match chars.next().expect("bad JSON escape") {
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let code = u32::from_str_radix(&hex, 16).expect("bad \\u escape");
                        s.push(char::from_u32(code).expect("\\u escape outside the BMP"));
                    }
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    other => s.push(other), // \" \\ \/
                },
                other => s.push(other),
            }
        }
        out.push(s);
    }
    out
}
