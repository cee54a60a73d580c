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

/// The most bytes `encode_text` makes of any text of `len` bytes, whichever encoding it chooses.
///
/// - 7bit is the text with a CR put before a LF: at most `2 * len`.
/// - Quoted-printable writes each byte as at most 3 (a kept byte 1, `=XY` 3, a line break's
///   LF as CRLF 2, a space or tab before a line break as `=20`/`=09` 3), so a line's content is
///   at most `3 * len` in all. A soft break (`=` CRLF, 3 bytes) is only put after a line holding
///   at least 73 of those bytes (`Qp::append` breaks when a piece of at most 3 would take the
///   line past 76, moving the last piece on when the line is exactly full), so there are at most
///   `3 * len / 73` of them: at most `9 * len / 73 < len / 8` bytes more.
/// - Base64 encodes the text with CRs put in (at most `2 * len` bytes): `base64_len` of that.
pub(crate) fn text_at_most(len: usize) -> usize {
    let quoted_printable = len.saturating_mul(3).saturating_add(len.div_ceil(8));
    let base64 = base64_len(len.saturating_mul(2));
    len.saturating_mul(2).max(quoted_printable).max(base64)
}

/// The most bytes lettre's `Body::new(bytes.to_vec())` makes of a file's bytes (an attached
/// file): email-encoding chooses base64 for any byte that is not ASCII (and then the length is
/// exact); ASCII goes as it is (7bit: bytes are not given CRs), quoted-printable (see
/// `text_at_most`: lettre's quoted_printable is what `quoted_printable` here copies, and it
/// makes no more of a LF than a CRLF does) or base64.
pub(crate) fn file_at_most(bytes: &[u8]) -> usize {
    let len = bytes.len();
    if bytes.is_ascii() {
        len.max(3 * len + len.div_ceil(8)).max(base64_len(len))
    } else {
        base64_len(len)
    }
}

/// How many bytes `base64` makes of `len` bytes: 4 characters for each 3 bytes begun, and a
/// CRLF between lines of 57 bytes.
pub(crate) fn base64_len(len: usize) -> usize {
    let lines = len.div_ceil(BASE64_CHUNK).saturating_sub(1);
    len.div_ceil(3).saturating_mul(4).saturating_add(2 * lines)
}

/// email-encoding's `Encoding::choose(text, false)` for a `str`: 7bit for ASCII whose lines are
/// short enough, else quoted-printable when at most a third of the bytes need escaping, else
/// base64. Lines are measured as email-encoding measures them, before CRLF normalisation: the
/// first line is too long at 76 bytes, every later one (counted with the `\n` before it) at 75.
fn choose(bytes: &[u8]) -> ContentTransferEncoding {
    if bytes.is_ascii() && !too_long(bytes) {
        ContentTransferEncoding::SevenBit
    } else if escaping(bytes) <= bytes.len() / 3 {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    }
}

/// Whether a line is too long for 7bit, measured as `choose` says.
fn too_long(bytes: &[u8]) -> bool {
    let mut last = 0;
    for lf in memchr::memchr_iter(b'\n', bytes) {
        if lf - last >= 76 {
            return true;
        }
        last = lf;
    }
    bytes.len() - last >= 76
}

/// How many bytes are neither a tab nor printable ASCII (line ends included). Counted in blocks
/// of at most 255 with a byte-sized counter, a loop the compiler turns into vector instructions.
fn escaping(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|block| {
            let n = block.iter().fold(0u8, |n, &b| {
                n + u8::from(b != b'\t' && !(b' '..=b'~').contains(&b))
            });
            usize::from(n)
        })
        .sum()
}

/// The bytes with a CR put before every LF that has none (lettre's `encode_crlf`).
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16 + 8);
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', bytes) {
        if lf == 0 || bytes[lf - 1] != b'\r' {
            out.extend_from_slice(&bytes[start..lf]);
            out.push(b'\r');
            start = lf;
        }
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

/// Bytes whose flags are worked out together, in one loop the compiler turns into vector
/// instructions.
const BLOCK: usize = 64;

/// For each byte of the block, 1 if it is not printable ASCII other than `=`: the bytes
/// quoted_printable escapes or breaks the line at, and tabs (kept as they are, but rare: they go
/// the way of the others); 0 for the bytes copied as they are.
#[inline]
fn flags(block: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut flags = [0; BLOCK];
    for (flag, &b) in flags.iter_mut().zip(block) {
        *flag = u8::from(!(b' '..=b'~').contains(&b) || b == b'=');
    }
    flags
}

/// Whether quoted_printable keeps this byte as it is.
#[inline]
fn kept(b: u8) -> bool {
    b == b'\t' || ((b' '..=b'~').contains(&b) && b != b'=')
}

/// quoted_printable 0.5's `encode` of the CRLF-normalised bytes, in one pass: a LF, or a CR
/// before a LF, is a hard line break; a CR alone is `=0D`. The bytes are taken eight at a time
/// with their flags (see `flags`), and the stretches between flagged bytes are copied whole.
fn quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut qp = Qp {
        out: Vec::with_capacity(bytes.len() + bytes.len() / 2 + 64),
        line: [0; LINE_BUFFER],
        len: 0,
        last: 0,
    };
    let mut i = 0;
    // How many bytes at `i` are written already (the LF of a CRLF at the end of a word).
    let mut taken = 0;
    while let Some(block) = bytes.get(i..i + BLOCK) {
        let flags = flags(block.try_into().expect("a block"));
        for (k, (eight, flags)) in block.chunks_exact(8).zip(flags.chunks_exact(8)).enumerate() {
            let word = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
            let mask = u64::from_le_bytes(flags.try_into().expect("8 flags"));
            taken = qp.word(bytes, i + 8 * k, word, mask, taken);
        }
        i += BLOCK;
    }
    i += taken;
    while i < bytes.len() {
        let b = bytes[i];
        if kept(b) {
            qp.plain_word(u64::from(b), 1);
            i += 1;
        } else {
            i += 1 + qp.special_byte(bytes, i);
        }
    }
    qp.finish()
}

fn hex(b: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

/// The line being encoded is kept here until it ends: a whole line, and room to store a word
/// past its end.
const LINE_BUFFER: usize = QP_LIMIT + 8;

/// quoted_printable's encoder state: the lines done, the current line, and where the line's last
/// piece starts.
///
/// quoted_printable appends one piece at a time (a byte kept as it is, or `=XY`): a piece that
/// would make the line longer than 76 goes after a soft break, and when the line is exactly full
/// the soft break goes before the line's last piece instead, so that the `=` fits. `append` does
/// just that; `plain_word` and `escaped` take the common case, a piece that fits, in a few
/// steps, and leave the rest to `append`.
struct Qp {
    out: Vec<u8>,
    line: [u8; LINE_BUFFER],
    len: usize,
    last: usize,
}

impl Qp {
    /// Appends one piece, as quoted_printable does.
    fn append(&mut self, piece: &[u8]) {
        if self.len + piece.len() > QP_LIMIT {
            if self.len == QP_LIMIT {
                // The soft break goes before the line's last piece, which moves on.
                let last = self.last;
                self.out.extend_from_slice(&self.line[..last]);
                self.out.extend_from_slice(b"=\r\n");
                self.line.copy_within(last..QP_LIMIT, 0);
                self.len = QP_LIMIT - last;
            } else {
                self.end_line(b"=\r\n");
            }
        }
        self.line[self.len..self.len + piece.len()].copy_from_slice(piece);
        self.last = self.len;
        self.len += piece.len();
    }

    /// Appends the eight bytes at `at`, `word` (the first byte lowest), of which `mask` flags
    /// the ones that need more than copying (a nonzero byte for each) and the first `from` are
    /// written already. Returns how many bytes after the word it wrote too (a CRLF's LF).
    #[inline(always)]
    fn word(
        &mut self,
        bytes: &[u8],
        at: usize,
        word: u64,
        mut mask: u64,
        mut from: usize,
    ) -> usize {
        if mask == 0 && from == 0 {
            self.plain_word(word, 8);
            return 0;
        }
        while mask != 0 {
            let k = (mask.trailing_zeros() / 8) as usize;
            mask &= mask - 1;
            if k < from {
                continue; // the LF of a CRLF already taken
            }
            if k > from {
                self.plain_word(word >> (8 * from), k - from);
            }
            from = k + 1 + self.special_byte(bytes, at + k);
        }
        if from < 8 {
            self.plain_word(word >> (8 * from), 8 - from);
        }
        from.saturating_sub(8)
    }

    /// Appends the first `count` bytes of the word (1 to 8, the first byte lowest), all kept as
    /// they are, each its own piece. When they fit on the line, all eight bytes are stored at
    /// once: the ones past `count` are not part of the line and are written over later.
    #[inline(always)]
    fn plain_word(&mut self, word: u64, count: usize) {
        if self.len + count > QP_LIMIT {
            self.plain_past_the_end(word, count);
        } else {
            self.line[self.len..self.len + 8].copy_from_slice(&word.to_le_bytes());
            self.len += count;
            self.last = self.len - 1;
        }
    }

    /// `plain_word` for bytes that do not all fit on the line, as `append` would take them one
    /// by one: when more bytes follow than the line has room for, the line takes all but one of
    /// the bytes that fit (the last would be moved after the soft break once the next came), and
    /// the rest start the next line.
    #[inline(never)]
    fn plain_past_the_end(&mut self, word: u64, count: usize) {
        let room = QP_LIMIT - self.len;
        if room == 0 {
            // The line is full: its last piece moves on with the first byte.
            self.append(&word.to_le_bytes()[..1]);
            if count > 1 {
                self.plain_word(word >> 8, count - 1);
            }
            return;
        }
        let fit = room - 1;
        self.line[self.len..self.len + 8].copy_from_slice(&word.to_le_bytes());
        self.len += fit;
        self.end_line(b"=\r\n");
        let rest = count - fit;
        self.line[..8].copy_from_slice(&(word >> (8 * fit)).to_le_bytes());
        self.len = rest;
        self.last = rest - 1;
    }

    /// Moves the line, ended with `end` (a soft or hard break), to the output.
    fn end_line(&mut self, end: &[u8]) {
        self.line[self.len..self.len + end.len()].copy_from_slice(end);
        self.out
            .extend_from_slice(&self.line[..self.len + end.len()]);
        self.len = 0;
    }

    /// Appends a byte as `=XY`.
    #[inline(always)]
    fn escaped(&mut self, b: u8) {
        let piece = hex(b);
        if self.len + 3 <= QP_LIMIT {
            self.line[self.len..self.len + 3].copy_from_slice(&piece);
            self.last = self.len;
            self.len += 3;
        } else {
            self.append(&piece);
        }
    }

    /// Appends `bytes[at]`, a byte `flags` marks: a line break (a CR before a LF takes the LF
    /// with it), a tab, or a byte escaped as `=XY`. Returns how many bytes after `at` it took.
    #[inline(always)]
    fn special_byte(&mut self, bytes: &[u8], at: usize) -> usize {
        match bytes[at] {
            b'\t' => {
                self.plain_word(u64::from(b'\t'), 1);
                0
            }
            b'\n' => {
                self.hard_break();
                0
            }
            b'\r' if bytes.get(at + 1) == Some(&b'\n') => {
                self.hard_break();
                1
            }
            b => {
                self.escaped(b);
                0
            }
        }
    }

    /// A space or tab may not end an encoded line: it is written `=20` or `=09` instead.
    fn trailing_space_tab(&mut self) {
        let piece: &[u8; 3] = match self.len.checked_sub(1).map(|end| self.line[end]) {
            Some(b' ') => b"=20",
            Some(b'\t') => b"=09",
            _ => return,
        };
        self.len -= 1;
        self.append(piece);
    }

    fn hard_break(&mut self) {
        self.trailing_space_tab();
        self.end_line(b"\r\n");
    }

    fn finish(mut self) -> Vec<u8> {
        self.trailing_space_tab();
        self.out.extend_from_slice(&self.line[..self.len]);
        self.out
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
    fn the_flags_mark_exactly_the_bytes_not_copied_as_they_are() {
        let mut block = [0u8; BLOCK];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i * 4) as u8;
        }
        for shift in 0..4u8 {
            let shifted = block.map(|b| b.wrapping_add(shift));
            for (flag, &b) in flags(&shifted).iter().zip(&shifted) {
                assert_eq!(*flag == 1, !kept(b) || b == b'\t', "{b:#04x}");
                assert!(*flag <= 1);
            }
        }
    }

    /// Every kind of line end and escape at every offset around the words and blocks the bytes
    /// are taken in.
    #[test]
    fn line_ends_and_escapes_across_word_and_block_edges_are_encoded_as_lettre_encodes_them() {
        for offset in 0..150 {
            for piece in [
                "\r\n", "\n", "\r", "\r\r\n", " \r\n", "\t\n", "æ", "=", "\t", "€\r\n",
            ] {
                let lead = "a".repeat(offset);
                same(&format!("{lead}{piece}b"));
                same(&format!("{lead}{piece}"));
                same(&format!("{lead}{piece}{}", "c".repeat(150 - offset)));
            }
        }
    }

    /// Lines of pieces that stay, are escaped, or are space or tab (which must not end a line),
    /// long enough to need soft breaks at every offset, ended in each way a line can end.
    #[test]
    fn soft_breaks_around_escapes_tabs_and_spaces_are_placed_as_lettre_places_them() {
        const LINE_PIECES: &[&str] = &[
            "a", "b", "a", " ", "\t", "=", "æ", "€", "\r", "xyz", "  ", "\t ", "=æ", "😀",
        ];
        const ENDS: &[&str] = &["\n", "\r\n", " \n", "\t\r\n", "\r\r\n", "=\n", ""];
        let mut rng = Rng(0x51de_b0a2_d5ee_d00d);
        for _ in 0..4_000 {
            let mut s = String::new();
            for _ in 0..1 + rng.below(4) {
                // A plain stretch to reach a chosen offset, then pieces across the limit.
                let lead = rng.below(90);
                s.push_str(&"q".repeat(lead));
                for _ in 0..rng.below(120) {
                    s.push_str(LINE_PIECES[rng.below(LINE_PIECES.len())]);
                }
                s.push_str(ENDS[rng.below(ENDS.len())]);
            }
            same(&s);
        }
    }

    #[test]
    fn no_text_is_encoded_into_more_bytes_than_text_at_most_says() {
        let mut rng = Rng(0x0b0a_7d5e_a11b_0a7d);
        let check = |s: &str| {
            let (encoding, bytes) = ours(s);
            assert!(
                bytes.len() <= text_at_most(s.len()),
                "{encoding:?}: {} bytes of {} > {}: {s:?}",
                bytes.len(),
                s.len(),
                text_at_most(s.len())
            );
        };
        // The worst of each encoding: escapes and line ends only, and every length up to a few
        // lines, where the rounding is tightest.
        for n in 0..400 {
            for piece in [
                "=", "\n", "\r", " \n", "\u{1}", "æ", "\u{80}", "a", "\t\n", "=\r",
            ] {
                check(&piece.repeat(n));
            }
            check(&format!("{}\n", "=".repeat(n)));
            check(&"\r".repeat(n));
            check(&"\n".repeat(n));
        }
        for _ in 0..20_000 {
            check(&tricky(&mut rng));
        }
    }

    #[test]
    fn no_file_is_encoded_into_more_bytes_than_file_at_most_says() {
        let mut rng = Rng(0xf11e_5e7f_0000_0001);
        for n in 0..600 {
            let ascii: Vec<u8> = (0..n)
                .map(|_| [b'a', b'=', b'\n', b'\r', 1, b' '][rng.below(6)])
                .collect();
            let binary: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let long_line = vec![b'x'; n];
            for bytes in [ascii, binary, long_line] {
                let lettre = Body::new(bytes.clone()).len();
                assert!(
                    lettre <= file_at_most(&bytes),
                    "{n}: {lettre} > {}",
                    file_at_most(&bytes)
                );
                if !bytes.is_ascii() {
                    assert_eq!(lettre, file_at_most(&bytes), "base64 is exact");
                }
            }
        }
    }

    #[test]
    fn base64_len_is_the_length_of_base64() {
        for n in 0..500 {
            assert_eq!(base64_len(n), base64(&vec![0xa5; n]).len(), "{n}");
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
