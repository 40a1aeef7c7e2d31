//! PNG grids of grey or RGB images: the sample sheets written during
//! training.
//!
//! Images keep their look (MNIST's white ink on a black background, pixel
//! values as stored; RGB images in colour), separated by a [`GUTTER`]-pixel
//! gray gutter, and can be upscaled by an integer factor so that 28x28
//! digits are legible. Images come channel-planar (as the data set and the
//! generator hold them); the grid is interleaved, one byte per channel.

use std::path::Path;

use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};

use crate::error::{Error, Result};
use crate::model::ImageShape;
use crate::util::write_atomic;

/// Width in output pixels of the gutter between cells (not scaled).
pub const GUTTER: u32 = 2;

/// The gutter's gray level: visibly different from both background and ink.
pub const GUTTER_GRAY: u8 = 64;

pub use crate::model::images_from_outputs;

/// Writes `images` (each `shape.len()` bytes, channel-planar; grey: 0 =
/// background, 255 = ink) as a `grid_rows` x `grid_cols` PNG grid (grey or
/// RGB as the images are), filled row by row, each pixel drawn as a `scale`
/// x `scale` block. Fewer images than cells leaves the remaining cells
/// black. The write is atomic (`path.tmp`, then rename).
pub fn write_grid(
    path: &Path,
    images: &[u8],
    shape: ImageShape,
    (grid_rows, grid_cols): (usize, usize),
    scale: u32,
) -> Result<()> {
    let (canvas, width, height) = render_grid(path, images, shape, (grid_rows, grid_cols), scale)?;
    let colour = if shape.channels == 3 {
        ExtendedColorType::Rgb8
    } else {
        ExtendedColorType::L8
    };
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&canvas, width, height, colour)
        .map_err(|e| image_error(path, format!("PNG encoding failed: {e}")))?;
    write_atomic(path, &png)
}

/// The grid [`write_grid`] writes, as bytes (row-major, `shape.channels`
/// interleaved per pixel: grey or RGB) with its width and height; `path`
/// only names the picture in errors. Only 1 and 3 channels are drawn.
pub fn render_grid(
    path: &Path,
    images: &[u8],
    shape: ImageShape,
    (grid_rows, grid_cols): (usize, usize),
    scale: u32,
) -> Result<(Vec<u8>, u32, u32)> {
    if shape.channels != 1 && shape.channels != 3 {
        return Err(image_error(
            path,
            format!(
                "images of {} channels cannot be drawn (1 or 3)",
                shape.channels
            ),
        ));
    }
    let layout = Layout::new(path, shape, grid_rows, grid_cols, scale)?;
    check_images(path, images, &layout)?;
    Ok((layout.render(images), layout.width, layout.height))
}

/// The scale a sample grid draws images of `shape` at: 2 for MNIST-sized
/// images (28x28 digits are legible), 1 from 48 pixels up (a 10x10 grid
/// of 64x64 images is already 658 pixels wide).
pub fn grid_scale(shape: ImageShape) -> u32 {
    if shape.rows.max(shape.cols) >= 48 {
        1
    } else {
        2
    }
}

fn image_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// The grid's geometry, all checked to fit in `u32` and `usize`.
struct Layout {
    channels: usize,
    image_rows: usize,
    image_cols: usize,
    grid_cols: usize,
    cells: usize,
    scale: usize,
    width: u32,
    height: u32,
}

impl Layout {
    fn new(
        path: &Path,
        shape: ImageShape,
        grid_rows: usize,
        grid_cols: usize,
        scale: u32,
    ) -> Result<Self> {
        let (image_rows, image_cols) = (shape.rows, shape.cols);
        if image_rows == 0 || image_cols == 0 || grid_rows == 0 || grid_cols == 0 || scale == 0 {
            return Err(image_error(
                path,
                format!(
                    "empty grid: images {image_rows}x{image_cols}, grid {grid_rows}x{grid_cols}, scale {scale} (all must be nonzero)"
                ),
            ));
        }
        let too_big = || {
            image_error(
                path,
                format!(
                    "grid of {grid_rows}x{grid_cols} images of {image_rows}x{image_cols} at scale {scale} is too large for a PNG"
                ),
            )
        };
        let width = side(grid_cols, image_cols, scale).ok_or_else(too_big)?;
        let height = side(grid_rows, image_rows, scale).ok_or_else(too_big)?;
        // Keep the canvas addressable and sane (at most 2^31 pixels).
        let pixels = u64::from(width) * u64::from(height);
        if pixels > 1 << 31 {
            return Err(too_big());
        }
        Ok(Layout {
            channels: shape.channels,
            image_rows,
            image_cols,
            grid_cols,
            cells: grid_rows.checked_mul(grid_cols).ok_or_else(too_big)?,
            scale: scale as usize,
            width,
            height,
        })
    }

    fn image_len(&self) -> usize {
        self.channels * self.image_rows * self.image_cols
    }

    /// Draws the images onto a gutter-gray canvas, row-major, `channels`
    /// bytes a pixel.
    fn render(&self, images: &[u8]) -> Vec<u8> {
        let width = self.width as usize;
        let mut canvas = vec![GUTTER_GRAY; width * self.height as usize * self.channels];
        let cell_w = self.image_cols * self.scale + GUTTER as usize;
        let cell_h = self.image_rows * self.scale + GUTTER as usize;
        for cell in 0..self.cells {
            let (gy, gx) = (cell / self.grid_cols, cell % self.grid_cols);
            let start = cell * self.image_len();
            let image = images.get(start..start + self.image_len());
            self.draw_cell(&mut canvas, gy * cell_h, gx * cell_w, image);
        }
        canvas
    }

    /// Draws one image (or black, when there is none) with its top-left at
    /// (y0, x0): channel c of the planar image is byte c of each pixel.
    fn draw_cell(&self, canvas: &mut [u8], y0: usize, x0: usize, image: Option<&[u8]>) {
        let (width, channels) = (self.width as usize, self.channels);
        let plane = self.image_rows * self.image_cols;
        for y in 0..self.image_rows * self.scale {
            let row = (y0 + y) * width + x0;
            for x in 0..self.image_cols * self.scale {
                let src = (y / self.scale) * self.image_cols + x / self.scale;
                for c in 0..channels {
                    canvas[(row + x) * channels + c] = image.map_or(0, |img| img[c * plane + src]);
                }
            }
        }
    }
}

/// One side of the canvas: `n` cells of `len * scale` pixels with gutters between.
fn side(n: usize, len: usize, scale: u32) -> Option<u32> {
    let n = u32::try_from(n).ok()?;
    let len = u32::try_from(len).ok()?;
    let cells = n.checked_mul(len)?.checked_mul(scale)?;
    cells.checked_add((n - 1).checked_mul(GUTTER)?)
}

/// Errors unless `images` is a whole number of images that fits in the grid.
fn check_images(path: &Path, images: &[u8], layout: &Layout) -> Result<()> {
    let len = layout.image_len();
    if !images.len().is_multiple_of(len) {
        return Err(image_error(
            path,
            format!(
                "{} bytes is not a whole number of {}x{}x{} images",
                images.len(),
                layout.channels,
                layout.image_rows,
                layout.image_cols
            ),
        ));
    }
    let count = images.len() / len;
    if count > layout.cells {
        return Err(image_error(
            path,
            format!(
                "{count} images do not fit in a grid of {} cells",
                layout.cells
            ),
        ));
    }
    Ok(())
}
