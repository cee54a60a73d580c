//! The body of one text part (the letter's plain text or HTML), made ready for the wire: the same
//! transfer encoding and the same bytes lettre 0.11 would make of the `String`, only faster.
//!
//! It must never give other bytes than `lettre::message::Body::new(String)`: the choice between
//! 7bit, quoted-printable and base64 (email-encoding 0.4's chooser, as for a server without
//! SMTPUTF8), CRLF line endings, and quoted-printable with quoted_printable 0.5's soft line breaks
//! to the byte. The tests compare it with lettre on many tricky inputs. It only encodes: no
//! headers, no I/O.

use base64::Engine as _;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;

/// The longest encoded line quoted_printable makes, without its CRLF.
const QP_LIMIT: usize = 76;

/// Base64 takes this many input bytes to a line of 76 characters.
const BASE64_CHUNK: usize = 57;

/// The text's body as lettre would encode it (`Body::new(text.to_owned())`).
pub(crate) fn encode_text(text: &str) -> Body {
    let bytes = text.as_bytes();
    let (encoding, out) = match choose(bytes) {
        ContentTransferEncoding::SevenBit => (ContentTransferEncoding::SevenBit, crlf(bytes)),
        ContentTransferEncoding::QuotedPrintable => (
            ContentTransferEncoding::QuotedPrintable,
            quoted_printable(bytes),
        ),
        _ => (ContentTransferEncoding::Base64, base64(&crlf(bytes))),
    };
    Body::dangerous_pre_encoded(out, encoding)
}

/// email-encoding's `Encoding::choose(text, false)` for a `str`: 7bit for ASCII whose lines are
/// short enough, else quoted-printable when at most a third of the bytes need escaping, else
/// base64. Lines are measured as email-encoding measures them, before CRLF normalisation: the
/// first line is too long at 76 bytes, every later one (counted with the `\n` before it) at 75.
fn choose(bytes: &[u8]) -> ContentTransferEncoding {
    let mut ascii = true;
    let mut escaping = 0usize;
    let mut too_long = false;
    let mut last = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes, i).is_some_and(all_printable) {
            i += 8;
            continue;
        }
        let end = bytes.len().min(i + 8);
        for (j, &b) in bytes.iter().enumerate().take(end).skip(i) {
            if !matches!(b, b'\t' | b' '..=b'~') {
                escaping += 1;
                ascii &= b.is_ascii();
                if b == b'\n' {
                    too_long |= j - last >= 76;
                    last = j;
                }
            }
        }
        i = end;
    }
    too_long |= bytes.len() - last >= 76;
    if ascii && !too_long {
        ContentTransferEncoding::SevenBit
    } else if escaping <= bytes.len() / 3 {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes from `at` as one word (in no particular byte order), if there are 8.
#[inline]
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let eight: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_ne_bytes(eight))
}

/// Whether one of the word's bytes is zero. (A borrow only ever crosses from a byte that is
/// zero, so the answer is exact.)
#[inline]
fn has_zero(w: u64) -> bool {
    w.wrapping_sub(ONES) & !w & HIGHS != 0
}

/// Whether every byte of the word is printable ASCII, `' '..='~'`. (Borrows and carries only
/// cross from a byte outside that range, so the answer is exact.)
#[inline]
fn all_printable(w: u64) -> bool {
    let below = w.wrapping_sub(0x20 * ONES) & !w & HIGHS;
    let above = (w.wrapping_add(ONES) | w) & HIGHS;
    below | above == 0
}

/// The bytes with a CR put before every LF that has none (lettre's `encode_crlf`).
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16 + 8);
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes, i).is_some_and(|w| !has_zero(w ^ (u64::from(b'\n') * ONES))) {
            i += 8;
            continue;
        }
        let end = bytes.len().min(i + 8);
        for j in i..end {
            if bytes[j] == b'\n' && (j == 0 || bytes[j - 1] != b'\r') {
                out.extend_from_slice(&bytes[start..j]);
                out.push(b'\r');
                start = j;
            }
        }
        i = end;
    }
    out.extend_from_slice(&bytes[start..]);
    out
}

/// Base64 in lines of 76 characters joined by CRLF, none after the last (email-encoding's).
fn base64(bytes: &[u8]) -> Vec<u8> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let lines = bytes.len().div_ceil(BASE64_CHUNK);
    let mut out = Vec::with_capacity(lines * 78);
    let mut line = [0u8; 76];
    for (n, chunk) in bytes.chunks(BASE64_CHUNK).enumerate() {
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let len = engine
            .encode_slice(chunk, &mut line)
            .expect("57 bytes fit in 76 characters");
        out.extend_from_slice(&line[..len]);
    }
    out
}

/// Whether quoted_printable escapes this byte (as `=XY`).
#[inline]
fn needs_encoding(b: u8) -> bool {
    !matches!(b, b'\t' | b' '..=b'<' | b'>'..=b'~')
}

/// Whether quoted_printable keeps all 8 bytes of the word as they are (a tab is left to the
/// byte-by-byte path).
#[inline]
fn all_plain(w: u64) -> bool {
    all_printable(w) && !has_zero(w ^ (u64::from(b'=') * ONES))
}

/// quoted_printable 0.5's `encode` of the CRLF-normalised bytes, in one pass: a LF, or a CR
/// before a LF, is a hard line break; a CR alone is `=0D`.
fn quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut qp = Qp {
        out: Vec::with_capacity(bytes.len() + bytes.len() / 2 + 64),
        on_line: 0,
        backup: 0,
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            qp.hard_break();
            i += 1;
        } else if b == b'\r' {
            if bytes.get(i + 1) == Some(&b'\n') {
                qp.hard_break();
                i += 2;
            } else {
                qp.append(b"=0D");
                i += 1;
            }
        } else if QP_LIMIT - qp.on_line >= 3 && !needs_encoding(b) {
            // A run of bytes that stay as they are, as long as it leaves room for a soft break.
            let max_run = QP_LIMIT - qp.on_line - 2;
            let rest = &bytes[i..bytes.len().min(i + max_run)];
            let mut run = 0;
            while word(rest, run).is_some_and(all_plain) {
                run += 8;
            }
            while run < rest.len() && !needs_encoding(rest[run]) {
                run += 1;
            }
            qp.out.extend_from_slice(&rest[..run]);
            qp.on_line += run;
            qp.backup = qp.out.len();
            i += run;
        } else {
            match b {
                b'=' => qp.append(b"=3D"),
                b'\t' | b' '..=b'~' => qp.append(&[b]),
                _ => qp.append(&hex(b)),
            }
            i += 1;
        }
    }
    qp.trailing_space_tab();
    qp.out
}

fn hex(b: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

/// quoted_printable's encoder state: the output, the bytes on the current line, and where the
/// last appended piece starts (a soft break goes there when the line is exactly full).
struct Qp {
    out: Vec<u8>,
    on_line: usize,
    backup: usize,
}

impl Qp {
    #[inline]
    fn append(&mut self, piece: &[u8]) {
        if self.on_line + piece.len() > QP_LIMIT {
            if self.on_line == QP_LIMIT {
                // The soft break goes before the last piece appended.
                let at = self.backup;
                self.on_line = self.out.len() - at;
                self.out.extend_from_slice(b"=\r\n");
                let end = self.out.len() - 3;
                self.out.copy_within(at..end, at + 3);
                self.out[at..at + 3].copy_from_slice(b"=\r\n");
            } else {
                self.out.extend_from_slice(b"=\r\n");
                self.on_line = 0;
            }
        }
        self.out.extend_from_slice(piece);
        self.on_line += piece.len();
        self.backup = self.out.len() - piece.len();
    }

    /// A space or tab may not end an encoded line: it is written `=20` or `=09` instead.
    fn trailing_space_tab(&mut self) {
        let piece: &[u8; 3] = match self.out.last() {
            Some(b' ') => b"=20",
            Some(b'\t') => b"=09",
            _ => return,
        };
        self.on_line -= 1;
        self.out.pop();
        self.append(piece);
    }

    fn hard_break(&mut self) {
        self.trailing_space_tab();
        self.out.extend_from_slice(b"\r\n");
        self.on_line = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What lettre makes of the text today: the encoding and the bytes.
    fn lettre(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
        let body = Body::new(text.to_owned());
        (body.encoding(), body.as_ref().to_vec())
    }

    fn ours(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
        let body = encode_text(text);
        (body.encoding(), body.as_ref().to_vec())
    }

    fn same(text: &str) {
        let (want_enc, want) = lettre(text);
        let (got_enc, got) = ours(text);
        assert!(
            want_enc == got_enc && want == got,
            "input {text:?}\nlettre {want_enc:?} {:?}\nours   {got_enc:?} {:?}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        );
    }

    /// A small deterministic generator (xorshift64*), so a failure can be run again.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "  ", "\t", "=", "==", "\n", "\r\n", "\r", "\r\r\n", "\n\n", "æ", "ø",
        "å", "Æ", "Ø", "Å", "–", "€", "📬", "😀", "<p>", "</p>", "&amp;", ".", "~", "\u{7f}",
        "\u{1}", "é", "ü", " \n", "\t\n", " \r\n", "=\n", "æ\n",
    ];

    /// A line of exactly `n` bytes of plain ASCII.
    fn ascii_line(rng: &mut Rng, n: usize) -> String {
        (0..n)
            .map(|_| match rng.below(10) {
                0 => ' ',
                1 => '=',
                2 => '\t',
                _ => char::from(b'a' + rng.below(26) as u8),
            })
            .collect()
    }

    fn tricky(rng: &mut Rng) -> String {
        let mut s = String::new();
        let pieces = rng.below(60);
        // Some inputs are mostly ASCII (7bit or QP), some mostly not (base64).
        let ascii_bias = rng.below(4);
        for _ in 0..pieces {
            match rng.below(12) {
                0 | 1 => {
                    let n = 70 + rng.below(12);
                    s.push_str(&ascii_line(rng, n));
                }
                2 => {
                    let n = rng.below(200);
                    s.push_str(&"x".repeat(n));
                }
                3 => s.push('\n'),
                _ => {
                    let p = PIECES[rng.below(PIECES.len())];
                    if ascii_bias > 0 && !p.is_ascii() && rng.below(4) > 0 {
                        s.push_str("ab");
                    } else {
                        s.push_str(p);
                    }
                }
            }
        }
        s
    }

    #[test]
    fn known_cases_are_encoded_as_lettre_encodes_them() {
        let cases = [
            String::new(),
            "\n".into(),
            "\r".into(),
            "\r\n".into(),
            " ".into(),
            "\t".into(),
            "a ".into(),
            "a \n".into(),
            "a\t\r\n".into(),
            "Hello, world!".into(),
            "Hello, world!".repeat(100),
            "Til samtlige kommuner\n".into(),
            "Ærø Kommune\n\nDato 29. juni 2020\n".into(),
            "a".repeat(74),
            "a".repeat(75),
            "a".repeat(76),
            "a".repeat(77),
            format!("x\n{}", "a".repeat(74)),
            format!("x\n{}", "a".repeat(75)),
            format!("x\n{}\ny", "a".repeat(74)),
            format!("{}\n", "a".repeat(75)),
            format!("{} \n", "a".repeat(75)),
            format!("{} \n", "a".repeat(74)),
            format!("{}æ", "a".repeat(73)),
            format!("{}æ", "a".repeat(74)),
            format!("{}=", "a".repeat(74)),
            format!("{}==", "a".repeat(73)),
            format!("{} ", "a".repeat(75)),
            format!("{}\t", "a".repeat(76)),
            format!("{}\r", "a".repeat(75)),
            "📬📬📬📬📬".into(),
            "0123 📬".into(),
            "01234567899876543210 📬".into(),
        ];
        for c in &cases {
            same(c);
        }
    }

    #[test]
    fn lines_around_76_bytes_are_encoded_as_lettre_encodes_them() {
        let mut rng = Rng(0x5eed_0001);
        for n in 60..90 {
            for _ in 0..40 {
                let mut s = ascii_line(&mut rng, n);
                for _ in 0..rng.below(4) {
                    s.push_str(["\n", "\r\n", " \n", "æ", "="][rng.below(5)]);
                    let m = 70 + rng.below(10);
                    s.push_str(&ascii_line(&mut rng, m));
                }
                same(&s);
            }
        }
    }

    #[test]
    fn many_tricky_texts_are_encoded_as_lettre_encodes_them() {
        let mut rng = Rng(0x0dd_ba11_cafe_f00d);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let s = tricky(&mut rng);
            seen.insert(ours(&s).0);
            same(&s);
        }
        // Every encoding was exercised.
        assert_eq!(seen.len(), 3, "{seen:?}");
    }
}
