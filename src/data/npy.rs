//! A strict reader for NumPy `.npy` files of unsigned bytes: images
//! `(N, H, W)` (grey), `(N, H, W, 3)` (RGB) or `(N, 784)` (MNIST) and labels
//! `(N,)`, as `gan-gpu sample` writes them and `numpy.save` writes `uint8`
//! arrays; and of little-endian
//! `float32` arrays (`'<f4'`), the generator noise of `gan-gpu sample --noise`.
//!
//! Format: the magic `\x93NUMPY`, a version byte pair (1.0: a u16 header
//! length; 2.0: a u32 one), then an ASCII Python dict literal such as
//! `{'descr': '|u1', 'fortran_order': False, 'shape': (N, 28, 28), }` padded
//! with spaces to a 64-byte boundary, then the elements. Only `descr` `'|u1'`
//! (or `'<f4'` where floats are read) and `fortran_order` `False` are accepted, the data must be exactly as
//! long as the shape says, and nothing is allocated beyond the file's own
//! size (checked before reading). Every error is one line naming the file.

use std::path::Path;

use crate::error::{Error, Result};

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header accepted (numpy's own limit for version 1 is 65535).
const MAX_HEADER: usize = 1 << 20;

/// A parsed `.npy` array of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyBytes {
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an `.npy` file of `uint8`.
pub fn read_u8(path: &Path) -> Result<NpyBytes> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_u8(&bytes).map_err(|problem| Error::data(path, problem))
}

/// Images read from an `.npy` file, channel-planar as a
/// [`super::Dataset`] holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyImages {
    pub count: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count * channels * rows * cols` bytes, each image's planes in turn.
    pub pixels: Vec<u8>,
}

/// Reads `(N, H, W)` grey or `(N, H, W, 3)` RGB images (NumPy's and PIL's
/// interleaved layout, made channel-planar here), or `(N, 784)` as N 28 x 28
/// grey images.
pub fn read_images(path: &Path) -> Result<NpyImages> {
    let array = read_u8(path)?;
    let (count, channels, rows, cols) = match *array.shape.as_slice() {
        [n, 784] => (n, 1, 28, 28),
        [n, h, w] if h > 0 && w > 0 => (n, 1, h, w),
        [n, h, w, 3] if h > 0 && w > 0 => (n, 3, h, w),
        ref shape => {
            return Err(Error::data(
                path,
                format!("shape {shape:?}: expected (N, H, W) grey or (N, H, W, 3) RGB images"),
            ))
        }
    };
    let pixels = if channels == 1 {
        array.data
    } else {
        planar(&array.data, channels, rows * cols)
    };
    Ok(NpyImages {
        count,
        channels,
        rows,
        cols,
        pixels,
    })
}

/// Interleaved `[H, W, C]` images as `[C, H, W]` ones.
fn planar(interleaved: &[u8], channels: usize, plane: usize) -> Vec<u8> {
    let mut out = vec![0; interleaved.len()];
    let len = (channels * plane).max(1);
    for (mixed, planes) in interleaved.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        for p in 0..plane {
            for c in 0..channels {
                planes[c * plane + p] = mixed[p * channels + c];
            }
        }
    }
    out
}

/// Reads `(N,)` labels.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let array = read_u8(path)?;
    match array.shape.as_slice() {
        [_] => Ok(array.data),
        shape => Err(Error::data(
            path,
            format!("shape {shape:?}: expected (N,) labels"),
        )),
    }
}

/// A parsed `.npy` array of `float32`.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads an `.npy` file of little-endian `float32`.
pub fn read_f32(path: &Path) -> Result<NpyF32> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_f32(&bytes).map_err(|problem| Error::data(path, problem))
}

/// Parses the bytes of an `.npy` file of little-endian `float32`.
pub fn parse_f32(bytes: &[u8]) -> std::result::Result<NpyF32, String> {
    let (shape, data) = parse(bytes, "<f4", 4, "only float32 ('<f4') arrays are read here")?;
    let data = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(NpyF32 { shape, data })
}

/// Parses the bytes of an `.npy` file of `uint8`.
pub fn parse_u8(bytes: &[u8]) -> std::result::Result<NpyBytes, String> {
    let (shape, data) = parse(
        bytes,
        "|u1",
        1,
        "only uint8 ('|u1') images and labels are read",
    )?;
    Ok(NpyBytes {
        shape,
        data: data.to_vec(),
    })
}

/// The shape and data bytes of an `.npy` file whose elements are `descr`,
/// `size` bytes each; another element type is an error saying `only`.
fn parse<'a>(
    bytes: &'a [u8],
    descr: &str,
    size: usize,
    only: &str,
) -> std::result::Result<(Vec<usize>, &'a [u8]), String> {
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match (major, minor) {
        (1, 0) if bytes.len() >= 10 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        (2, 0) if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        (1, 0) | (2, 0) => return Err("truncated header".into()),
        _ => {
            return Err(format!(
                "unsupported .npy version {major}.{minor} (1.0 and 2.0 are read)"
            ))
        }
    };
    if header_len > MAX_HEADER {
        return Err(format!("header of {header_len} bytes is implausibly long"));
    }
    let end = start + header_len;
    let header = bytes
        .get(start..end)
        .ok_or_else(|| format!("truncated: the header declares {header_len} bytes"))?;
    let header = std::str::from_utf8(header)
        .ok()
        .filter(|h| h.is_ascii())
        .ok_or("the header is not ASCII")?;
    let dict = parse_dict(header.trim_end_matches(['\n', ' ', '\0']))?;
    let get = |key: &str| {
        dict.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("the header has no '{key}'"))
    };
    match get("descr")? {
        Value::Str(d) if d == descr => {}
        Value::Str(d) => return Err(format!("element type '{d}': {only}")),
        _ => return Err("'descr' is not a string".into()),
    }
    match get("fortran_order")? {
        Value::Bool(false) => {}
        Value::Bool(true) => return Err("Fortran-ordered arrays are not read".into()),
        _ => return Err("'fortran_order' is not True or False".into()),
    }
    let shape = match get("shape")? {
        Value::Tuple(s) => s.clone(),
        _ => return Err("'shape' is not a tuple".into()),
    };
    let expected = shape
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let present = bytes.len() - end;
    if present < expected {
        return Err(format!(
            "truncated: shape {shape:?} needs {expected} bytes of data, the file has {present}"
        ));
    }
    if present > expected {
        return Err(format!(
            "{} trailing bytes after the {expected} bytes of shape {shape:?}",
            present - expected
        ));
    }
    Ok((shape, &bytes[end..]))
}

/// A value of the header dict.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses `{'key': value, ...}` with string, boolean and integer-tuple values.
fn parse_dict(s: &str) -> std::result::Result<Vec<(String, Value)>, String> {
    let mut p = Parser {
        s: s.as_bytes(),
        at: 0,
    };
    p.expect(b'{')?;
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        p.skip_ws();
        let value = match p.peek() {
            Some(b'\'') | Some(b'"') => Value::Str(p.string()?),
            Some(b'(') => Value::Tuple(p.tuple()?),
            _ => Value::Bool(p.boolean()?),
        };
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("the header repeats '{key}'"));
        }
        out.push((key, value));
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_ws();
    if p.at != p.s.len() {
        return Err("unexpected text after the header dict".into());
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        self.skip_ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed header: expected '{}' at byte {}",
                c as char, self.at
            ))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "malformed header: expected a string at byte {}",
                    self.at
                ))
            }
        };
        self.at += 1;
        let start = self.at;
        while let Some(c) = self.peek() {
            if c == quote {
                let text = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
                self.at += 1;
                return Ok(text);
            }
            self.at += 1;
        }
        Err("malformed header: unterminated string".into())
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(v);
            }
        }
        Err(format!(
            "malformed header: unexpected value at byte {}",
            self.at
        ))
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.at;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.at += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
            let d = digits.parse::<usize>().map_err(|_| {
                format!("malformed header: a shape entry at byte {start} is not a size")
            })?;
            dims.push(d);
            self.skip_ws();
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// The bytes of an `.npy` (version 1.0) file holding `data` with `shape`,
/// as `numpy.save` writes a `uint8` array. For tests and writers.
pub fn encode_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so that magic + version + length + header + '\n' is a multiple of 64.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}
