//! Image sets as files other programs read: IDX (the MNIST format, magic
//! 0x00000803, unsigned bytes, dimensions [N, rows, cols] big-endian, grey
//! only) and NumPy `.npy` (version 1.0, `|u1`, C order, shape (N, rows,
//! cols) for grey and (N, rows, cols, 3) for RGB, the NumPy and PIL
//! convention). Grey images hold MNIST polarity (0 background, 255 ink);
//! both are written atomically.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::ImageShape;
use crate::util::write_atomic;

/// IDX magic for unsigned bytes in three dimensions.
pub const IDX3_UBYTE_MAGIC: u32 = 0x0000_0803;

fn check_len(path: &Path, images: &[u8], count: usize, rows: usize, cols: usize) -> Result<()> {
    let expected = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| Error::data(path, "image dimensions overflow"))?;
    if images.len() != expected {
        return Err(Error::data(
            path,
            format!(
                "{} bytes given for {count} images of {rows}x{cols}",
                images.len()
            ),
        ));
    }
    Ok(())
}

/// The bytes of an IDX3 ubyte file holding `count` images of `rows x cols`.
pub fn idx_bytes(images: &[u8], count: usize, rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_len(Path::new("<idx>"), images, count, rows, cols)?;
    let dim = |n: usize| {
        u32::try_from(n).map_err(|_| Error::data("<idx>", format!("dimension {n} above u32")))
    };
    let mut out = Vec::with_capacity(16 + images.len());
    out.extend_from_slice(&IDX3_UBYTE_MAGIC.to_be_bytes());
    for n in [count, rows, cols] {
        out.extend_from_slice(&dim(n)?.to_be_bytes());
    }
    out.extend_from_slice(images);
    Ok(out)
}

/// Writes `count` images of `rows x cols` as an IDX3 ubyte file.
pub fn write_idx(path: &Path, images: &[u8], count: usize, rows: usize, cols: usize) -> Result<()> {
    check_len(path, images, count, rows, cols)?;
    write_atomic(path, &idx_bytes(images, count, rows, cols)?)
}

/// The bytes of a `.npy` file (format 1.0) holding a uint8 array of shape
/// `dims` (C order), whose product must be `values.len()`.
pub fn npy_bytes(values: &[u8], dims: &[usize]) -> Result<Vec<u8>> {
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::data("<npy>", "array dimensions overflow"))?;
    if values.len() != expected {
        return Err(Error::data(
            "<npy>",
            format!(
                "{} bytes given for an array of shape {dims:?}",
                values.len()
            ),
        ));
    }
    Ok(crate::data::npy::encode_u8(dims, values))
}

/// Writes `count` channel-planar images of `shape` as a NumPy uint8 array
/// file: (N, rows, cols) for grey, (N, rows, cols, channels) otherwise,
/// the channels interleaved as NumPy and PIL hold them.
pub fn write_npy(path: &Path, images: &[u8], count: usize, shape: ImageShape) -> Result<()> {
    check_len(path, images, count, shape.channels * shape.rows, shape.cols)?;
    let bytes = if shape.channels == 1 {
        npy_bytes(images, &[count, shape.rows, shape.cols])?
    } else {
        npy_bytes(
            &interleave(images, shape),
            &[count, shape.rows, shape.cols, shape.channels],
        )?
    };
    write_atomic(path, &bytes)
}

/// Channel-planar images of `shape` (as the data set and the generator
/// hold them) with their channels interleaved: pixel after pixel, each
/// `channels` bytes.
pub fn interleave(images: &[u8], shape: ImageShape) -> Vec<u8> {
    let (channels, plane) = (shape.channels, shape.rows * shape.cols);
    let mut out = vec![0; images.len()];
    for (planar, mixed) in images
        .chunks_exact(shape.len().max(1))
        .zip(out.chunks_exact_mut(shape.len().max(1)))
    {
        for c in 0..channels {
            for p in 0..plane {
                mixed[p * channels + c] = planar[c * plane + p];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_header_is_big_endian_magic_and_dims() {
        let b = idx_bytes(&[7; 2 * 3 * 4], 2, 3, 4).unwrap();
        assert_eq!(&b[..16], &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        assert_eq!(b.len(), 16 + 24);
    }

    #[test]
    fn npy_header_is_aligned_and_names_the_shape() {
        let b = npy_bytes(&[1; 5 * 28 * 28], &[5, 28, 28]).unwrap();
        let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (5, 28, 28)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + header_len + 5 * 784);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(idx_bytes(&[0; 10], 1, 28, 28).is_err());
        assert!(npy_bytes(&[0; 10], &[1, 28, 28]).is_err());
    }

    #[test]
    fn rgb_images_are_interleaved_per_pixel() {
        let shape = ImageShape {
            channels: 3,
            rows: 1,
            cols: 2,
        };
        // Two images, planes R R G G B B.
        let planar = [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16];
        assert_eq!(
            interleave(&planar, shape),
            [1, 3, 5, 2, 4, 6, 11, 13, 15, 12, 14, 16]
        );
        let b = npy_bytes(&interleave(&planar, shape), &[2, 1, 2, 3]).unwrap();
        let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
        let header = std::str::from_utf8(&b[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 1, 2, 3)"), "{header}");
    }
}
