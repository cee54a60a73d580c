//! The letter as a document: one A4 PDF per recipient, PDF/A-2b and tagged, on the letterhead.
//!
//! `render` sets the merged Markdown on pages (see `layout`) and writes them with krilla: the
//! ministry's name and logo, the sender block, the recipient's block, the stamps, the text with
//! its headings, lists and links (as link annotations), and the footer with "Side 1 af 2". The
//! fonts are built in and embedded (subset). The metadata carries the title, the sender as
//! author, the subject, and the Sags nr. and Akt-id as keywords. The same letter always gives the
//! same bytes: nothing here reads the clock, a file or the network; the document's ID and date
//! come from the letter's own stamps.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Datelike;
use krilla::action::{Action, LinkAction};
use krilla::annotation::{Annotation, LinkAnnotation, Target};
use krilla::color::rgb;
use krilla::configure::{Configuration, Validator};
use krilla::geom::{Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::metadata::{DateTime, Metadata};
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::tagging::{ArtifactType, ContentTag, Identifier, ListNumbering, Node, SpanTag};
use krilla::tagging::{Tag, TagGroup, TagTree};
use krilla::text::TextDirection;
use krilla::{Data, Document, SerializeSettings};
use krilla_svg::{SurfaceExt as _, SvgSettings};
use sha2::{Digest, Sha256};

use crate::letter::stamp::Stamp;
use layout::{Block, Head, Kind, Piece};

mod fonts;
pub(crate) mod layout;

/// A logo for the letterhead, checked when the campaign is read.
#[derive(Clone)]
pub(crate) enum Logo {
    Svg(Arc<usvg::Tree>),
    Png(Arc<Vec<u8>>),
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Logo::Svg(_) => f.write_str("Logo::Svg"),
            Logo::Png(b) => write!(f, "Logo::Png({} bytes)", b.len()),
        }
    }
}

impl Logo {
    /// Reads a logo from its bytes; `name` (the file name) says whether it is SVG or PNG.
    pub(crate) fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Logo, String> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".svg") {
            let tree = usvg::Tree::from_data(&bytes, &usvg::Options::default())
                .map_err(|e| format!("is not an SVG image that can be read ({e})"))?;
            Ok(Logo::Svg(Arc::new(tree)))
        } else if lower.ends_with(".png") {
            Image::from_png(Data::from(bytes.clone()), false)
                .map_err(|e| format!("is not a PNG image that can be read ({e})"))?;
            Ok(Logo::Png(Arc::new(bytes)))
        } else {
            Err("must be an SVG or PNG file (.svg or .png)".into())
        }
    }

    /// Width over height.
    fn aspect(&self) -> f32 {
        match self {
            Logo::Svg(tree) => tree.size().width() / tree.size().height(),
            Logo::Png(bytes) => Image::from_png(Data::from(bytes.as_ref().clone()), false)
                .map(|i| {
                    let (w, h) = i.size();
                    w as f32 / h.max(1) as f32
                })
                .unwrap_or(1.0),
        }
    }
}

/// The ministry's letterhead: the same on every letter of a campaign.
#[derive(Debug, Clone)]
pub(crate) struct Letterhead {
    pub ministry: String,
    pub logo: Option<Logo>,
    /// The sender block: address and contact lines.
    pub sender: Vec<String>,
    /// The footer line: the sender's address and CVR.
    pub footer: String,
    /// The author in the metadata: the sender.
    pub author: String,
}

/// One recipient's letter, merged.
pub(crate) struct Letter<'a> {
    /// The e-mail's subject: the document's title.
    pub title: &'a str,
    /// The recipient's name, then address lines.
    pub recipient: &'a [String],
    pub stamp: &'a Stamp,
    /// The merged Markdown.
    pub markdown: &'a str,
}

/// The letter as a PDF: A4, PDF/A-2b, tagged, fonts embedded; the same letter gives the same bytes.
pub(crate) fn render(head: &Letterhead, letter: &Letter<'_>) -> Result<Vec<u8>, String> {
    let stamps = [
        crate::letter::stamp::danish_date(letter.stamp.letter_date),
        format!("Sags nr. {}", letter.stamp.sags_nr),
        format!("Akt-id {}", letter.stamp.akt_id),
    ];
    let events: Vec<_> = crate::letter::render::parser(letter.markdown).collect();
    let set = layout::layout(
        &Head {
            ministry: &head.ministry,
            sender: &head.sender,
            footer: &head.footer,
            recipient: letter.recipient,
            stamps: &stamps,
            logo: head.logo.is_some(),
        },
        &events,
    );

    let settings = SerializeSettings {
        configuration: Configuration::new_with_validator(Validator::A2_B),
        enable_tagging: true,
        compress_content_streams: true,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    // What each block's tag group holds, filled page by page.
    let mut nodes: Vec<Vec<Node>> = vec![Vec::new(); set.blocks.len()];
    let mut labels: BTreeMap<usize, Identifier> = BTreeMap::new();
    let size = Size::from_wh(layout::PAGE_WIDTH, layout::PAGE_HEIGHT).ok_or("bad page size")?;
    for page_no in 0..set.pages {
        let mut page = document.start_page_with(krilla::page::PageSettings::new(size));
        let mut links: Vec<(usize, Identifier, Rect, String)> = Vec::new();
        {
            let mut surface = page.surface();
            if page_no == 0 {
                if let Some(logo) = &head.logo {
                    draw_logo(&mut surface, logo);
                }
            }
            for (b, block) in set.blocks.iter().enumerate() {
                if let Kind::Item { label, .. } = &block.kind {
                    if label.page == page_no {
                        labels.insert(b, draw_tagged(&mut surface, label));
                    }
                }
                for piece in block.pieces.iter().filter(|p| p.page == page_no) {
                    let id = draw_tagged(&mut surface, piece);
                    match &piece.link {
                        Some(url) => {
                            let (l, t, r, bt) = piece.bounds();
                            if let Some(rect) = Rect::from_ltrb(l, t, r, bt) {
                                links.push((b, id, rect, url.clone()));
                            } else {
                                nodes[b].push(id.into());
                            }
                        }
                        None => nodes[b].push(id.into()),
                    }
                }
            }
            for piece in set.furniture.iter().filter(|p| p.page == page_no) {
                surface.start_tagged(ContentTag::Artifact(ArtifactType::Footer));
                draw(&mut surface, piece);
                surface.end_tagged();
            }
            surface.finish();
        }
        for (b, id, rect, url) in links {
            let annotation = page.add_tagged_annotation(Annotation::new_link(
                LinkAnnotation::new(rect, Target::Action(Action::Link(LinkAction::new(url)))),
                None,
            ));
            let mut group = TagGroup::new(Tag::Link);
            group.push(id);
            group.push(annotation);
            nodes[b].push(group.into());
        }
        page.finish();
    }

    document.set_tag_tree(tag_tree(&set.blocks, nodes, labels));
    document.set_metadata(metadata(head, letter));
    document
        .finish()
        .map_err(|e| format!("cannot make the PDF: {e:?}"))
}

/// Groups the blocks' content the way the letter reads: headings, paragraphs, lists of items.
fn tag_tree(
    blocks: &[Block],
    nodes: Vec<Vec<Node>>,
    mut labels: BTreeMap<usize, Identifier>,
) -> TagTree {
    let mut tree = TagTree::new().with_lang(Some("da".into()));
    let mut list: Option<(usize, TagGroup)> = None;
    for (b, (block, children)) in blocks.iter().zip(nodes).enumerate() {
        if let Some((id, group)) = list.take() {
            if matches!(block.kind, Kind::Item { list, .. } if list == id) {
                list = Some((id, group));
            } else {
                tree.push(group);
            }
        }
        if children.is_empty() {
            continue;
        }
        match &block.kind {
            Kind::Heading(level) => {
                let level = std::num::NonZeroU16::new(*level).unwrap_or(std::num::NonZeroU16::MIN);
                tree.push(TagGroup::with_children(Tag::Hn(level, None), children));
            }
            Kind::Paragraph => tree.push(TagGroup::with_children(Tag::P, children)),
            Kind::Item { list: id, label } => {
                let mut item = TagGroup::new(Tag::LI);
                if let Some(l) = labels.remove(&b) {
                    item.push(TagGroup::with_children(Tag::Lbl, vec![l.into()]));
                }
                item.push(TagGroup::with_children(Tag::LBody, children));
                let numbering = if label.text == "•" {
                    ListNumbering::Disc
                } else {
                    ListNumbering::Decimal
                };
                let (_, group) =
                    list.get_or_insert_with(|| (*id, TagGroup::new(Tag::L(numbering))));
                group.push(item);
            }
        }
    }
    if let Some((_, group)) = list {
        tree.push(group);
    }
    tree
}

fn metadata(head: &Letterhead, letter: &Letter<'_>) -> Metadata {
    let s = letter.stamp;
    let date = s.letter_date;
    let recipient = letter.recipient.first().map(String::as_str).unwrap_or("");
    // The ID is the letter's own: the same letter, the same ID.
    let id = crate::digest::hex(&Sha256::digest(s.message_id.as_bytes())[..16]);
    Metadata::new()
        .title(letter.title.to_string())
        .authors(vec![head.author.clone()])
        .description(format!(
            "Brev til {recipient}. Sags nr. {}, Akt-id {}",
            s.sags_nr, s.akt_id
        ))
        .keywords(vec![
            format!("Sags nr. {}", s.sags_nr),
            format!("Akt-id {}", s.akt_id),
        ])
        .language("da".into())
        .creator(format!("rundbrev {}", env!("CARGO_PKG_VERSION")))
        .document_id(id)
        .creation_date(
            DateTime::new(date.year().clamp(0, 9999) as u16)
                .month(date.month() as u8)
                .day(date.day() as u8),
        )
}

fn draw_logo(surface: &mut Surface<'_>, logo: &Logo) {
    let (bx, by, bw, bh) = layout::LOGO_BOX;
    let aspect = logo.aspect().max(0.01);
    let (w, h) = if bw / bh > aspect {
        (bh * aspect, bh)
    } else {
        (bw, bw / aspect)
    };
    let Some(size) = Size::from_wh(w, h) else {
        return;
    };
    surface.start_tagged(ContentTag::Artifact(ArtifactType::Header));
    surface.push_transform(&Transform::from_translate(bx + bw - w, by));
    match logo {
        Logo::Svg(tree) => {
            surface.draw_svg(tree, size, SvgSettings::default());
        }
        Logo::Png(bytes) => {
            if let Ok(image) = Image::from_png(Data::from(bytes.as_ref().clone()), false) {
                surface.draw_image(image, size);
            }
        }
    }
    surface.pop();
    surface.end_tagged();
}

fn draw_tagged(surface: &mut Surface<'_>, piece: &Piece) -> Identifier {
    let id = surface.start_tagged(ContentTag::Span(SpanTag::empty()));
    draw(surface, piece);
    surface.end_tagged();
    id
}

fn draw(surface: &mut Surface<'_>, piece: &Piece) {
    let color = if piece.muted {
        rgb::Color::new(80, 80, 80)
    } else if piece.link.is_some() {
        rgb::Color::new(0, 60, 140)
    } else {
        rgb::Color::new(0, 0, 0)
    };
    surface.set_fill(Some(Fill {
        paint: color.into(),
        ..Fill::default()
    }));
    surface.draw_text(
        Point::from_xy(piece.x, piece.y),
        fonts::fonts().font(piece.style),
        piece.size,
        &piece.text,
        false,
        TextDirection::LeftToRight,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn head() -> Letterhead {
        Letterhead {
            ministry: "Udlændinge- og Integrationsministeriet".into(),
            logo: None,
            sender: vec!["Slotsholmsgade 10".into(), "1216 København K".into()],
            footer: "Slotsholmsgade 10 · 1216 København K · CVR-nr. 36977191".into(),
            author: "Udlændinge- og Integrationsministeriet".into(),
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            letter_date: NaiveDate::from_ymd_opt(2020, 6, 29).unwrap(),
            sags_nr: "2020-12345".into(),
            akt_id: "1286555".into(),
            message_id: "a.101@uim.dk".into(),
        }
    }

    #[test]
    fn the_same_letter_is_the_same_bytes_and_another_is_not() {
        let (h, s) = (head(), stamp());
        let r = vec!["Ærø Kommune".to_string()];
        let letter = Letter {
            title: "Øget opmærksomhed",
            recipient: &r,
            stamp: &s,
            markdown: "Til samtlige kommuner\n\n- [RED](https://red-center.dk/)\n",
        };
        let a = render(&h, &letter).unwrap();
        assert!(a.starts_with(b"%PDF-1."));
        assert_eq!(a, render(&h, &letter).unwrap());
        let other = vec!["Fanø Kommune".to_string()];
        let b = render(
            &h,
            &Letter {
                recipient: &other,
                ..letter
            },
        )
        .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_logo_must_be_an_image_that_can_be_read() {
        let svg = br##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="#c00"/></svg>"##;
        let logo = Logo::from_bytes("logo.svg", svg.to_vec()).unwrap();
        assert!((logo.aspect() - 2.0).abs() < 0.01);
        assert!(Logo::from_bytes("logo.svg", b"not svg".to_vec()).is_err());
        assert!(Logo::from_bytes("logo.png", b"not png".to_vec()).is_err());
        assert!(Logo::from_bytes("logo.gif", svg.to_vec())
            .unwrap_err()
            .contains("SVG or PNG"));
        let mut h = head();
        h.logo = Some(logo);
        let r = vec!["Ærø Kommune".to_string()];
        let s = stamp();
        let pdf = render(
            &h,
            &Letter {
                title: "x",
                recipient: &r,
                stamp: &s,
                markdown: "Tekst\n",
            },
        )
        .unwrap();
        assert!(pdf.starts_with(b"%PDF-1."));

        // A PNG logo with transparency, 4 by 2 pixels: PDF/A-2b allows it.
        let png = b"\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x04\x00\x00\x00\x02\x08\x06\x00\x00\x00\x7f\xa8\x7d\x63\x00\x00\x00\x12\x49\x44\x41\x54\x78\x9c\x63\x38\xc1\xc0\xf0\x1f\x19\x33\xa0\x0b\x00\x00\xef\x46\x0e\x39\x5c\x93\xff\x87\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";
        let logo = Logo::from_bytes("logo.PNG", png.to_vec()).unwrap();
        assert!((logo.aspect() - 2.0).abs() < 0.01);
        h.logo = Some(logo);
        let letter = Letter {
            title: "x",
            recipient: &r,
            stamp: &s,
            markdown: "Tekst\n",
        };
        assert!(render(&h, &letter).unwrap().starts_with(b"%PDF-1."));
    }
}
