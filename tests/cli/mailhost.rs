//! A real mail host on 127.0.0.1 for the receipts tests: a Postfix relay and a Dovecot IMAP
//! server, each configured in the test's own temporary folder.
//!
//! Postfix (`postfix -c DIR start`, its own config, queue and data directories) takes letters on
//! a loopback port, delivers the domains given as mailboxes into Maildir folders itself (so its
//! DSNs say "delivered"), bounces the domains given as bouncing (an `error:` transport, after its
//! 250), and sends its reports to the sender's mailbox. Dovecot (`dovecot -F -c FILE`) serves
//! those Maildir folders over IMAP with STARTTLS and over implicit TLS, with a certificate from a
//! CA made here (its PEM file is the client's `ca_file`) or, for the TLS tests, one of the other
//! certificates of [`ImapCert`], and one user from a passwd-file. [`MailHost::imap_only`] starts
//! Dovecot alone. Both are stopped when the [`MailHost`] is dropped, also when a test fails. The system's own Postfix and Dovecot setup
//! (/etc/postfix, /etc/dovecot) is neither read nor changed. Needs root (Postfix's daemons drop
//! to the `postfix` user; deliveries are written as `nobody`) and the packages `postfix` and
//! `dovecot-imapd`, which `.ci/install-test-servers` installs.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::servers::{free_port, pem_sha256};

const INSTALL_HINT: &str =
    "run `bash .ci/install-test-servers` as root (it installs postfix and dovecot-imapd)";
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The user that Postfix delivers as and Dovecot reads as.
const NOBODY: u32 = 65534;

/// What the relay does with each domain.
pub(crate) struct Plan<'a> {
    /// Addresses whose mail is delivered into a mailbox (their domains are the relay's own).
    pub mailboxes: &'a [&'a str],
    /// Domains whose mail is accepted with 250 and then bounced with this 5.x.x reason.
    pub bouncing: &'a [(&'a str, &'a str)],
    /// The IMAP user (one of `mailboxes`) and password.
    pub imap_user: &'a str,
    pub imap_password: &'a str,
}

/// The certificate Dovecot shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ImapCert {
    /// For 127.0.0.1 and localhost, signed by a CA made here ([`MailHost::ca_file`]).
    #[default]
    FromOwnCa,
    /// Self-signed for 127.0.0.1 and localhost, as a mail server's own certificate often is.
    SelfSigned,
    /// Self-signed for imap.uim.test only: a name the client does not connect to.
    SelfSignedForOtherName,
}

/// Postfix and Dovecot, running until dropped.
pub(crate) struct MailHost {
    dir: TempDir,
    smtp_port: u16,
    imap_port: u16,
    imaps_port: u16,
    dovecot: Option<Child>,
    postfix_running: bool,
}

impl MailHost {
    pub(crate) fn start(plan: &Plan<'_>) -> MailHost {
        MailHost::start_with(plan, ImapCert::FromOwnCa, true)
    }

    /// Dovecot alone, showing `cert`, for a mailbox that is only read: no relay.
    pub(crate) fn imap_only(plan: &Plan<'_>, cert: ImapCert) -> MailHost {
        MailHost::start_with(plan, cert, false)
    }

    fn start_with(plan: &Plan<'_>, cert: ImapCert, relay: bool) -> MailHost {
        assert!(
            running_as_root(),
            "the relay and IMAP tests start Postfix and Dovecot and must run as root; {INSTALL_HINT}"
        );
        let programs: &[&str] = if relay {
            &["/usr/sbin/postfix", "/usr/sbin/dovecot"]
        } else {
            &["/usr/sbin/dovecot"]
        };
        for program in programs {
            assert!(
                Path::new(program).is_file(),
                "{program} is missing: {INSTALL_HINT}"
            );
        }
        assert!(
            Path::new("/usr/lib/dovecot/imap").is_file(),
            "Dovecot's IMAP server (/usr/lib/dovecot/imap) is missing: {INSTALL_HINT}"
        );
        let dir = tempfile::Builder::new()
            .prefix("rundbrev-mailhost")
            .tempdir()
            .unwrap();
        // Postfix's daemons and the delivery agent (as nobody) must get through.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut host = MailHost {
            smtp_port: free_port(),
            imap_port: free_port(),
            imaps_port: free_port(),
            dir,
            dovecot: None,
            postfix_running: false,
        };
        fs::create_dir(host.maildirs()).unwrap();
        fs::set_permissions(host.maildirs(), fs::Permissions::from_mode(0o777)).unwrap();
        host.start_dovecot(plan, cert);
        if relay {
            host.start_postfix(plan);
        }
        host
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn maildirs(&self) -> PathBuf {
        self.path("vmail")
    }

    pub(crate) fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Dovecot's port for IMAP with STARTTLS.
    pub(crate) fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// Dovecot's port for IMAP over TLS from the first byte.
    pub(crate) fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    /// The CA that signed Dovecot's certificate, PEM: the client's `ca_file`. Only with
    /// [`ImapCert::FromOwnCa`].
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.path("dovecot/ca.pem")
    }

    /// SHA-256 of Dovecot's certificate (DER), as "AB:CD:…".
    pub(crate) fn imap_cert_sha256(&self) -> String {
        pem_sha256(&fs::read_to_string(self.path("dovecot/cert.pem")).unwrap())
    }

    /// Postfix's log, for failure messages.
    pub(crate) fn relay_log(&self) -> String {
        fs::read_to_string(self.path("postfix/maillog")).unwrap_or_default()
    }

    /// Dovecot's log, for failure messages.
    pub(crate) fn imap_log(&self) -> String {
        fs::read_to_string(self.path("dovecot/dovecot.log")).unwrap_or_default()
    }

    /// The files of one address's Maildir (`new` and `cur`), as file names.
    pub(crate) fn mailbox_files(&self, address: &str) -> Vec<String> {
        let (local, domain) = address.split_once('@').unwrap();
        let base = self.maildirs().join(domain).join(local);
        let mut names = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = fs::read_dir(base.join(sub)) {
                names.extend(
                    entries.map(|e| format!("{sub}/{}", e.unwrap().file_name().to_string_lossy())),
                );
            }
        }
        names.sort();
        names
    }

    /// Makes Dovecot number `address`'s mailbox anew, with another UIDVALIDITY, as a server does
    /// after a restore: its UID list and index files are removed.
    pub(crate) fn renumber(&self, address: &str) {
        let (local, domain) = address.split_once('@').unwrap();
        let base = self.maildirs().join(domain).join(local);
        // Dovecot takes the time in seconds as the new UIDVALIDITY.
        sleep(Duration::from_millis(1100));
        for entry in fs::read_dir(&base).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("dovecot") && path.is_file() {
                fs::remove_file(&path).unwrap();
            }
        }
    }

    /// Waits until `address`'s mailbox holds `n` messages, at most `limit`.
    #[track_caller]
    pub(crate) fn wait_for_messages(&self, address: &str, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let have = self.mailbox_files(address).len();
            if have >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{address} got {have} of {n} messages within {limit:?}\n--- relay log\n{}",
                self.relay_log()
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn start_dovecot(&mut self, plan: &Plan<'_>, which: ImapCert) {
        let d = self.path("dovecot");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        let (ca, cert, key) = certificates(which);
        if let Some(ca) = ca {
            fs::write(d.join("ca.pem"), ca).unwrap();
        }
        fs::write(d.join("cert.pem"), cert).unwrap();
        fs::write(d.join("key.pem"), key).unwrap();
        fs::write(
            d.join("passwd"),
            format!("{}:{{PLAIN}}{}\n", plan.imap_user, plan.imap_password),
        )
        .unwrap();
        let d = d.display();
        let vmail = self.maildirs();
        let vmail = vmail.display();
        let port = self.imap_port;
        let tls_port = self.imaps_port;
        let config = format!(
            "base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
mail_location = maildir:{vmail}/%d/%n
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = uid={NOBODY} gid={NOBODY} home={vmail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"
        );
        let file = self.path("dovecot/dovecot.conf");
        fs::write(&file, config).unwrap();
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.path("dovecot/stdout")).unwrap())
            .stderr(fs::File::create(self.path("dovecot/stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dovecot: {e}; {INSTALL_HINT}"));
        self.dovecot = Some(child);
        self.wait_port(port, "dovecot", "");
        self.wait_port(tls_port, "dovecot", "");
    }

    fn start_postfix(&mut self, plan: &Plan<'_>) {
        let p = self.path("postfix");
        for sub in ["", "etc", "queue", "data"] {
            fs::create_dir_all(p.join(sub)).unwrap();
            fs::set_permissions(p.join(sub), fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Postfix's data directory must belong to its own user.
        let chown = Command::new("chown")
            .arg("postfix")
            .arg(p.join("data"))
            .status()
            .unwrap();
        assert!(
            chown.success(),
            "chown postfix failed: is Postfix installed? {INSTALL_HINT}"
        );

        let domain = |a: &str| a.split_once('@').unwrap().1.to_string();
        let mut own: Vec<String> = plan.mailboxes.iter().map(|a| domain(a)).collect();
        own.sort();
        own.dedup();
        let bouncing: Vec<&str> = plan.bouncing.iter().map(|(d, _)| *d).collect();
        let mailboxes: String = plan
            .mailboxes
            .iter()
            .map(|a| {
                let (local, domain) = a.split_once('@').unwrap();
                format!("{a} {domain}/{local}/\n")
            })
            .collect();
        let transport: String = plan
            .bouncing
            .iter()
            .map(|(d, why)| format!("{d} error:{why}\n"))
            .collect();
        fs::write(p.join("etc/vmailbox"), mailboxes).unwrap();
        fs::write(p.join("etc/transport"), transport).unwrap();

        let dir = p.display();
        let tmp = self.dir.path().display();
        let vmail = self.maildirs();
        let vmail = vmail.display();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {tmp}
myhostname = relay.rundbrev.test
mydomain = rundbrev.test
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# Take every letter with 250 first, as a ministry's relay does; bounce later.
smtpd_reject_unlisted_recipient = no
relay_domains = {relay}
transport_maps = texthash:{dir}/etc/transport
virtual_mailbox_domains = {own}
virtual_mailbox_base = {vmail}
virtual_mailbox_maps = texthash:{dir}/etc/vmailbox
virtual_uid_maps = static:{NOBODY}
virtual_gid_maps = static:{NOBODY}
disable_dns_lookups = yes
smtputf8_enable = no
biff = no
# A quick queue, so that the test is done in seconds.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 10s
bounce_queue_lifetime = 10s
",
            relay = bouncing.join(", "),
            own = own.join(", "),
        );
        fs::write(p.join("etc/main.cf"), main_cf).unwrap();
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
",
            port = self.smtp_port
        );
        fs::write(p.join("etc/master.cf"), master_cf).unwrap();
        let out = self.postfix("start");
        self.postfix_running = true;
        let port = self.smtp_port;
        self.wait_port(port, "postfix", &out);
    }

    /// Runs `postfix -c DIR <command>`, and returns what it printed.
    fn postfix(&self, command: &str) -> String {
        let output = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.path("postfix/etc"))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run postfix: {e}; {INSTALL_HINT}"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// What the servers said, for a failure message.
    fn logs(&self) -> String {
        format!(
            "--- dovecot\n{}{}\n--- postfix\n{}",
            fs::read_to_string(self.path("dovecot/stderr")).unwrap_or_default(),
            self.imap_log(),
            self.relay_log()
        )
    }

    fn wait_port(&mut self, port: u16, name: &str, output: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(child) = self.dovecot.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{name} exited at startup ({status}):\n{output}{}",
                        self.logs()
                    );
                }
            }
            sleep(Duration::from_millis(50));
        }
        panic!(
            "{name} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}:\n{output}{}",
            self.logs()
        );
    }
}

impl Drop for MailHost {
    fn drop(&mut self) {
        if self.postfix_running {
            let _ = self.postfix("stop");
            // `stop` waits for the master; make sure, in case it could not.
            if let Ok(pid) = fs::read_to_string(self.path("postfix/queue/pid/master.pid")) {
                if let Ok(pid) = pid.trim().parse::<u32>() {
                    let _ = Command::new("kill")
                        .arg("-9")
                        .arg(pid.to_string())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        if let Some(mut child) = self.dovecot.take() {
            // SIGTERM lets the master stop its children; SIGKILL would leave them running.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The CA that signed the certificate (if it is not self-signed), the certificate and its key,
/// all PEM.
fn certificates(which: ImapCert) -> (Option<String>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let self_signed = |name: &str, names: &[&str]| {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (None, cert.pem(), key.serialize_pem())
    };
    match which {
        ImapCert::FromOwnCa => {}
        ImapCert::SelfSigned => return self_signed("imap.uim.test", &["127.0.0.1", "localhost"]),
        ImapCert::SelfSignedForOtherName => {
            return self_signed("imap.uim.test", &["imap.uim.test"])
        }
    }
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rundbrev test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (Some(ca.pem()), cert.pem(), key.serialize_pem())
}

fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}
