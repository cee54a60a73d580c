//! Files that go with a letter: the PDF letter itself and the campaign's own attachments.
//!
//! An attachment is a name, a content type and the exact bytes. The content type comes from the
//! file name's ending; the name is what the recipient sees (lettre writes it per RFC 2231, so
//! æøå arrive as written). This module is pure: the caller reads the files.

use std::sync::Arc;

/// One file attached to a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attached {
    /// The file name the recipient sees.
    pub name: String,
    pub content_type: &'static str,
    pub bytes: Arc<Vec<u8>>,
}

impl Attached {
    pub(crate) fn new(name: String, bytes: Arc<Vec<u8>>) -> Attached {
        Attached {
            content_type: content_type(&name),
            name,
            bytes,
        }
    }
}

/// The content type for a file name, from its ending; unknown endings are plain bytes.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "htm" | "html" => "text/html; charset=utf-8",
        "xml" => "application/xml",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "tif" | "tiff" => "image/tiff",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "rtf" => "application/rtf",
        "zip" => "application/zip",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

/// The PDF letter's file name: "<Akt-id> <navn>.pdf", with æøå kept and nothing a file system
/// or mail client would stumble on.
pub(crate) fn pdf_name(akt_id: &str, name: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '-',
                c if c.is_control() => ' ',
                c => c,
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let stem = format!("{} {}", clean(akt_id), clean(name));
    let stem = stem.trim().trim_start_matches('.');
    let stem: String = stem.chars().take(120).collect();
    format!("{stem}.pdf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_follows_the_file_name() {
        assert_eq!(content_type("bilag/Vejledning.PDF"), "application/pdf");
        assert_eq!(
            content_type("Høringssvar.docx"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(content_type("kort.png"), "image/png");
        assert_eq!(content_type("uden-endelse"), "application/octet-stream");
    }

    #[test]
    fn the_pdf_is_named_by_akt_id_and_recipient_with_danish_letters_kept() {
        assert_eq!(
            pdf_name("1286555", "Ærø Kommune"),
            "1286555 Ærø Kommune.pdf"
        );
        assert_eq!(
            pdf_name("12/3", "Lyngby-Taarbæk\u{7} Kommune: \"Nord\""),
            "12-3 Lyngby-Taarbæk Kommune- -Nord-.pdf"
        );
    }
}
