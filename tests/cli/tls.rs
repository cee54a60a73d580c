//! TLS to a relay with its own certificate: pinning, `ca_file` with the relay's own certificate,
//! what `check-smtp` shows, and every refusal in plain words (aiosmtpd on 127.0.0.1).

use crate::harness::Campaign;
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
