//! Image sets as files other programs read: IDX (the MNIST format, magic
//! 0x00000803, unsigned bytes, dimensions [N, rows, cols] big-endian) and
//! NumPy `.npy` (version 1.0, `|u1`, C order, shape (N, rows, cols)). Both
//! hold MNIST polarity (0 background, 255 ink) and are written atomically.

use std::path::Path;

use crate::error::{Error, Result};
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
/// (count, rows, cols).
pub fn npy_bytes(images: &[u8], count: usize, rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_len(Path::new("<npy>"), images, count, rows, cols)?;
    let mut header =
        format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({count}, {rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header, padded with
    // spaces and ended by a newline to a multiple of 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| Error::data("<npy>", "header longer than 65535 bytes"))?;
    let mut out = Vec::with_capacity(10 + header.len() + images.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(images);
    Ok(out)
}

/// Writes `count` images of `rows x cols` as a NumPy uint8 array file.
pub fn write_npy(path: &Path, images: &[u8], count: usize, rows: usize, cols: usize) -> Result<()> {
    check_len(path, images, count, rows, cols)?;
    write_atomic(path, &npy_bytes(images, count, rows, cols)?)
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
        let b = npy_bytes(&[1; 5 * 28 * 28], 5, 28, 28).unwrap();
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
        assert!(npy_bytes(&[0; 10], 1, 28, 28).is_err());
    }
}
