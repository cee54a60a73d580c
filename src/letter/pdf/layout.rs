//! Setting the letter on A4 pages: where every piece of text goes.
//!
//! The first page carries the letterhead (the ministry's name, the sender block), the
//! recipient's block and the stamps; then the merged Markdown follows: headings, paragraphs,
//! lists and links, broken into lines with the typeface's own measures and into pages. Every
//! page ends with the footer (the sender's address and CVR) and "Side 1 af 2". The result is
//! plain data, grouped the way the text reads, so the caller can tag it. This module is pure: it
//! draws nothing, and reads no file.

use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};

use super::fonts::{fonts, Style};

/// A4 in points.
pub(crate) const PAGE_WIDTH: f32 = 595.28;
pub(crate) const PAGE_HEIGHT: f32 = 841.89;
/// The left and right margins.
pub(crate) const MARGIN: f32 = 68.0;
const RIGHT: f32 = PAGE_WIDTH - MARGIN;
const BODY_SIZE: f32 = 11.0;
const BODY_LEADING: f32 = 15.0;
const SMALL_SIZE: f32 = 8.5;
const SMALL_LEADING: f32 = 11.5;
/// The sender block's column on the first page.
const COLUMN_X: f32 = 390.0;
/// Body text stays above this line; the footer is below it.
const BODY_BOTTOM: f32 = 770.0;
const FOOTER_Y: f32 = 806.0;
/// Where the text starts on the pages after the first.
const NEXT_PAGE_TOP: f32 = 72.0;
const LIST_INDENT: f32 = 16.0;
/// The logo's box in the top right corner: x, y, width, height.
pub(crate) const LOGO_BOX: (f32, f32, f32, f32) = (RIGHT - 150.0, 34.0, 150.0, 52.0);

/// One run of text in one style at one place: `y` is the baseline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub page: usize,
    pub x: f32,
    pub y: f32,
    pub size: f32,
    pub style: Style,
    pub text: String,
    /// Where the text links to.
    pub link: Option<String>,
    /// Set in grey (the sender block, the footer).
    pub muted: bool,
}

impl Piece {
    /// The box the text covers: left, top, right, bottom.
    pub(crate) fn bounds(&self) -> (f32, f32, f32, f32) {
        let width = fonts().width(self.style, self.size, &self.text);
        (
            self.x,
            self.y - self.size * 0.9,
            self.x + width,
            self.y + self.size * 0.25,
        )
    }
}

/// What a group of pieces is, for the reader and for tagging.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Heading(u16),
    Paragraph,
    /// A list item; `list` tells which list it belongs to, `label` is its bullet or number.
    Item {
        list: usize,
        label: Box<Piece>,
    },
}

/// A heading, paragraph or list item, in reading order, with its pieces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub kind: Kind,
    pub pieces: Vec<Piece>,
}

/// The whole letter set on pages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub pages: usize,
    /// The letter's content, in reading order.
    pub blocks: Vec<Block>,
    /// What repeats on every page (the footer, the page numbers): not part of the text.
    pub furniture: Vec<Piece>,
}

/// What the first page says besides the text.
pub(crate) struct Head<'a> {
    pub ministry: &'a str,
    /// The sender block: address and contact lines.
    pub sender: &'a [String],
    /// The footer: one line, wrapped if needed.
    pub footer: &'a str,
    /// The recipient's name and address lines.
    pub recipient: &'a [String],
    /// The date, Sags nr. and Akt-id lines.
    pub stamps: &'a [String],
    /// Leave room for a logo above the letterhead.
    pub logo: bool,
}

/// Sets the letter: the first page's head, then the Markdown.
pub(crate) fn layout(head: &Head<'_>, events: &[Event<'_>]) -> Layout {
    let mut s = Setter {
        page: 0,
        y: 0.0,
        blocks: Vec::new(),
    };
    s.head(head);
    for source in blocks_of(events) {
        s.block(source);
    }
    let pages = s.page + 1;
    Layout {
        pages,
        blocks: s.blocks,
        furniture: furniture(head.footer, pages),
    }
}

/// Text with one style and maybe a link, before it is broken into lines.
#[derive(Debug, Clone, PartialEq)]
struct Span {
    text: String,
    bold: bool,
    italic: bool,
    link: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Heading(u16, Vec<Span>),
    Paragraph(Vec<Span>),
    Item {
        list: usize,
        depth: usize,
        label: String,
        spans: Vec<Span>,
    },
    Rule,
}

/// The Markdown's blocks, with their inline text and styles.
fn blocks_of(events: &[Event<'_>]) -> Vec<Source> {
    let mut out = Vec::new();
    let mut cur: Option<Source> = None;
    let (mut bold, mut italic) = (0u32, 0u32);
    let mut link: Option<String> = None;
    // Open lists: (list id, next number if ordered).
    let mut lists: Vec<(usize, Option<u64>)> = Vec::new();
    let mut list_count = 0usize;
    let flush = |cur: &mut Option<Source>, out: &mut Vec<Source>| {
        if let Some(b) = cur.take() {
            out.push(b);
        }
    };
    for event in events {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut cur, &mut out);
                cur = Some(Source::Heading(heading_level(*level), Vec::new()));
            }
            Event::Start(Tag::Paragraph) => {
                // A paragraph inside a list item continues the item.
                match &mut cur {
                    Some(Source::Item { spans, .. }) => {
                        if !spans.is_empty() {
                            spans.push(plain("\n"));
                        }
                    }
                    _ => {
                        flush(&mut cur, &mut out);
                        cur = Some(Source::Paragraph(Vec::new()));
                    }
                }
            }
            // A paragraph inside a list item does not end the item.
            Event::End(TagEnd::Paragraph | TagEnd::Heading(_))
                if !matches!(cur, Some(Source::Item { .. })) =>
            {
                flush(&mut cur, &mut out)
            }
            Event::Start(Tag::List(first)) => {
                flush(&mut cur, &mut out);
                lists.push((list_count, *first));
                list_count += 1;
            }
            Event::End(TagEnd::List(_)) => {
                flush(&mut cur, &mut out);
                lists.pop();
            }
            Event::Start(Tag::Item) => {
                flush(&mut cur, &mut out);
                let depth = lists.len();
                let (list, label) = match lists.last_mut() {
                    Some((id, Some(n))) => {
                        let label = format!("{n}.");
                        *n += 1;
                        (*id, label)
                    }
                    Some((id, None)) => (*id, "•".to_string()),
                    None => (0, "•".to_string()),
                };
                cur = Some(Source::Item {
                    list,
                    depth,
                    label,
                    spans: Vec::new(),
                });
            }
            Event::End(TagEnd::Item) => flush(&mut cur, &mut out),
            Event::Start(Tag::Strong) => bold += 1,
            Event::End(TagEnd::Strong) => bold = bold.saturating_sub(1),
            Event::Start(Tag::Emphasis) => italic += 1,
            Event::End(TagEnd::Emphasis) => italic = italic.saturating_sub(1),
            Event::Start(Tag::Link { dest_url, .. }) => link = Some(dest_url.to_string()),
            Event::End(TagEnd::Link) => link = None,
            Event::Rule => {
                flush(&mut cur, &mut out);
                out.push(Source::Rule);
            }
            Event::Text(t) | Event::Code(t) => {
                let spans = match &mut cur {
                    Some(
                        Source::Heading(_, spans)
                        | Source::Paragraph(spans)
                        | Source::Item { spans, .. },
                    ) => spans,
                    _ => {
                        cur = Some(Source::Paragraph(Vec::new()));
                        match &mut cur {
                            Some(Source::Paragraph(spans)) => spans,
                            _ => unreachable!(),
                        }
                    }
                };
                spans.push(Span {
                    text: t.to_string(),
                    bold: bold > 0,
                    italic: italic > 0,
                    link: link.clone(),
                });
            }
            Event::SoftBreak => push_to(&mut cur, plain(" ")),
            Event::HardBreak => push_to(&mut cur, plain("\n")),
            _ => {}
        }
    }
    flush(&mut cur, &mut out);
    out
}

fn push_to(cur: &mut Option<Source>, span: Span) {
    if let Some(Source::Heading(_, spans) | Source::Paragraph(spans) | Source::Item { spans, .. }) =
        cur
    {
        spans.push(span);
    }
}

fn plain(text: &str) -> Span {
    Span {
        text: text.to_string(),
        bold: false,
        italic: false,
        link: None,
    }
}

fn heading_level(level: HeadingLevel) -> u16 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// A word or part of one, in one style.
#[derive(Debug, Clone)]
struct Bit {
    text: String,
    style: Style,
    link: Option<String>,
}

/// What line breaking works on.
#[derive(Debug, Clone)]
enum Token {
    Word(Vec<Bit>),
    Space,
    Break,
}

fn tokens(spans: &[Span], force_bold: bool) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::new();
    let mut word: Vec<Bit> = Vec::new();
    let end_word = |word: &mut Vec<Bit>, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    for span in spans {
        let style = Style::new(span.bold || force_bold, span.italic);
        let mut text = String::new();
        for c in span.text.chars() {
            match c {
                '\n' | ' ' | '\t' => {
                    if !text.is_empty() {
                        word.push(Bit {
                            text: std::mem::take(&mut text),
                            style,
                            link: span.link.clone(),
                        });
                    }
                    end_word(&mut word, &mut out);
                    let token = if c == '\n' {
                        Token::Break
                    } else {
                        Token::Space
                    };
                    if !(matches!(token, Token::Space) && matches!(out.last(), Some(Token::Space)))
                    {
                        out.push(token);
                    }
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            word.push(Bit {
                text,
                style,
                link: span.link.clone(),
            });
        }
    }
    end_word(&mut word, &mut out);
    out
}

/// One set line before it is given its place: its bits, spaces included.
type Line = Vec<Bit>;

fn bits_width(bits: &[Bit], size: f32) -> f32 {
    bits.iter()
        .map(|b| fonts().width(b.style, size, &b.text))
        .sum()
}

/// Breaks tokens into lines no wider than `width`. A word wider than a line (a long web
/// address) is broken where it fits, after a '/' or '-' if there is one near.
fn break_lines(tokens: &[Token], size: f32, width: f32) -> Vec<Line> {
    let f = fonts();
    let mut lines: Vec<Line> = Vec::new();
    let mut line: Line = Vec::new();
    let mut used = 0.0f32;
    let mut pending_space = false;
    let space = f.width(Style::Regular, size, " ");
    for token in tokens {
        match token {
            Token::Space => pending_space = !line.is_empty(),
            Token::Break => {
                lines.push(std::mem::take(&mut line));
                used = 0.0;
                pending_space = false;
            }
            Token::Word(bits) => {
                let w = bits_width(bits, size);
                let gap = if pending_space { space } else { 0.0 };
                if used + gap + w <= width {
                    if pending_space {
                        push_space(&mut line);
                    }
                    line.extend(bits.iter().cloned());
                    used += gap + w;
                } else if w <= width {
                    lines.push(std::mem::take(&mut line));
                    line.extend(bits.iter().cloned());
                    used = w;
                } else {
                    // Too long for any line: fill this line, then go on on the next.
                    if pending_space && used + space < width * 0.7 {
                        push_space(&mut line);
                        used += space;
                    } else if !line.is_empty() {
                        lines.push(std::mem::take(&mut line));
                        used = 0.0;
                    }
                    for bit in bits {
                        let mut rest = bit.text.as_str();
                        while !rest.is_empty() {
                            let fits = fitting_prefix(rest, bit.style, size, width - used);
                            let take = if fits == 0 && line.is_empty() {
                                // Not even one character fits an empty line: take one anyway.
                                rest.chars()
                                    .next()
                                    .map(char::len_utf8)
                                    .unwrap_or(rest.len())
                            } else {
                                fits
                            };
                            if take == 0 {
                                lines.push(std::mem::take(&mut line));
                                used = 0.0;
                                continue;
                            }
                            let (head, tail) = rest.split_at(take);
                            used += f.width(bit.style, size, head);
                            line.push(Bit {
                                text: head.to_string(),
                                style: bit.style,
                                link: bit.link.clone(),
                            });
                            rest = tail;
                            if !rest.is_empty() {
                                lines.push(std::mem::take(&mut line));
                                used = 0.0;
                            }
                        }
                    }
                }
                pending_space = false;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// How many bytes of `text` fit in `room`, ending after a '/', '-', '_', '?', '&' or '=' when
/// one is in the last third of what fits.
fn fitting_prefix(text: &str, style: Style, size: f32, room: f32) -> usize {
    let f = fonts();
    let mut fit = 0usize;
    let mut nice = None;
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        if f.width(style, size, &text[..end]) > room {
            break;
        }
        fit = end;
        if matches!(c, '/' | '-' | '_' | '?' | '&' | '=' | '.') {
            nice = Some(end);
        }
    }
    match nice {
        Some(n) if fit == text.len() => n.max(fit),
        Some(n) if n * 3 >= fit * 2 => n,
        _ => fit,
    }
}

fn push_space(line: &mut Line) {
    if let Some(last) = line.last_mut() {
        last.text.push(' ');
    }
}

/// Joins a line's bits of the same style and link into pieces placed from `x` on `y`.
fn place(line: &Line, page: usize, x: f32, y: f32, size: f32, muted: bool) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut at = x;
    for bit in line {
        match pieces.last_mut() {
            Some(p) if p.style == bit.style && p.link == bit.link => p.text.push_str(&bit.text),
            _ => {
                if let Some(p) = pieces.last() {
                    at = p.x + fonts().width(p.style, p.size, &p.text);
                }
                pieces.push(Piece {
                    page,
                    x: at,
                    y,
                    size,
                    style: bit.style,
                    text: bit.text.clone(),
                    link: bit.link.clone(),
                    muted,
                });
            }
        }
    }
    // A line ends in no space.
    if let Some(p) = pieces.last_mut() {
        let trimmed = p.text.trim_end().len();
        p.text.truncate(trimmed);
    }
    pieces.retain(|p| !p.text.is_empty());
    pieces
}

fn plain_lines(lines: &[String]) -> Vec<Token> {
    let spans: Vec<Span> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            let mut v = Vec::new();
            if i > 0 {
                v.push(plain("\n"));
            }
            v.push(plain(l));
            v
        })
        .collect();
    tokens(&spans, false)
}

struct Setter {
    page: usize,
    /// The baseline of the last line set.
    y: f32,
    blocks: Vec<Block>,
}

impl Setter {
    /// The first page: the ministry's name, the sender block and stamps on the right, the
    /// recipient on the left.
    fn head(&mut self, h: &Head<'_>) {
        let top = if h.logo { 106.0 } else { 78.0 };
        let name_lines = break_lines(
            &tokens(&[plain(h.ministry)], true),
            15.0,
            if h.logo { RIGHT - MARGIN } else { 300.0 },
        );
        let mut y = top;
        let mut pieces = Vec::new();
        for line in &name_lines {
            pieces.extend(place(line, 0, MARGIN, y, 15.0, false));
            y += 18.0;
        }
        self.blocks.push(Block {
            kind: Kind::Heading(1),
            pieces,
        });

        // The sender block and the stamps, in the right column.
        let column = RIGHT - COLUMN_X;
        let mut cy = y + 22.0;
        for (lines, muted) in [(h.sender, true), (h.stamps, false)] {
            if lines.is_empty() {
                continue;
            }
            let mut pieces = Vec::new();
            for line in break_lines(&plain_lines(lines), SMALL_SIZE, column) {
                pieces.extend(place(&line, 0, COLUMN_X, cy, SMALL_SIZE, muted));
                cy += SMALL_LEADING;
            }
            cy += SMALL_LEADING;
            self.blocks.push(Block {
                kind: Kind::Paragraph,
                pieces,
            });
        }

        // The recipient, on the left.
        let mut ry = y + 40.0;
        let mut pieces = Vec::new();
        for line in break_lines(
            &plain_lines(h.recipient),
            BODY_SIZE,
            COLUMN_X - MARGIN - 20.0,
        ) {
            pieces.extend(place(&line, 0, MARGIN, ry, BODY_SIZE, false));
            ry += BODY_LEADING;
        }
        self.blocks.insert(
            1,
            Block {
                kind: Kind::Paragraph,
                pieces,
            },
        );
        self.y = ry.max(cy) + 12.0;
    }

    fn new_page(&mut self) {
        self.page += 1;
        self.y = NEXT_PAGE_TOP - BODY_LEADING;
    }

    fn block(&mut self, source: Source) {
        match source {
            Source::Heading(level, spans) => {
                let size = match level {
                    1 => 16.0,
                    2 => 13.5,
                    _ => 12.0,
                };
                let lines = break_lines(&tokens(&spans, true), size, RIGHT - MARGIN);
                // A heading keeps at least two lines of text below it on its page.
                let needed = 8.0 + lines.len() as f32 * size * 1.3 + 2.0 * BODY_LEADING;
                if self.y + needed > BODY_BOTTOM {
                    self.new_page();
                }
                self.y += 8.0;
                let pieces = self.set_lines(&lines, MARGIN, size, size * 1.3);
                self.y += 4.0;
                self.blocks.push(Block {
                    kind: Kind::Heading(level),
                    pieces,
                });
            }
            Source::Paragraph(spans) => {
                let lines = break_lines(&tokens(&spans, false), BODY_SIZE, RIGHT - MARGIN);
                let pieces = self.set_lines(&lines, MARGIN, BODY_SIZE, BODY_LEADING);
                self.y += 7.0;
                self.blocks.push(Block {
                    kind: Kind::Paragraph,
                    pieces,
                });
            }
            Source::Item {
                list,
                depth,
                label,
                spans,
            } => {
                let indent = MARGIN + LIST_INDENT * depth as f32;
                let lines = break_lines(&tokens(&spans, false), BODY_SIZE, RIGHT - indent);
                // The first line and the label go on the same page.
                if self.y + BODY_LEADING > BODY_BOTTOM {
                    self.new_page();
                }
                let label_piece = Piece {
                    page: self.page,
                    x: indent - LIST_INDENT + 4.0,
                    y: self.y + BODY_LEADING,
                    size: BODY_SIZE,
                    style: Style::Regular,
                    text: label,
                    link: None,
                    muted: false,
                };
                let pieces = self.set_lines(&lines, indent, BODY_SIZE, BODY_LEADING);
                self.y += 3.0;
                self.blocks.push(Block {
                    kind: Kind::Item {
                        list,
                        label: Box::new(label_piece),
                    },
                    pieces,
                });
            }
            Source::Rule => self.y += BODY_LEADING,
        }
    }

    fn set_lines(&mut self, lines: &[Line], x: f32, size: f32, leading: f32) -> Vec<Piece> {
        let mut pieces = Vec::new();
        for line in lines {
            if self.y + leading > BODY_BOTTOM {
                self.new_page();
            }
            self.y += leading;
            pieces.extend(place(line, self.page, x, self.y, size, false));
        }
        pieces
    }
}

/// The footer and "Side n af m" on every page.
fn furniture(footer: &str, pages: usize) -> Vec<Piece> {
    let size = 7.5;
    let number_room = 70.0;
    let lines = break_lines(
        &tokens(&[plain(footer)], false),
        size,
        RIGHT - MARGIN - number_room,
    );
    let mut out = Vec::new();
    for page in 0..pages {
        for (i, line) in lines.iter().enumerate() {
            out.extend(place(
                line,
                page,
                MARGIN,
                FOOTER_Y + i as f32 * 10.0,
                size,
                true,
            ));
        }
        let number = format!("Side {} af {}", page + 1, pages);
        let width = fonts().width(Style::Regular, 8.0, &number);
        out.push(Piece {
            page,
            x: RIGHT - width,
            y: FOOTER_Y,
            size: 8.0,
            style: Style::Regular,
            text: number,
            link: None,
            muted: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(md: &str) -> Vec<Event<'_>> {
        crate::letter::render::parser(md).collect()
    }

    fn head<'a>(recipient: &'a [String], stamps: &'a [String], sender: &'a [String]) -> Head<'a> {
        Head {
            ministry: "Udlændinge- og Integrationsministeriet",
            sender,
            footer: "Slotsholmsgade 10 · 1216 København K · CVR-nr. 36977191",
            recipient,
            stamps,
            logo: false,
        }
    }

    fn text_of(l: &Layout) -> String {
        l.blocks
            .iter()
            .flat_map(|b| b.pieces.iter().map(|p| p.text.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn every_line_stays_within_the_margins_and_every_word_is_set() {
        let long = "Jeg skriver til jer, fordi jeg er blevet opmærksom på, at flere kommuner og organisationer oplever behov for øget opmærksomhed. ".repeat(8);
        let md = format!("{long}\n\n- Håndbog  \n<https://uim.dk/arbejdsomrader/aeresrelaterede-konflikter-og-negativ-social-kontrol/tilbud-og-vaerktojer-til-fagfolk/sikkerhedskonsulenterne>\n");
        let r = vec!["Ærø Kommune".to_string()];
        let l = layout(&head(&r, &[], &[]), &events(&md));
        for p in l.blocks.iter().flat_map(|b| &b.pieces) {
            let (left, _, right, _) = p.bounds();
            assert!(
                left >= MARGIN - 0.01 && right <= RIGHT + 0.01,
                "{p:?} {right}"
            );
        }
        let words: String = long.split_whitespace().collect();
        let set: String = text_of(&l).split_whitespace().collect();
        assert!(set.contains(&words), "{set}");
        assert!(set.contains("sikkerhedskonsulenterne"));
        let link = l
            .blocks
            .iter()
            .flat_map(|b| &b.pieces)
            .filter(|p| p.link.is_some())
            .count();
        assert!(
            link >= 2,
            "the long address is broken over lines, each part linked"
        );
    }

    #[test]
    fn a_long_letter_runs_onto_numbered_pages() {
        let md = "Et afsnit med nogle ord, der fylder en linje eller to på siden.\n\n".repeat(80);
        let r = vec!["Ærø Kommune".to_string()];
        let l = layout(&head(&r, &[], &[]), &events(&md));
        assert!(l.pages >= 3, "{}", l.pages);
        for p in l.blocks.iter().flat_map(|b| &b.pieces) {
            assert!(p.y <= BODY_BOTTOM, "{p:?}");
        }
        let last = format!("Side {} af {}", l.pages, l.pages);
        assert!(l
            .furniture
            .iter()
            .any(|p| p.text == last && p.page == l.pages - 1));
        assert!(l
            .furniture
            .iter()
            .any(|p| p.text == "Side 1 af 3" || l.pages != 3));
    }

    #[test]
    fn headings_lists_and_links_keep_their_kind() {
        let md = "### Relevante links\n\n- Første **punkt**\n- [Andet](https://red-center.dk/)\n\n1. et\n2. to\n";
        let r = vec!["Ærø Kommune".to_string(), "Vestergade 35".to_string()];
        let stamps = vec!["29. juni 2020".to_string(), "Akt-id 1".to_string()];
        let l = layout(&head(&r, &stamps, &[]), &events(md));
        let heading = l
            .blocks
            .iter()
            .find(|b| b.kind == Kind::Heading(3))
            .unwrap();
        assert_eq!(heading.pieces[0].text, "Relevante links");
        assert_eq!(heading.pieces[0].style, Style::Bold);
        let items: Vec<&Block> = l
            .blocks
            .iter()
            .filter(|b| matches!(b.kind, Kind::Item { .. }))
            .collect();
        assert_eq!(items.len(), 4);
        let labels: Vec<String> = items
            .iter()
            .map(|b| match &b.kind {
                Kind::Item { label, .. } => label.text.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(labels, ["•", "•", "1.", "2."]);
        assert!(items[0]
            .pieces
            .iter()
            .any(|p| p.text == "punkt" && p.style == Style::Bold));
        assert_eq!(
            items[1].pieces[0].link.as_deref(),
            Some("https://red-center.dk/")
        );
        // The recipient's block comes first in reading order, after the ministry's name.
        assert_eq!(l.blocks[1].pieces[0].text, "Ærø Kommune");
        assert_eq!(l.blocks[1].pieces[1].text, "Vestergade 35");
    }
}
