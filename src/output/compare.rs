//! `real.png`: real training images beside generated ones, labelled.
//!
//! - Unconditional models (`vanilla`, `deep`): a 10x10 grid of random
//!   training images (picked with the run's seed) on the left, the generated
//!   10x10 sample grid on the right.
//! - Conditional models, as in the tutorial: one column per class (the
//!   first 10), headed by its name, a row of real images of each class above
//!   a row of generated ones (the first image of each row of the sample
//!   grid, which asks for that class).
//!
//! Grey images are drawn grey, RGB images in colour.

use std::path::Path;

use super::canvas::{Align, Canvas, Rgb, WHITE};
use super::grid::{grid_scale, render_grid};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::ImageShape;
use crate::rng;

/// The sample grid's side (10 x 10 images).
const GRID: usize = crate::report::GRID_SIDE;
const MARGIN: u32 = 12;
const GAP: u32 = 24;
const HEADER: u32 = 32;
const LABEL_COLUMN: u32 = 96;
const FONT: f32 = 16.0;
const TEXT: Rgb = [20, 20, 20];

/// The real images a run shows beside its samples, picked once at the start.
#[derive(Clone, Debug)]
pub struct RealSamples {
    /// 100 images (unconditional) or one per class, class order.
    images: Vec<u8>,
    shape: ImageShape,
    /// The class names (none for an unconditional model).
    classes: Vec<String>,
}

impl RealSamples {
    /// Picks the real images from `data`: 100 random ones without classes,
    /// else one random image of each of the first 10 of `classes` (black
    /// where the data has none of a class).
    pub fn pick(data: &Dataset, classes: &[String], seed: u32) -> RealSamples {
        let shape = ImageShape {
            channels: data.channels,
            rows: data.rows,
            cols: data.cols,
        };
        let pixels = shape.len();
        let classes = classes.to_vec();
        let image = |i: usize| &data.images[i * pixels..(i + 1) * pixels];
        let random = |step: u32, k: usize| {
            rng::random_u32(seed, rng::stream::REAL_SAMPLES, step, k as u32) as usize
                % data.count.max(1)
        };
        let mut images = Vec::new();
        if data.count == 0 || data.images.len() < data.count * pixels {
            return RealSamples {
                images,
                shape,
                classes,
            };
        }
        if classes.is_empty() {
            for k in 0..GRID * GRID {
                images.extend_from_slice(image(random(0, k)));
            }
        } else {
            for digit in 0..classes.len().min(GRID) {
                let found = (0..20 * data.count.min(10_000))
                    .map(|k| random(1 + digit as u32, k))
                    .find(|&i| usize::from(data.labels[i]) == digit)
                    .or_else(|| data.labels.iter().position(|&l| usize::from(l) == digit));
                match found {
                    Some(i) => images.extend_from_slice(image(i)),
                    None => images.extend(std::iter::repeat_n(0u8, pixels)),
                }
            }
        }
        RealSamples {
            images,
            shape,
            classes,
        }
    }

    /// The picked images, one after another.
    pub fn images(&self) -> &[u8] {
        &self.images
    }
}

/// Writes `real.png`: `real` beside `generated` (the 10x10 sample grid's
/// images after `epoch` epochs), atomically.
pub fn write_real_vs_generated(
    path: &Path,
    real: &RealSamples,
    generated: &[u8],
    epoch: usize,
) -> Result<()> {
    let canvas = if real.classes.is_empty() {
        side_by_side(path, real, generated, epoch)?
    } else {
        digit_rows(path, real, generated, epoch)?
    };
    canvas.write_png(path)
}

/// Unconditional: two 10x10 grids with a title above each.
fn side_by_side(path: &Path, real: &RealSamples, generated: &[u8], epoch: usize) -> Result<Canvas> {
    let (shape, scale) = (real.shape, grid_scale(real.shape));
    let (left, w, h) = render_grid(path, &real.images, shape, (GRID, GRID), scale)?;
    let (right, _, _) = render_grid(path, generated, shape, (GRID, GRID), scale)?;
    let mut canvas = Canvas::new(
        2 * MARGIN + 2 * w + GAP,
        MARGIN + HEADER + h + MARGIN,
        WHITE,
    );
    let top = i64::from(MARGIN + HEADER);
    let (x0, x1) = (MARGIN, MARGIN + w + GAP);
    let size = (w as usize, h as usize);
    canvas.image((i64::from(x0), top), &left, size, shape.channels, 1);
    canvas.image((i64::from(x1), top), &right, size, shape.channels, 1);
    let title_y = (MARGIN + 4) as f32;
    let centre = |x: u32| (x + w / 2) as f32;
    canvas.text(
        (centre(x0), title_y),
        "real (training set)",
        FONT,
        Align::Center,
        TEXT,
    );
    let generated_title = format!("generated (epoch {epoch})");
    canvas.text(
        (centre(x1), title_y),
        &generated_title,
        FONT,
        Align::Center,
        TEXT,
    );
    Ok(canvas)
}

/// Conditional: the classes across, a real row above a generated row.
fn digit_rows(path: &Path, real: &RealSamples, generated: &[u8], epoch: usize) -> Result<Canvas> {
    let (shape, scale) = (real.shape, grid_scale(real.shape));
    let pixels = shape.len();
    let columns = real.classes.len().min(GRID);
    // The first image of each sample-grid row: the class that row asks for.
    let generated_row: Vec<u8> = (0..columns)
        .flat_map(|d| {
            let start = d * GRID * pixels;
            generated
                .get(start..start + pixels)
                .unwrap_or(&[])
                .iter()
                .copied()
        })
        .collect();
    let (top_row, w, h) = render_grid(path, &real.images, shape, (1, columns), scale)?;
    let (bottom_row, _, _) = render_grid(path, &generated_row, shape, (1, columns), scale)?;
    let row_gap = 10;
    let width = 2 * MARGIN + LABEL_COLUMN + w;
    let height = MARGIN + HEADER + 2 * h + row_gap + MARGIN;
    let mut canvas = Canvas::new(width, height, WHITE);
    let x0 = MARGIN + LABEL_COLUMN;
    let (y_real, y_gen) = (MARGIN + HEADER, MARGIN + HEADER + h + row_gap);
    let size = (w as usize, h as usize);
    canvas.image(
        (i64::from(x0), i64::from(y_real)),
        &top_row,
        size,
        shape.channels,
        1,
    );
    canvas.image(
        (i64::from(x0), i64::from(y_gen)),
        &bottom_row,
        size,
        shape.channels,
        1,
    );
    let image_width = shape.cols as u32 * scale;
    let cell = (image_width + super::GUTTER) as f32;
    for (d, name) in real.classes.iter().take(columns).enumerate() {
        let x = x0 as f32 + d as f32 * cell + image_width as f32 / 2.0;
        let label = fit_label(name, image_width as f32 + super::GUTTER as f32, FONT);
        canvas.text((x, (MARGIN + 6) as f32), &label, FONT, Align::Center, TEXT);
    }
    let label_x = (x0 - 10) as f32;
    let mid = |y: u32| (y + h / 2) as f32 - Canvas::line_height(FONT) / 2.0;
    canvas.text((label_x, mid(y_real)), "real", FONT, Align::Right, TEXT);
    canvas.text(
        (label_x, mid(y_gen) - 9.0),
        "generated",
        FONT,
        Align::Right,
        TEXT,
    );
    let epoch_label = format!("epoch {epoch}");
    canvas.text(
        (label_x, mid(y_gen) + 9.0),
        &epoch_label,
        FONT - 3.0,
        Align::Right,
        TEXT,
    );
    Ok(canvas)
}

/// `name`, shortened with an ellipsis until it is at most `width` pixels
/// wide at `size`: a class name as a column's caption.
pub fn fit_label(name: &str, width: f32, size: f32) -> String {
    if Canvas::text_width(name, size) <= width {
        return name.to_string();
    }
    let chars: Vec<char> = name.chars().collect();
    for keep in (1..chars.len()).rev() {
        let short: String = chars[..keep].iter().collect::<String>() + "\u{2026}";
        if Canvas::text_width(&short, size) <= width {
            return short;
        }
    }
    "\u{2026}".to_string()
}
