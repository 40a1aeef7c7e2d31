//! `progress.gif`: the sample grid over training, one frame per epoch (epoch
//! 0 included), all from the run's one fixed noise set, so the same digits
//! are seen taking shape. Each frame is the 10x10 grid at scale 1 with an
//! "epoch N" caption below; long runs are thinned to at most [`MAX_FRAMES`]
//! evenly spaced frames (the first and last always kept). A grey run's GIF
//! uses one global palette of [`GRAY_LEVELS`] evenly spaced grays (fewer
//! levels than 256 keep the LZW-compressed frames small: digits look the
//! same); an RGB run's frames each get their own palette of up to 256
//! colours, the frame's own colours where it has that few, else NeuQuant's
//! (the `color_quant` crate of image-rs, through `gif::Frame::from_rgb_speed`).
//! The GIF loops forever and holds the last frame longer. Each frame is rendered and
//! LZW-compressed once, when first written, so rewriting the GIF after every
//! epoch costs one frame's work plus copying bytes, not the whole animation.

use std::path::{Path, PathBuf};

use super::canvas::{Align, Canvas, BLACK};
use super::grid::render_grid;
use crate::error::{Error, Result};
use crate::model::ImageShape;
use crate::util::write_atomic;

/// The most frames a GIF gets; longer runs are sub-sampled.
pub const MAX_FRAMES: usize = 100;
/// Delay of each frame but the last, in GIF units of 10 ms.
pub const FRAME_DELAY: u16 = 15;
/// Delay of the last frame, in units of 10 ms.
pub const LAST_FRAME_DELAY: u16 = 200;
/// Gray levels of the palette (a power of two: the GIF code size).
pub const GRAY_LEVELS: u16 = 32;
/// Height in pixels of the caption strip under the grid.
const CAPTION: u32 = 22;
/// NeuQuant's sampling speed for colour frames (1 best .. 30 fastest; 10
/// is the `gif` crate's documented default).
const QUANTISER_SPEED: i32 = 10;

/// One frame, LZW-compressed: its bytes, size and (colour frames) palette.
struct Encoded {
    lzw: Vec<u8>,
    width: u16,
    height: u16,
    palette: Option<Vec<u8>>,
}

/// The frames collected so far: each epoch's sample images.
pub struct Animation {
    shape: ImageShape,
    grid_side: usize,
    frames: Vec<(usize, Vec<u8>)>,
    /// Each frame, compressed, once it has been written.
    encoded: Vec<Option<Encoded>>,
}

impl Animation {
    /// An empty animation of `grid_side` x `grid_side` grids of images of
    /// `shape` (grey or RGB).
    pub fn new(shape: ImageShape, grid_side: usize) -> Animation {
        Animation {
            shape,
            grid_side,
            frames: Vec::new(),
            encoded: Vec::new(),
        }
    }

    /// Adds the samples after `epoch` epochs as the next frame.
    pub fn push(&mut self, epoch: usize, images: &[u8]) {
        self.frames.push((epoch, images.to_vec()));
        self.encoded.push(None);
    }

    /// Frames collected.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Encodes the (thinned) frames as a looping GIF, written atomically.
    pub fn write_gif(&mut self, path: &Path) -> Result<()> {
        let gif_error = |e: gif::EncodingError| Error::Image {
            path: PathBuf::from(path),
            problem: format!("GIF encoding failed: {e}"),
        };
        let colour = self.shape.channels == 3;
        let palette: Vec<u8> = if colour {
            Vec::new()
        } else {
            (0..GRAY_LEVELS)
                .flat_map(|i| [(i * 255 / (GRAY_LEVELS - 1)) as u8; 3])
                .collect()
        };
        let chosen = select_frames(self.frames.len(), MAX_FRAMES);
        for &i in &chosen {
            if self.encoded[i].is_none() {
                let (epoch, images) = &self.frames[i];
                let (canvas, width, height) = self.render_frame(path, *epoch, images)?;
                let too_big = || Error::Image {
                    path: path.to_path_buf(),
                    problem: format!("frames of {width}x{height} are too large for a GIF"),
                };
                let w = u16::try_from(width).map_err(|_| too_big())?;
                let h = u16::try_from(height).map_err(|_| too_big())?;
                let mut frame = if colour {
                    // The canvas is w x h RGB, as from_rgb_speed requires.
                    gif::Frame::from_rgb_speed(w, h, canvas.rgb(), QUANTISER_SPEED)
                } else {
                    gif::Frame {
                        width: w,
                        height: h,
                        buffer: std::borrow::Cow::Owned(gray_indices(&canvas)),
                        ..gif::Frame::default()
                    }
                };
                frame.make_lzw_pre_encoded();
                self.encoded[i] = Some(Encoded {
                    lzw: frame.buffer.into_owned(),
                    width: w,
                    height: h,
                    palette: frame.palette,
                });
            }
        }
        let Some(Some(Encoded {
            width: w,
            height: h,
            ..
        })) = chosen.first().map(|&i| &self.encoded[i])
        else {
            return Err(Error::Image {
                path: path.to_path_buf(),
                problem: "no frames to animate".into(),
            });
        };
        let mut bytes = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut bytes, *w, *h, &palette).map_err(gif_error)?;
            encoder
                .set_repeat(gif::Repeat::Infinite)
                .map_err(gif_error)?;
            let last = chosen.len() - 1;
            for (k, &i) in chosen.iter().enumerate() {
                let Some(encoded) = &self.encoded[i] else {
                    continue;
                };
                let frame = gif::Frame {
                    width: encoded.width,
                    height: encoded.height,
                    palette: encoded.palette.clone(),
                    delay: if k == last {
                        LAST_FRAME_DELAY
                    } else {
                        FRAME_DELAY
                    },
                    buffer: std::borrow::Cow::Borrowed(&encoded.lzw),
                    ..gif::Frame::default()
                };
                encoder
                    .write_lzw_pre_encoded_frame(&frame)
                    .map_err(gif_error)?;
            }
            encoder.into_inner().map_err(gif_error)?;
        }
        write_atomic(path, &bytes)
    }

    /// One frame: the grid at scale 1 over an "epoch N" caption.
    fn render_frame(&self, path: &Path, epoch: usize, images: &[u8]) -> Result<(Canvas, u32, u32)> {
        let grid = self.grid_side;
        let (pixels, w, h) = render_grid(path, images, self.shape, (grid, grid), 1)?;
        let mut canvas = Canvas::new(w, h + CAPTION, BLACK);
        let size = (w as usize, h as usize);
        canvas.image((0, 0), &pixels, size, self.shape.channels, 1);
        let caption = format!("epoch {epoch}");
        canvas.text(
            (w as f32 / 2.0, h as f32 + 2.0),
            &caption,
            14.0,
            Align::Center,
            [230, 230, 230],
        );
        Ok((canvas, w, h + CAPTION))
    }
}

/// A grey canvas as indices into the [`GRAY_LEVELS`] palette.
fn gray_indices(canvas: &Canvas) -> Vec<u8> {
    let levels = u32::from(GRAY_LEVELS - 1);
    canvas
        .to_gray()
        .iter()
        .map(|&v| ((u32::from(v) * levels + 127) / 255) as u8)
        .collect()
}

/// Which of `n` frames to keep so that at most `max` remain: all of them, or
/// `max` evenly spaced ones including the first and the last.
pub fn select_frames(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    if max <= 1 {
        return vec![n - 1];
    }
    (0..max)
        .map(|k| (k * (n - 1) + (max - 1) / 2) / (max - 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_keep_every_frame() {
        assert_eq!(select_frames(4, 100), [0, 1, 2, 3]);
        assert!(select_frames(0, 100).is_empty());
    }

    #[test]
    fn long_runs_are_thinned_evenly_keeping_first_and_last() {
        let kept = select_frames(1001, 100);
        assert_eq!(kept.len(), 100);
        assert_eq!((kept[0], kept[99]), (0, 1000));
        assert!(kept.windows(2).all(|w| w[1] > w[0]));
        let gaps: Vec<usize> = kept.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 10 || g == 11), "{gaps:?}");
        assert_eq!(select_frames(5, 1), [4]);
    }
}
