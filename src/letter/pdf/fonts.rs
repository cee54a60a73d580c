//! The letter's typeface, built into the program, and the measuring of text set in it.
//!
//! Liberation Sans (SIL Open Font License 1.1; the files and the licence are in `assets/fonts/`)
//! in four styles. Text is measured with the same shaper krilla draws with, so a line that was
//! measured to fit is the line that is drawn. This module reads no file at run time and draws
//! nothing.

use std::sync::LazyLock;

use krilla::text::Font;
use krilla::Data;

/// The four styles of the typeface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Style {
    Regular,
    Bold,
    Italic,
    BoldItalic,
}

impl Style {
    pub(crate) fn new(bold: bool, italic: bool) -> Style {
        match (bold, italic) {
            (false, false) => Style::Regular,
            (true, false) => Style::Bold,
            (false, true) => Style::Italic,
            (true, true) => Style::BoldItalic,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static FILES: [&[u8]; 4] = [
    include_bytes!("../../../assets/fonts/LiberationSans-Regular.ttf"),
    include_bytes!("../../../assets/fonts/LiberationSans-Bold.ttf"),
    include_bytes!("../../../assets/fonts/LiberationSans-Italic.ttf"),
    include_bytes!("../../../assets/fonts/LiberationSans-BoldItalic.ttf"),
];

/// The typeface, ready to measure with and to draw with.
pub(super) struct Fonts {
    faces: Vec<rustybuzz::Face<'static>>,
    fonts: Vec<Font>,
}

static FONTS: LazyLock<Fonts> = LazyLock::new(|| Fonts {
    faces: FILES
        .iter()
        .map(|data| rustybuzz::Face::from_slice(data, 0).expect("the built-in font is valid"))
        .collect(),
    fonts: FILES
        .iter()
        .map(|data| Font::new(Data::from(*data), 0).expect("the built-in font is valid"))
        .collect(),
});

/// The built-in typeface.
pub(super) fn fonts() -> &'static Fonts {
    &FONTS
}

impl Fonts {
    /// The width of `text` in points, set in `style` at `size` points.
    pub(super) fn width(&self, style: Style, size: f32, text: &str) -> f32 {
        if text.is_empty() {
            return 0.0;
        }
        let face = &self.faces[style.index()];
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(text);
        buffer.guess_segment_properties();
        buffer.set_direction(rustybuzz::Direction::LeftToRight);
        let shaped = rustybuzz::shape(face, &[], buffer);
        let units: i32 = shaped.glyph_positions().iter().map(|p| p.x_advance).sum();
        units as f32 * size / face.units_per_em() as f32
    }

    /// Whether the typeface has a glyph for `c`.
    #[cfg(test)]
    pub(super) fn covers(&self, c: char) -> bool {
        self.faces[0].glyph_index(c).is_some()
    }

    /// The font to draw `style` with.
    pub(super) fn font(&self, style: Style) -> Font {
        self.fonts[style.index()].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn danish_letters_are_in_the_typeface_and_have_width() {
        let f = fonts();
        for c in "æøåÆØÅé–•".chars() {
            assert!(f.covers(c), "{c}");
        }
        let narrow = f.width(Style::Regular, 11.0, "il");
        let wide = f.width(Style::Regular, 11.0, "ØÆ");
        assert!(narrow > 0.0 && wide > narrow, "{narrow} {wide}");
        assert!(f.width(Style::Bold, 11.0, "Ærø") > f.width(Style::Regular, 11.0, "Ærø"));
        // Twice the size, twice the width.
        let a = f.width(Style::Regular, 10.0, "København");
        assert!((f.width(Style::Regular, 20.0, "København") - 2.0 * a).abs() < 0.01);
    }
}
