//! TLS to a relay with its own certificate: pinning, `ca_file` with the relay's own certificate,
//! what `check-smtp` shows, and every refusal in plain words (aiosmtpd on 127.0.0.1); and the
//! same trust for the mailbox that `receipts fetch` reads (Dovecot on 127.0.0.1, see
//! `mailhost.rs`), named `imap_…`.

use crate::harness::Campaign;
use crate::mailhost::{ImapCert, MailHost, Plan};
use crate::servers::{Aiosmtpd, AiosmtpdOptions, ServerCert, TlsMode};
use crate::smtp::{small_for_smtp, use_tls_server, PASSWORD};

fn relay(cert: ServerCert, tls: TlsMode) -> Aiosmtpd {
    Aiosmtpd::start(AiosmtpdOptions {
        cert,
        require_starttls: tls == TlsMode::StartTls,
        tls,
        auth: Some(("rundbrev@uim.dk".into(), PASSWORD.into())),
        ..AiosmtpdOptions::default()
    })
}

fn campaign(server: &Aiosmtpd, security: &str, ca_file: bool, settings: &str) -> Campaign {
    let mut c = small_for_smtp();
    use_tls_server(&c, server, security, ca_file, settings);
    c.set_env("RUNDBREV_SMTP_PASSWORD", PASSWORD);
    c
}

/// No enum's debug form, no rustls or webpki internals in what the clerk reads.
#[track_caller]
fn no_debug_text(text: &str) {
    for inner in [
        "CaUsedAsEndEntity",
        "Other(",
        "OtherError",
        "NotValidForName",
        "Expired",
    ] {
        assert!(!text.contains(inner), "{inner} in: {text}");
    }
}

#[test]
fn a_relay_certificate_marked_ca_is_refused_in_plain_words_and_pinning_it_delivers() {
    let server = relay(ServerCert::SelfSignedCa, TlsMode::StartTls);
    let sha = server.cert_sha256();
    let c = campaign(&server, "starttls", false, "");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("the server's certificate is a CA certificate");
    run.stderr_has(&format!("tls_pin_sha256 = \"{sha}\""));
    no_debug_text(&run.all());
    assert!(server.messages().is_empty());

    // check-smtp shows the certificate even though it is not trusted, so IT can confirm it.
    let run = c.run(&["check-smtp"]).expect(2);
    run.stdout_has("subject:  CN=relay.uim.test, O=Uddannelsesministeriet");
    run.stdout_has("issuer:   CN=relay.uim.test, O=Uddannelsesministeriet");
    run.stdout_has("names:    127.0.0.1, localhost");
    run.stdout_has("valid:    2020-01-01 00:00 UTC to 2120-01-01 00:00 UTC");
    run.stdout_has(&format!("SHA-256:  {sha}"));
    run.stdout_has("note:     self-signed, marked as a CA certificate");

    let pinned = campaign(
        &server,
        "starttls",
        false,
        &format!("tls_pin_sha256 = \"{sha}\""),
    );
    let run = pinned.run(&["check-smtp"]).expect(0);
    run.stdout_has(
        "STARTTLS started and the certificate matches tls_pin_sha256, logged in as rundbrev@uim.dk",
    );
    pinned.run(&["send", "--yes"]).expect(0);
    assert_eq!(server.messages().len(), 3);
    assert!(pinned.states().values().all(|s| s == "delivered"));
}

#[test]
fn a_pin_without_colons_in_lower_case_works_over_implicit_tls() {
    let server = relay(ServerCert::SelfSignedCa, TlsMode::Implicit);
    let sha = server.cert_sha256().replace(':', "").to_lowercase();
    let c = campaign(
        &server,
        "tls",
        false,
        &format!("tls_pin_sha256 = \"{sha}\""),
    );
    c.run(&["send", "--yes", "--only", "492"]).expect(0);
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn ca_file_holding_the_relays_own_ca_marked_certificate_is_trusted() {
    let server = relay(ServerCert::SelfSignedCa, TlsMode::StartTls);
    let c = campaign(&server, "starttls", true, "");
    let run = c.run(&["check-smtp"]).expect(0);
    run.stdout_has("STARTTLS started and the certificate verified");
    c.run(&["send", "--yes"]).expect(0);
    assert_eq!(server.messages().len(), 3);
}

#[test]
fn a_certificate_from_an_untrusted_ca_names_its_issuer_and_ca_file_with_that_ca_trusts_it() {
    let server = relay(ServerCert::IssuedByOwnCa, TlsMode::StartTls);
    let c = campaign(&server, "starttls", false, "");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("the server's certificate is not trusted: it was issued by \"CN=UIM intern CA\", which is not trusted by this computer; set ca_file to the PEM file of the CA that issued it");
    no_debug_text(&run.all());
    assert!(server.messages().is_empty());

    let c = campaign(
        &server,
        "starttls",
        false,
        &format!("ca_file = \"{}\"", server.issuer_ca_path().display()),
    );
    c.run(&["send", "--yes"]).expect(0);
    assert_eq!(server.messages().len(), 3);
}

#[test]
fn a_pin_trusts_only_that_certificate() {
    let server = relay(ServerCert::Simple, TlsMode::StartTls);
    let other = vec!["AB"; 32].join(":");
    // ca_file would trust the server's certificate, but the pin names another one.
    let c = campaign(
        &server,
        "starttls",
        true,
        &format!("tls_pin_sha256 = \"{other}\""),
    );
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has(&format!(
        "the server's certificate is not the pinned one: tls_pin_sha256 is {other}, but the server showed a certificate with SHA-256 {}",
        server.cert_sha256()
    ));
    no_debug_text(&run.all());
    assert!(server.messages().is_empty());
    assert!(c.states().values().all(|s| s == "pending"));
}

#[test]
fn a_pinned_certificate_must_still_match_the_host_name_unless_that_check_is_turned_off() {
    let server = relay(ServerCert::CaForOtherName, TlsMode::StartTls);
    let pin = format!("tls_pin_sha256 = \"{}\"", server.cert_sha256());
    let c = campaign(&server, "starttls", false, &pin);
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has(
        "the server's certificate is not valid for the name \"localhost\": it is made for relay.uim.test",
    );
    no_debug_text(&run.all());
    assert!(server.messages().is_empty());

    let c = campaign(
        &server,
        "starttls",
        false,
        &format!("{pin}\ntls_check_host_name = false"),
    );
    let run = c.run(&["check-smtp"]).expect(0);
    run.stderr_has("the server's host name is not checked against its certificate");
    let run = c.run(&["send", "--yes"]).expect(0);
    run.stderr_has("the server's host name is not checked against its certificate");
    assert_eq!(server.messages().len(), 3);
}

#[test]
fn turning_the_host_name_check_off_without_a_pin_is_refused() {
    let server = relay(ServerCert::Simple, TlsMode::StartTls);
    let c = campaign(&server, "starttls", true, "tls_check_host_name = false");
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("tls_check_host_name");
    run.stderr_has("can only be turned off together with tls_pin_sha256");
}

#[test]
fn an_expired_pinned_certificate_is_refused_with_its_date() {
    let server = relay(ServerCert::ExpiredCa, TlsMode::StartTls);
    let c = campaign(
        &server,
        "starttls",
        false,
        &format!("tls_pin_sha256 = \"{}\"", server.cert_sha256()),
    );
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("the server's certificate expired on 2021-01-01 00:00 UTC");
    no_debug_text(&run.all());
    assert!(server.messages().is_empty());
}

#[test]
fn an_expired_certificate_in_ca_file_is_refused_with_its_date() {
    let server = relay(ServerCert::ExpiredCa, TlsMode::Implicit);
    let c = campaign(&server, "tls", true, "");
    let run = c.run(&["check-smtp"]).expect(2);
    run.stderr_has("the server's certificate expired on 2021-01-01 00:00 UTC");
    no_debug_text(&run.all());
}

#[test]
fn a_server_without_starttls_is_refused_before_the_password_goes_out() {
    let server = Aiosmtpd::start(AiosmtpdOptions {
        auth: Some(("rundbrev@uim.dk".into(), PASSWORD.into())),
        ..AiosmtpdOptions::default()
    });
    let c = campaign(&server, "starttls", false, "");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("the server does not offer STARTTLS");
    assert!(!server.log().contains(">> b'AUTH"), "{}", server.log());
    assert!(server.messages().is_empty());
}

#[test]
fn a_malformed_pin_is_a_config_error() {
    let server = relay(ServerCert::Simple, TlsMode::StartTls);
    let c = campaign(&server, "starttls", false, "tls_pin_sha256 = \"AB:CD\"");
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("tls_pin_sha256");
    run.stderr_has("it has 4 hex digits, a SHA-256 has 64");
}

// ---- The mailbox that `receipts fetch` reads --------------------------------------------------

const IMAP_USER: &str = "uim@uim.dk";
const IMAP_PASSWORD: &str = "Kodeord-æøå-1";

/// Dovecot alone, with an empty mailbox for `IMAP_USER`, showing `cert`.
fn mailbox(cert: ImapCert) -> MailHost {
    MailHost::imap_only(
        &Plan {
            mailboxes: &[IMAP_USER],
            bouncing: &[],
            imap_user: IMAP_USER,
            imap_password: IMAP_PASSWORD,
        },
        cert,
    )
}

/// The small campaign, sent to its outbox (so that there is a ledger to record reports in), then
/// given a `[receipts.imap]` section for `host` over `security` ("starttls" or "tls") with
/// `settings` added to it.
fn reading(host: &MailHost, security: &str, settings: &str) -> Campaign {
    let mut c = Campaign::small();
    c.run(&["send", "--yes"]).expect(0);
    let port = if security == "tls" {
        host.imaps_port()
    } else {
        host.imap_port()
    };
    let config = c.read("config.toml");
    c.write(
        "config.toml",
        format!(
            "{config}\n[receipts.imap]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"{security}\"\n\
             user = \"{IMAP_USER}\"\nconnect_timeout_secs = 5\ncommand_timeout_secs = 10\n{settings}\n"
        ),
    );
    c.set_env("RUNDBREV_IMAP_PASSWORD", IMAP_PASSWORD);
    c
}

/// Fails unless the mailbox was read to its end: TLS, login and EXAMINE all went through.
#[track_caller]
fn read_the_mailbox(c: &Campaign, host: &MailHost) {
    let run = c.run(&["receipts", "fetch"]);
    assert_eq!(
        run.code,
        0,
        "--- stdout\n{}\n--- stderr\n{}\n--- dovecot\n{}",
        run.stdout,
        run.stderr,
        host.imap_log()
    );
    run.stdout_has("INBOX: no new messages.");
}

/// Dovecot logs every login; none means the password never went out.
#[track_caller]
fn no_login(host: &MailHost) {
    let log = host.imap_log();
    assert!(!log.contains("Login: user=<"), "{log}");
}

#[test]
fn imap_a_self_signed_certificate_is_refused_in_plain_words_and_pinning_it_reads_the_mailbox() {
    let host = mailbox(ImapCert::SelfSigned);
    let sha = host.imap_cert_sha256();
    let c = reading(&host, "starttls", "");
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has(&format!(
        "TLS problem with the IMAP server: the server's certificate is not trusted: it is self-signed and not trusted by this computer; set ca_file to the PEM file of the CA that issued it, or if it is your mail server's own certificate, confirm its SHA-256 fingerprint {sha} with IT and pin it in [receipts.imap]: tls_pin_sha256 = \"{sha}\""
    ))
    .stderr_has("Nothing was recorded");
    no_debug_text(&run.all());
    no_login(&host);

    // The pin alone (no ca_file) trusts it.
    let pinned = reading(&host, "starttls", &format!("tls_pin_sha256 = \"{sha}\""));
    read_the_mailbox(&pinned, &host);
}

#[test]
fn imap_a_pin_without_colons_in_lower_case_in_a_list_works_over_implicit_tls() {
    let host = mailbox(ImapCert::SelfSigned);
    let sha = host.imap_cert_sha256().replace(':', "").to_lowercase();
    let other = vec!["AB"; 32].join(":");
    let c = reading(
        &host,
        "tls",
        &format!("tls_pin_sha256 = [\"{other}\", \"{sha}\"]"),
    );
    read_the_mailbox(&c, &host);
}

#[test]
fn imap_a_wrong_pin_names_both_fingerprints_and_the_section_and_no_password_goes_out() {
    let host = mailbox(ImapCert::FromOwnCa);
    let other = vec!["AB"; 32].join(":");
    // ca_file would trust the server's certificate, but the pin names another one.
    let c = reading(
        &host,
        "starttls",
        &format!(
            "ca_file = \"{}\"\ntls_pin_sha256 = \"{other}\"",
            host.ca_file().display()
        ),
    );
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has(&format!(
        "TLS problem with the IMAP server: the server's certificate is not the pinned one: tls_pin_sha256 is {other}, but the server showed a certificate with SHA-256 {}",
        host.imap_cert_sha256()
    ))
    .stderr_has("confirm the new fingerprint with IT and update tls_pin_sha256 in [receipts.imap]")
    .stderr_has("Nothing was recorded");
    no_debug_text(&run.all());
    no_login(&host);

    // The same ca_file without the pin reads the mailbox: it was the pin that refused.
    let c = reading(
        &host,
        "starttls",
        &format!("ca_file = \"{}\"", host.ca_file().display()),
    );
    read_the_mailbox(&c, &host);
}

#[test]
fn imap_a_pinned_certificate_for_another_name_is_trusted_only_with_the_host_name_check_off() {
    let host = mailbox(ImapCert::SelfSignedForOtherName);
    let pin = format!("tls_pin_sha256 = \"{}\"", host.imap_cert_sha256());
    let c = reading(&host, "starttls", &pin);
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has(
        "the server's certificate is not valid for the name \"127.0.0.1\": it is made for imap.uim.test; set host in [receipts.imap] to one of those names (or, as the certificate is pinned, turn the name check off there with tls_check_host_name = false)",
    );
    no_debug_text(&run.all());
    no_login(&host);

    let c = reading(
        &host,
        "starttls",
        &format!("{pin}\ntls_check_host_name = false"),
    );
    read_the_mailbox(&c, &host);
    c.run(&["receipts", "fetch"])
        .expect(0)
        .stderr_has("the server's host name is not checked against its certificate (tls_check_host_name = false)");

    // Without a pin, turning the check off is refused before anything goes to the server.
    let c = reading(&host, "starttls", "tls_check_host_name = false");
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has("receipts.imap.tls_check_host_name")
        .stderr_has("can only be turned off together with tls_pin_sha256");
}

#[test]
fn imap_a_malformed_pin_is_a_config_error_naming_its_key() {
    let host = mailbox(ImapCert::SelfSigned);
    let c = reading(&host, "starttls", "tls_pin_sha256 = \"AB:CD\"");
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has("receipts.imap.tls_pin_sha256").stderr_has(
        "\"AB:CD\" is not a SHA-256 fingerprint: it has 4 hex digits, a SHA-256 has 64",
    );
    no_login(&host);
}
