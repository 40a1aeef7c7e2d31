//! A small RGB raster for the pictures that carry text (the loss chart, the
//! real-versus-generated sheet, the animation's captions): filled
//! rectangles, antialiased lines and dots, grayscale image blits, and text in
//! DejaVu Sans, embedded in the binary (`assets/fonts/`, Bitstream Vera
//! licence), so no system font library is needed.

use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// An RGB colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];

static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The embedded font, parsed once (it is a constant of the build; the unit
/// tests check that it parses).
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// Where a text's anchor point lies on the text's box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// An RGB image being drawn, row-major, 3 bytes a pixel.
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A `width` x `height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Rgb) -> Canvas {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..width as usize * height as usize {
            pixels.extend_from_slice(&background);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// The pixel at (x, y), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` in [0, 1];
    /// outside the canvas it does nothing.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        if a <= 0.0 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        for (c, &target) in color.iter().enumerate() {
            let old = f32::from(self.pixels[i + c]);
            self.pixels[i + c] = (old + (f32::from(target) - old) * a).round() as u8;
        }
    }

    /// Fills the rectangle with top-left (x, y), clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        for yy in y.max(0)..(y + h).min(i64::from(self.height)) {
            for xx in x.max(0)..(x + w).min(i64::from(self.width)) {
                self.blend(xx, yy, color, 1.0);
            }
        }
    }

    /// An antialiased line segment `width` pixels wide with round ends
    /// (pixel centres are at integer + 0.5).
    pub fn line(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), width: f32, color: Rgb) {
        let r = width / 2.0;
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let xmin = (x0.min(x1) - r - 1.0).floor() as i64;
        let xmax = (x0.max(x1) + r + 1.0).ceil() as i64;
        let ymin = (y0.min(y1) - r - 1.0).floor() as i64;
        let ymax = (y0.max(y1) + r + 1.0).ceil() as i64;
        for y in ymin.max(0)..=ymax.min(i64::from(self.height)) {
            for x in xmin.max(0)..=xmax.min(i64::from(self.width)) {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = if len2 > 0.0 {
                    (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (cx, cy) = (x0 + t * dx - px, y0 + t * dy - py);
                let d = (cx * cx + cy * cy).sqrt();
                self.blend(x, y, color, r + 0.5 - d);
            }
        }
    }

    /// A filled antialiased dot of `radius` pixels centred on (x, y).
    pub fn dot(&mut self, center: (f32, f32), radius: f32, color: Rgb) {
        self.line(center, center, 2.0 * radius, color);
    }

    /// Draws an image of `w * h` pixels, each `channels` interleaved bytes
    /// (1: grey, 0 black .. 255 white; 3: RGB), with its top-left at (x, y),
    /// each pixel as a `scale` x `scale` block.
    pub fn image(
        &mut self,
        (x, y): (i64, i64),
        image: &[u8],
        (w, h): (usize, usize),
        channels: usize,
        scale: usize,
    ) {
        let channels = channels.max(1);
        for (row, line) in image.chunks(w * channels).take(h).enumerate() {
            for (col, p) in line.chunks(channels).enumerate() {
                let color = if channels >= 3 {
                    [p[0], p[1], p[2]]
                } else {
                    [p[0]; 3]
                };
                let (px, py) = (x + (col * scale) as i64, y + (row * scale) as i64);
                self.fill_rect(px, py, scale as i64, scale as i64, color);
            }
        }
    }

    /// The canvas's RGB bytes, row-major.
    pub fn rgb(&self) -> &[u8] {
        &self.pixels
    }

    /// The width in pixels of `text` at `size` pixels.
    pub fn text_width(text: &str, size: f32) -> f32 {
        let Some(font) = font() else { return 0.0 };
        let font = font.as_scaled(PxScale::from(size));
        let mut width = 0.0;
        let mut last = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(prev) = last {
                width += font.kern(prev, id);
            }
            width += font.h_advance(id);
            last = Some(id);
        }
        width
    }

    /// Draws `text` at `size` pixels; `(x, y)` is the anchor: the top of
    /// the text's line box, and its left end, centre or right end per `align`.
    pub fn text(&mut self, (x, y): (f32, f32), text: &str, size: f32, align: Align, color: Rgb) {
        let Some(font) = font() else { return };
        let scaled = font.as_scaled(PxScale::from(size));
        let width = Self::text_width(text, size);
        let mut caret = match align {
            Align::Left => x,
            Align::Center => x - width / 2.0,
            Align::Right => x - width,
        };
        let baseline = y + scaled.ascent();
        let mut last = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(prev) = last {
                caret += scaled.kern(prev, id);
            }
            let glyph = id.with_scale_and_position(size, point(caret, baseline));
            caret += scaled.h_advance(id);
            last = Some(id);
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                let (bx, by) = (bounds.min.x as i64, bounds.min.y as i64);
                outlined.draw(|gx, gy, coverage| {
                    self.blend(bx + i64::from(gx), by + i64::from(gy), color, coverage)
                });
            }
        }
    }

    /// The height of a line of text at `size` pixels.
    pub fn line_height(size: f32) -> f32 {
        font().map_or(size, |f| {
            let s = f.as_scaled(PxScale::from(size));
            s.ascent() - s.descent()
        })
    }

    /// The canvas as gray bytes (the mean of the channels), for GIF frames.
    pub fn to_gray(&self) -> Vec<u8> {
        self.pixels
            .chunks(3)
            .map(|p| ((u16::from(p[0]) + u16::from(p[1]) + u16::from(p[2])) / 3) as u8)
            .collect()
    }

    /// Encodes the canvas as an RGB PNG and writes it atomically to `path`.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                &self.pixels,
                self.width,
                self.height,
                ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::Image {
                path: path.to_path_buf(),
                problem: format!("PNG encoding failed: {e}"),
            })?;
        write_atomic(path, &png)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_parses_and_draws() {
        assert!(font().is_some());
        assert!(Canvas::text_width("epoch", 14.0) > 20.0);
        let mut c = Canvas::new(60, 24, WHITE);
        c.text((2.0, 2.0), "10", 16.0, Align::Left, BLACK);
        let dark = (0..60)
            .flat_map(|x| (0..24).map(move |y| (x, y)))
            .filter(|&(x, y)| c.pixel(x, y).is_some_and(|p| p[0] < 128))
            .count();
        assert!(dark > 20, "text drew {dark} dark pixels");
    }

    #[test]
    fn lines_and_rectangles_clip_to_the_canvas() {
        let mut c = Canvas::new(10, 10, WHITE);
        c.fill_rect(-5, -5, 8, 8, BLACK);
        c.line((-20.0, 5.0), (30.0, 5.0), 2.0, BLACK);
        assert_eq!(c.pixel(0, 0), Some(BLACK));
        assert_eq!(c.pixel(9, 4), Some(BLACK));
        assert_eq!(c.pixel(9, 9), Some(WHITE));
        assert_eq!(c.pixel(10, 0), None);
    }
}
