//! Which server certificates the mail clients (SMTP and IMAP) trust, and a certificate described
//! in words.
//!
//! A certificate is trusted when it chains to a system root or to a certificate in `ca_file`;
//! when it is byte for byte a certificate listed in `ca_file` (a server's own self-signed
//! certificate, which TLS libraries refuse as a server certificate when it is marked CA:TRUE);
//! or, when `tls_pin_sha256` is set, only when its SHA-256 (of the whole certificate or of its
//! public key) is pinned. In every case the server must prove in the handshake that it holds the
//! certificate's key, the certificate must be within its validity period, and the host name is
//! checked unless the user turned that off for a pinned certificate. Every refusal is put into
//! words that name the certificate's issuer, names, dates or fingerprint.
//!
//! Shared by `smtp` and `imap`, and imports neither: each client passes in what the user set
//! (`Trust`) and where it is set (`Hints`, for the words of a refusal). It speaks no protocol and
//! opens no connection.
//!
//! It must not: accept a certificate when any of those checks fails, read the clock (rustls
//! passes the time in), or print anything.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls::{OtherError, SignatureScheme};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A pinned SHA-256: of the certificate (DER) or of its public key (SubjectPublicKeyInfo).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Reads 64 hex digits, with or without colons (or spaces) between the bytes, any case.
    pub(crate) fn parse(text: &str) -> Result<Fingerprint, String> {
        let digits: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
        if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "\"{text}\" is not a SHA-256 fingerprint: \"{bad}\" is not a hex digit (0-9, A-F)"
            ));
        }
        if digits.len() != 64 {
            return Err(format!(
                "\"{text}\" is not a SHA-256 fingerprint: it has {} hex digits, a SHA-256 has 64",
                digits.len()
            ));
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("\"{text}\": {e}"))?;
        }
        Ok(Fingerprint(bytes))
    }

    fn matches(&self, certificate: &[u8]) -> bool {
        if Sha256::digest(certificate).as_slice() == self.0 {
            return true;
        }
        X509Certificate::from_der(certificate)
            .is_ok_and(|(_, c)| Sha256::digest(c.public_key().raw).as_slice() == self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fingerprint(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// "AB:CD:…": the usual way fingerprints are shown (and what `openssl x509 -fingerprint` prints).
fn fingerprint(digest: &[u8]) -> String {
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What a server certificate says, in words, for the operator and IT to compare and pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses it is valid for (subject alternative names).
    pub names: Vec<String>,
    /// "2026-11-30 12:00 UTC".
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the certificate, "AB:CD:…": what `tls_pin_sha256` takes.
    pub sha256: String,
    /// SHA-256 of its public key (stays the same when a certificate is renewed with the same key).
    pub key_sha256: String,
    /// Marked CA:TRUE.
    pub is_ca: bool,
    pub self_signed: bool,
}

impl CertificateInfo {
    /// None when the bytes are not an X.509 certificate.
    pub(crate) fn from_der(der: &[u8]) -> Option<CertificateInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => names.push((*d).to_owned()),
                    GeneralName::IPAddress(ip) => names.push(ip_text(ip)),
                    _ => {}
                }
            }
        }
        let when = |t: &x509_parser::time::ASN1Time| {
            chrono::DateTime::from_timestamp(t.timestamp(), 0)
                .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| t.to_string())
        };
        let subject = cert.subject().to_string();
        let issuer = cert.issuer().to_string();
        Some(CertificateInfo {
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
            subject: if subject.is_empty() {
                "(empty)".into()
            } else {
                subject
            },
            issuer: if issuer.is_empty() {
                "(empty)".into()
            } else {
                issuer
            },
            names,
            not_before: when(&cert.validity().not_before),
            not_after: when(&cert.validity().not_after),
            sha256: fingerprint(&Sha256::digest(der)),
            key_sha256: fingerprint(&Sha256::digest(cert.public_key().raw)),
            is_ca: cert.is_ca(),
        })
    }

    /// The names, or a note that there are none.
    pub(crate) fn names_text(&self) -> String {
        if self.names.is_empty() {
            "no host names (no subject alternative names)".to_owned()
        } else {
            self.names.join(", ")
        }
    }

    /// Lines to show the certificate (as `check-smtp` does), each "label: value".
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut kind = Vec::new();
        if self.self_signed {
            kind.push("self-signed");
        }
        if self.is_ca {
            kind.push("marked as a CA certificate");
        }
        let mut lines = vec![
            format!("subject:  {}", self.subject),
            format!("issuer:   {}", self.issuer),
            format!("names:    {}", self.names_text()),
            format!("valid:    {} to {}", self.not_before, self.not_after),
            format!("SHA-256:  {}", self.sha256),
            format!("key SHA-256: {}", self.key_sha256),
        ];
        if !kind.is_empty() {
            lines.push(format!("note:     {}", kind.join(", ")));
        }
        lines
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes")).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")).to_string(),
        _ => format!("IP address of {} bytes", bytes.len()),
    }
}

/// What the client trusts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trust {
    /// Extra trusted certificates, PEM: CA certificates, or the server's own certificate.
    pub ca_file: Option<PathBuf>,
    /// When not empty, only a certificate matching one of these is trusted.
    pub pins: Vec<Fingerprint>,
    /// False only by the user's explicit choice, and only with a pin.
    pub skip_host_name_check: bool,
}

/// The certificate the server showed in the last handshake, kept for error messages and for
/// showing it (`check-smtp`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl Seen {
    pub(crate) fn certificate(&self) -> Option<CertificateInfo> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .and_then(|der| CertificateInfo::from_der(der))
    }
}

/// Where a client's trust is set, for the hints in a refusal: each client names its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hints {
    /// The config section that holds `host`, `ca_file` and `tls_pin_sha256`:
    /// "[transport.smtp]".
    pub section: &'static str,
    /// What the server is to the user, as in "your relay's own certificate": "relay".
    pub server: &'static str,
    /// A command that shows the server's certificate, if there is one: "rundbrev check-smtp".
    pub shows_certificate: Option<&'static str>,
}

/// Why our verifier refused a certificate, where rustls has no words of its own.
#[derive(Debug)]
enum Refusal {
    NotPinned,
    CaAsServerCertificate,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotPinned => "the certificate is not the pinned one",
            Refusal::CaAsServerCertificate => "a CA certificate is used as the server certificate",
        })
    }
}

impl StdError for Refusal {}

fn refuse(why: Refusal) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(why))))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, loaded once per run.
fn system_roots() -> &'static Vec<CertificateDer<'static>> {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The certificates in a PEM file.
fn read_pem(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {shown}: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ca_file {shown} is not a valid PEM file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "ca_file {shown} holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)"
        ));
    }
    Ok(certs)
}

/// A rustls client configuration that trusts as described in the module comment, and the slot
/// where it keeps the certificate the server shows.
pub(crate) fn client_config(trust: &Trust) -> Result<(Arc<ClientConfig>, Seen), String> {
    let (verifier, seen) = verifier(trust)?;
    let config = ClientConfig::builder_with_provider(Arc::clone(&verifier.provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}

/// The verifier for `trust`, and the slot where it keeps the certificate the server shows.
fn verifier(trust: &Trust) -> Result<(Verifier, Seen), String> {
    let own = match &trust.ca_file {
        Some(path) => read_pem(path)?,
        None => Vec::new(),
    };
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    let (_, unusable) = roots.add_parsable_certificates(own.iter().cloned());
    if unusable > 0 && own.len() == unusable && trust.pins.is_empty() {
        if let Some(path) = &trust.ca_file {
            return Err(format!(
                "ca_file {} holds no certificate that TLS can use",
                path.display()
            ));
        }
    }
    let provider = provider();
    let chain = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("cannot set up certificate checking: {e}"))?,
        )
    };
    let seen = Seen::default();
    let verifier = Verifier {
        chain,
        own,
        pins: trust.pins.clone(),
        // The host name check is skipped only by the user's choice, and only with a pin.
        check_host_name: !trust.skip_host_name_check || trust.pins.is_empty(),
        provider,
        seen: seen.clone(),
    };
    Ok((verifier, seen))
}

#[derive(Debug)]
struct Verifier {
    /// Chain checking against the system roots and `ca_file`; None when there are no roots.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates in `ca_file`: one of them shown as the server's own is trusted as such.
    own: Vec<CertificateDer<'static>>,
    pins: Vec<Fingerprint>,
    check_host_name: bool,
    provider: Arc<CryptoProvider>,
    seen: Seen,
}

impl Verifier {
    /// For a certificate trusted as itself (pinned, or listed in `ca_file`): its dates.
    fn check_dates(end_entity: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
        let (_, cert) = X509Certificate::from_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now < cert.validity().not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        if now > cert.validity().not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        Ok(())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        {
            let mut slot = self.seen.0.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(end_entity.clone().into_owned());
        }
        let pinned = if self.pins.is_empty() {
            self.own.iter().any(|c| c.as_ref() == end_entity.as_ref())
        } else if self.pins.iter().any(|p| p.matches(end_entity)) {
            true
        } else {
            return Err(refuse(Refusal::NotPinned));
        };
        if pinned {
            Self::check_dates(end_entity, now)?;
            if self.check_host_name {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
            }
            return Ok(ServerCertVerified::assertion());
        }
        let Some(chain) = &self.chain else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        chain
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                // webpki's words for a CA:TRUE end-entity certificate reach us as an opaque
                // "other" error; say what it is.
                rustls::Error::InvalidCertificate(CertificateError::Other(_))
                    if CertificateInfo::from_der(end_entity).is_some_and(|c| c.is_ca) =>
                {
                    refuse(Refusal::CaAsServerCertificate)
                }
                // A self-signed certificate (not trusted itself) whose name a trusted certificate
                // happens to bear too, as Debian's own "snakeoil" certificate (CN=localhost or
                // the machine's name) among the system's: webpki tries that one's key on the
                // signature and reports the mismatch. It did not sign it, so nothing trusted did.
                rustls::Error::InvalidCertificate(
                    CertificateError::BadSignature
                    | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. },
                ) if CertificateInfo::from_der(end_entity).is_some_and(|c| c.self_signed) => {
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A failed TLS handshake in plain words: the rustls error inside `error` put into words by
/// `describe`, or the I/O error as it is when there is none.
pub(crate) fn describe_handshake(
    error: &std::io::Error,
    seen: Option<&CertificateInfo>,
    host: &str,
    trust: &Trust,
    hints: &Hints,
) -> String {
    match rustls_error_in(error) {
        Some(tls) => describe(tls, seen, host, trust, hints),
        None => format!("the TLS handshake failed: {error}"),
    }
}

/// The rustls error an error was caused by, however deep it is wrapped.
fn rustls_error_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // io::Error::source() skips the wrapped error itself; look inside.
        if let Some(found) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A rustls error in plain words. `seen` is the certificate the server showed, `host` the
/// name it was checked against, `trust` what was trusted, `hints` where the user sets it.
pub(crate) fn describe(
    error: &rustls::Error,
    seen: Option<&CertificateInfo>,
    host: &str,
    trust: &Trust,
    hints: &Hints,
) -> String {
    use CertificateError as C;
    let trusted_by = match &trust.ca_file {
        Some(path) => format!("by this computer or by ca_file {}", path.display()),
        None => "by this computer".to_owned(),
    };
    let issuer = seen.map_or_else(
        || "an unknown issuer".to_owned(),
        |c| format!("\"{}\"", c.issuer),
    );
    let sha = seen.map_or_else(String::new, |c| c.sha256.clone());
    let Hints {
        section,
        server,
        shows_certificate,
    } = hints;
    let pin_hint = |what: &str| {
        match (sha.is_empty(), shows_certificate) {
        (true, Some(command)) => format!("{what} run {command} to see the certificate's SHA-256 fingerprint and pin it with tls_pin_sha256 in {section}"),
        (true, None) => format!("{what} ask IT for its SHA-256 fingerprint and pin it with tls_pin_sha256 in {section}"),
        (false, _) => format!("{what} confirm its SHA-256 fingerprint {sha} with IT and pin it in {section}: tls_pin_sha256 = \"{sha}\""),
    }
    };
    let rustls::Error::InvalidCertificate(problem) = error else {
        return match error {
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                "the server did not answer with TLS (for a plain or STARTTLS port use security \"starttls\")".to_owned()
            }
            rustls::Error::AlertReceived(alert) => format!(
                "the server broke off the TLS handshake (TLS alert number {}); it may want a TLS version or client certificate that rundbrev does not offer",
                u8::from(*alert)
            ),
            rustls::Error::PeerIncompatible(_) => {
                "the server has no TLS version or cipher in common with rundbrev (it may only offer outdated ones)".to_owned()
            }
            other => format!("the TLS handshake failed: {other}"),
        };
    };
    match problem {
        C::Other(OtherError(inner)) => match inner.downcast_ref::<Refusal>() {
            Some(Refusal::NotPinned) => {
                let pins: Vec<String> = trust.pins.iter().map(Fingerprint::to_string).collect();
                format!(
                    "the server's certificate is not the pinned one: tls_pin_sha256 is {}, but the server showed a certificate with SHA-256 {sha} (its key's SHA-256 is {}); if the {server}'s certificate was renewed, confirm the new fingerprint with IT and update tls_pin_sha256 in {section}",
                    pins.join(" or "),
                    seen.map_or("unknown", |c| c.key_sha256.as_str()),
                )
            }
            Some(Refusal::CaAsServerCertificate) => format!(
                "the server's certificate is a CA certificate (marked CA:TRUE, as `openssl req -x509` makes them by default), which TLS does not accept as a server's own certificate; {}",
                pin_hint(&format!("if this is your {server}'s own certificate,"))
            ),
            None => "the server's certificate could not be verified (it has an unusual form that TLS cannot check)".to_owned(),
        },
        C::UnknownIssuer => {
            let how = if seen.is_some_and(|c| c.self_signed) {
                "it is self-signed and not trusted".to_owned()
            } else {
                format!("it was issued by {issuer}, which is not trusted")
            };
            format!(
                "the server's certificate is not trusted: {how} {trusted_by}; set ca_file to the PEM file of the CA that issued it, or {}",
                pin_hint(&format!("if it is your {server}'s own certificate,"))
            )
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the server's certificate is not valid for the name \"{host}\": it is made for {}; set host in {section} to one of those names{}",
            seen.map_or_else(|| "other names".to_owned(), CertificateInfo::names_text),
            if trust.pins.is_empty() {
                ""
            } else {
                " (or, as the certificate is pinned, turn the name check off there with tls_check_host_name = false)"
            }
        ),
        C::Expired | C::ExpiredContext { .. } => match seen {
            Some(c) => format!("the server's certificate expired on {}; the {server} needs a new certificate", c.not_after),
            None => "the server's certificate has expired".to_owned(),
        },
        C::NotValidYet | C::NotValidYetContext { .. } => match seen {
            Some(c) => format!("the server's certificate is not valid until {}; check this computer's clock", c.not_before),
            None => "the server's certificate is not valid yet; check this computer's clock".to_owned(),
        },
        C::Revoked => "the server's certificate has been revoked".to_owned(),
        C::BadSignature => "the server's certificate has a signature that does not match its issuer".to_owned(),
        C::BadEncoding => "the server's certificate is not a readable certificate".to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "the server's certificate is not made for TLS servers (its key usage does not allow it)".to_owned()
        }
        _ => "the server's certificate was rejected as invalid".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_reads_hex_with_or_without_colons() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            Fingerprint::parse(&plain).unwrap(),
            Fingerprint::parse(&colons).unwrap()
        );
        assert_eq!(Fingerprint::parse(&plain).unwrap().to_string(), colons);
        assert!(Fingerprint::parse(&"ab".repeat(31))
            .unwrap_err()
            .contains("62 hex digits"));
        assert!(Fingerprint::parse(&format!("{}zz", "ab".repeat(31)))
            .unwrap_err()
            .contains("\"z\" is not a hex digit"));
    }

    const MAILBOX: Hints = Hints {
        section: "[receipts.imap]",
        server: "mail server",
        shows_certificate: None,
    };

    #[test]
    fn a_refusal_names_the_section_and_server_it_is_given() {
        let made = rcgen::generate_simple_self_signed(vec!["imap.uim.test".to_owned()]).unwrap();
        let seen = CertificateInfo::from_der(made.cert.der()).unwrap();
        let pin = Fingerprint::parse(&"ab".repeat(32)).unwrap();
        let pinned = Trust {
            pins: vec![pin],
            ..Trust::default()
        };

        let text = describe(
            &refuse(Refusal::NotPinned),
            Some(&seen),
            "imap.uim.test",
            &pinned,
            &MAILBOX,
        );
        assert!(
            text.starts_with(&format!("the server's certificate is not the pinned one: tls_pin_sha256 is {pin}, but the server showed a certificate with SHA-256 {}", seen.sha256)),
            "{text}"
        );
        assert!(
            text.ends_with("if the mail server's certificate was renewed, confirm the new fingerprint with IT and update tls_pin_sha256 in [receipts.imap]"),
            "{text}"
        );

        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe(
            &unknown,
            Some(&seen),
            "imap.uim.test",
            &Trust::default(),
            &MAILBOX,
        );
        assert!(
            text.contains(&format!("it is self-signed and not trusted by this computer; set ca_file to the PEM file of the CA that issued it, or if it is your mail server's own certificate, confirm its SHA-256 fingerprint {} with IT and pin it in [receipts.imap]: tls_pin_sha256 = \"{}\"", seen.sha256, seen.sha256)),
            "{text}"
        );
        // Without a certificate to show, and no command that shows one: IT is asked.
        let text = describe(&unknown, None, "imap.uim.test", &Trust::default(), &MAILBOX);
        assert!(
            text.ends_with("ask IT for its SHA-256 fingerprint and pin it with tls_pin_sha256 in [receipts.imap]"),
            "{text}"
        );

        let other_name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let text = describe(
            &other_name,
            Some(&seen),
            "127.0.0.1",
            &Trust::default(),
            &MAILBOX,
        );
        assert_eq!(
            text,
            "the server's certificate is not valid for the name \"127.0.0.1\": it is made for imap.uim.test; set host in [receipts.imap] to one of those names"
        );
        let text = describe(&other_name, Some(&seen), "127.0.0.1", &pinned, &MAILBOX);
        assert!(
            text.ends_with("(or, as the certificate is pinned, turn the name check off there with tls_check_host_name = false)"),
            "{text}"
        );
    }

    #[test]
    fn a_self_signed_certificate_named_like_a_trusted_one_is_not_trusted_in_those_words() {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let made = |algorithm: &'static rcgen::SignatureAlgorithm| {
            let mut params = CertificateParams::new(vec!["mail.uim.test".to_owned()]).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "mail.uim.test");
            params
                .self_signed(&KeyPair::generate_for(algorithm).unwrap())
                .unwrap()
        };
        let server = made(&rcgen::PKCS_ECDSA_P256_SHA256);
        // A trusted certificate of the same name (in ca_file, so that the system's do not matter)
        // with a key of the same kind (webpki: a bad signature) and of another kind (webpki: a
        // key that cannot check this signature).
        for algorithm in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let mut ca_file = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut ca_file, made(algorithm).pem().as_bytes()).unwrap();
            let trust = Trust {
                ca_file: Some(ca_file.path().to_owned()),
                ..Trust::default()
            };
            let (verifier, seen) = verifier(&trust).unwrap();
            let refused = verifier
                .verify_server_cert(
                    server.der(),
                    &[],
                    &ServerName::try_from("mail.uim.test").unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap_err();
            assert_eq!(
                refused,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "{algorithm:?}"
            );
            let text = describe(
                &refused,
                seen.certificate().as_ref(),
                "mail.uim.test",
                &trust,
                &MAILBOX,
            );
            assert!(
                text.starts_with("the server's certificate is not trusted: it is self-signed and not trusted by this computer or by ca_file"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_pin_matches_the_certificate_or_its_key_and_nothing_else() {
        let made = rcgen::generate_simple_self_signed(vec!["relay.uim.test".to_owned()]).unwrap();
        let der = made.cert.der().to_vec();
        let info = CertificateInfo::from_der(&der).unwrap();
        assert_eq!(info.names, vec!["relay.uim.test"]);
        assert!(info.self_signed);
        assert!(Fingerprint::parse(&info.sha256).unwrap().matches(&der));
        assert!(Fingerprint::parse(&info.key_sha256).unwrap().matches(&der));
        let other = rcgen::generate_simple_self_signed(vec!["relay.uim.test".to_owned()]).unwrap();
        assert!(!Fingerprint::parse(&info.sha256)
            .unwrap()
            .matches(other.cert.der()));
    }
}
