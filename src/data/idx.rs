//! The IDX file reader: MNIST-format images (`idx3`) and labels (`idx1`),
//! raw or gzip-compressed (detected by the magic bytes 1f 8b, not the name).
//!
//! An IDX file is a 4-byte magic (`00 00 <type> <ndims>`), `ndims` big-endian
//! `u32` dimensions, then the elements in row-major order. Only the unsigned-byte
//! type (0x08) is accepted. The reader checks every field, requires the length
//! to match the header exactly, and never allocates more than the header
//! declares (itself capped by [`MAX_PAYLOAD_BYTES`]) nor more than twice the
//! bytes actually present. Every error is one line naming the file.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// The IDX element type for unsigned bytes, the only one MNIST data uses.
pub const TYPE_UNSIGNED_BYTE: u8 = 0x08;

/// The largest element payload accepted (2 GiB): far above any MNIST-format
/// data set (EMNIST ByClass images are about 550 MB), far below what would
/// exhaust memory.
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 31;

/// How many bytes beyond the expected end are counted to report trailing data.
const TRAILING_COUNT_LIMIT: u64 = 1 << 20;

/// The first allocation for a payload whose size is not known from the file.
const INITIAL_CAPACITY: usize = 1 << 20;

/// Images read from an `idx3-ubyte` file: `count` images of `rows` x `cols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count * rows * cols` bytes, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Reads an `idx3-ubyte` image file (raw or gzipped).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_idx(path, Kind::Images)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an `idx1-ubyte` label file (raw or gzipped). Label values are not
/// checked here; see [`crate::data::Dataset`].
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    read_idx(path, Kind::Labels).map(|(_, labels)| labels)
}

/// [`read_images`] on the bytes of a file (raw or gzipped); `path` names it
/// in errors.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<IdxImages> {
    let (dims, pixels) = read_idx_from(path, Kind::Images, Source::from_bytes(bytes))?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// [`read_labels`] on the bytes of a file (raw or gzipped).
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    read_idx_from(path, Kind::Labels, Source::from_bytes(bytes)).map(|(_, labels)| labels)
}

/// What an IDX file is expected to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn ndims(self) -> u8 {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Kind::Images => "images: count x rows x columns",
            Kind::Labels => "labels: count",
        }
    }

    fn dim_name(self, index: usize) -> &'static str {
        match (self, index) {
            (Kind::Images, 0) => "image count",
            (Kind::Images, 1) => "rows",
            (Kind::Images, _) => "columns",
            (Kind::Labels, _) => "label count",
        }
    }

    /// "60000 images of 28x28" or "60000 labels".
    fn describe(self, dims: &[usize]) -> String {
        match (self, dims) {
            (Kind::Images, [n, r, c]) => format!("{n} images of {r}x{c}"),
            (Kind::Labels, [n]) => format!("{n} labels"),
            _ => format!("dimensions {dims:?}"),
        }
    }
}

/// A byte stream with what is known about it, for checks and messages.
struct Source<'a> {
    reader: Box<dyn Read + 'a>,
    /// The exact number of bytes the stream holds, when known (raw files).
    known_len: Option<u64>,
    gzip: bool,
}

impl<'a> Source<'a> {
    /// The bytes of a whole file, gunzipped when they start with 1f 8b.
    fn from_bytes(bytes: &'a [u8]) -> Self {
        let gzip = bytes.starts_with(&[0x1f, 0x8b]);
        if gzip {
            Source {
                reader: Box::new(flate2::read::MultiGzDecoder::new(bytes)),
                known_len: None,
                gzip,
            }
        } else {
            Source {
                reader: Box::new(bytes),
                known_len: Some(bytes.len() as u64),
                gzip,
            }
        }
    }

    /// "the file" or "the decompressed data", for messages.
    fn noun(&self) -> &'static str {
        if self.gzip {
            "the decompressed data"
        } else {
            "the file"
        }
    }
}

/// Reads and checks a whole IDX file of the given kind.
fn read_idx(path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
    read_idx_from(path, kind, open(path)?)
}

/// Reads and checks a whole IDX stream of the given kind.
fn read_idx_from(path: &Path, kind: Kind, mut src: Source) -> Result<(Vec<usize>, Vec<u8>)> {
    let header_len = 4 + 4 * usize::from(kind.ndims());
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut src, &mut header, path)?;
    if got == 0 {
        return Err(Error::data(path, format!("{} is empty", src.noun())));
    }
    check_magic(path, kind, &header[..got.min(4)], got)?;
    if got < header_len {
        return Err(Error::data(
            path,
            format!(
                "truncated: the header of {} dimension(s) needs {header_len} bytes but {} holds {got}",
                kind.ndims(),
                src.noun()
            ),
        ));
    }
    let dims = parse_dims(path, kind, &header[4..])?;
    let payload = payload_len(path, kind, &dims)?;
    let header = Header {
        kind,
        dims,
        header_len: header_len as u64,
        payload,
    };
    check_declared_size(path, &header, &src)?;
    let data = read_payload(path, &header, &mut src)?;
    Ok((header.dims, data))
}

/// A checked header: what the file declares it holds.
struct Header {
    kind: Kind,
    dims: Vec<usize>,
    /// Bytes of magic and dimensions.
    header_len: u64,
    /// Bytes of elements the dimensions declare.
    payload: u64,
}

impl Header {
    /// The whole file's declared length.
    fn total(&self) -> u64 {
        self.header_len + self.payload
    }

    /// "60000 images of 28x28".
    fn describe(&self) -> String {
        self.kind.describe(&self.dims)
    }
}

/// Opens a file and wraps it in a gzip decoder when it starts with 1f 8b.
fn open(path: &Path) -> Result<Source<'static>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::data(path, "is a directory, not an IDX file"));
    }
    let mut peek = [0u8; 2];
    let n = read_full_raw(&mut file, &mut peek).map_err(|e| Error::io(path, e))?;
    let head = io::Cursor::new(peek[..n].to_vec());
    let gzip = n == 2 && peek == [0x1f, 0x8b];
    let chained = head.chain(file);
    if gzip {
        Ok(Source {
            reader: Box::new(flate2::read::MultiGzDecoder::new(chained)),
            known_len: None,
            gzip,
        })
    } else {
        Ok(Source {
            reader: Box::new(chained),
            known_len: meta.is_file().then_some(meta.len()),
            gzip,
        })
    }
}

/// Checks the 4-byte magic `00 00 08 <ndims>`; `bytes` may be shorter than 4.
fn check_magic(path: &Path, kind: Kind, bytes: &[u8], total: usize) -> Result<()> {
    let expected = [0, 0, TYPE_UNSIGNED_BYTE, kind.ndims()];
    if bytes.len() < 4 {
        return Err(Error::data(
            path,
            format!("truncated: {total} byte(s) is too short for the 4-byte IDX magic"),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: magic is {}, expected {} ({})",
                hex(bytes),
                hex(&expected),
                kind.layout()
            ),
        ));
    }
    if bytes[2] != TYPE_UNSIGNED_BYTE {
        return Err(Error::data(
            path,
            format!(
                "unsupported element type 0x{:02X} ({}): MNIST-format data must be unsigned bytes (type 0x08)",
                bytes[2],
                type_name(bytes[2])
            ),
        ));
    }
    if bytes[3] != kind.ndims() {
        return Err(Error::data(
            path,
            format!(
                "wrong dimension count: the header declares {} dimension(s), expected {} ({})",
                bytes[3],
                kind.ndims(),
                kind.layout()
            ),
        ));
    }
    Ok(())
}

/// The IDX type code's name, for messages.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "not an IDX type",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the big-endian dimensions and rejects zeros.
fn parse_dims(path: &Path, kind: Kind, bytes: &[u8]) -> Result<Vec<usize>> {
    let mut dims = Vec::with_capacity(bytes.len() / 4);
    for (i, chunk) in bytes.chunks_exact(4).enumerate() {
        let value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if value == 0 {
            return Err(Error::data(
                path,
                format!(
                    "zero dimension: the header declares {} = 0 ({})",
                    kind.dim_name(i),
                    kind.layout()
                ),
            ));
        }
        let value = usize::try_from(value)
            .map_err(|_| Error::data(path, "dimension does not fit in memory addresses"))?;
        dims.push(value);
    }
    Ok(dims)
}

/// The payload size the dimensions declare, checked for overflow and the cap.
fn payload_len(path: &Path, kind: Kind, dims: &[usize]) -> Result<u64> {
    let product = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    product.ok_or_else(|| {
        Error::data(
            path,
            format!(
                "the header declares {}, whose size overflows",
                kind.describe(dims)
            ),
        )
    })
}

/// Rejects a declared size the file cannot hold (when its length is known) or
/// one over [`MAX_PAYLOAD_BYTES`], before anything is allocated.
fn check_declared_size(path: &Path, header: &Header, src: &Source) -> Result<()> {
    if let Some(len) = src.known_len {
        if len != header.total() {
            return Err(length_error(path, header, src, len, true));
        }
    }
    let payload = header.payload;
    if payload > MAX_PAYLOAD_BYTES || usize::try_from(payload).is_err() {
        return Err(Error::data(
            path,
            format!(
                "too large: the header declares {} ({payload} bytes), over the {MAX_PAYLOAD_BYTES}-byte limit",
                header.describe()
            ),
        ));
    }
    Ok(())
}

/// "truncated: ..." or "trailing bytes: ...", with expected and found lengths;
/// `exact` is false when `found` is only a lower bound.
fn length_error(path: &Path, header: &Header, src: &Source, found: u64, exact: bool) -> Error {
    let expected = header.total();
    let what = if found < expected {
        "truncated"
    } else {
        "trailing bytes"
    };
    let found = if exact {
        format!("{found}")
    } else {
        format!("more than {}", found.saturating_sub(1))
    };
    Error::data(
        path,
        format!(
            "{what}: header declares {} ({}-byte header + {} bytes = {expected} bytes) but {} holds {found} bytes",
            header.describe(),
            header.header_len,
            header.payload,
            src.noun()
        ),
    )
}

/// Reads exactly the declared payload, then checks that nothing follows.
fn read_payload(path: &Path, header: &Header, src: &mut Source) -> Result<Vec<u8>> {
    let payload = header.payload;
    // `payload` passed check_declared_size, so it fits in usize; a stream of
    // unknown length starts small and grows only as data actually arrives.
    let capacity = usize::try_from(payload).unwrap_or(0);
    let capacity = match src.known_len {
        Some(_) => capacity,
        None => capacity.min(INITIAL_CAPACITY),
    };
    let mut data = Vec::with_capacity(capacity);
    let got = read_stream(path, src, |r| r.take(payload).read_to_end(&mut data))? as u64;
    if got < payload {
        return Err(length_error(
            path,
            header,
            src,
            header.header_len + got,
            true,
        ));
    }
    let extra = read_stream(path, src, |r| {
        io::copy(&mut r.take(TRAILING_COUNT_LIMIT + 1), &mut io::sink()).map(|n| n as usize)
    })? as u64;
    if extra > 0 {
        let exact = extra <= TRAILING_COUNT_LIMIT;
        return Err(length_error(
            path,
            header,
            src,
            header.total() + extra,
            exact,
        ));
    }
    Ok(data)
}

/// Runs a read on the source, naming gzip corruption as such.
fn read_stream(
    path: &Path,
    src: &mut Source,
    f: impl FnOnce(&mut dyn Read) -> io::Result<usize>,
) -> Result<usize> {
    let gzip = src.gzip;
    f(&mut src.reader).map_err(|e| stream_error(path, gzip, e))
}

fn stream_error(path: &Path, gzip: bool, e: io::Error) -> Error {
    let corrupt = matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
    );
    if gzip && corrupt {
        Error::data(path, format!("corrupt gzip stream: {e}"))
    } else {
        Error::io(path, e)
    }
}

/// Fills `buf` as far as the stream allows; returns the bytes read.
fn read_full(src: &mut Source, buf: &mut [u8], path: &Path) -> Result<usize> {
    let gzip = src.gzip;
    read_full_raw(&mut src.reader, buf).map_err(|e| stream_error(path, gzip, e))
}

fn read_full_raw(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
