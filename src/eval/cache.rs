//! The classifier's cache file: a trained [`Classifier`] with a header that
//! says exactly what it is, so a file that is broken, truncated or made for
//! another configuration or other training data is detected and rebuilt,
//! never silently used.
//!
//! Layout (all little-endian):
//!
//! ```text
//! magic          8 bytes  "GGPUCLSF"
//! version        u32      2
//! input, classes u32 x 2  bytes an image, classes
//! seed, epochs, batch_size, train_limit (u32::MAX: none)   u32 x 4
//! lr, lr_decay   f32 x 2
//! data checksum  u64      FNV-1a of the training images and labels used
//! layers         u32      number of hidden layers H, then H u32 widths
//! test accuracy  f32
//! param count    u64
//! checksum       u64      FNV-1a of every byte before it and of the parameters
//! parameters     f32 x param count
//! ```
//!
//! Default location: `$XDG_CACHE_HOME/gan-gpu/` or `~/.cache/gan-gpu/`
//! ([`default_path`]); `gan-gpu eval --classifier PATH` overrides it.

use std::path::{Path, PathBuf};

use super::classifier::{Classifier, ClassifierConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::NetworkLayout;
use crate::util::{fnv1a, FNV_OFFSET};

/// The file's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"GGPUCLSF";
/// The format version this build reads and writes.
pub const VERSION: u32 = 2;

/// The checksum of the training data a classifier is trained on (the images
/// and labels it uses, per `config.train_limit`).
pub fn data_checksum(train: &Dataset, config: &ClassifierConfig) -> u64 {
    let count = config
        .train_limit
        .map_or(train.count, |l| (l as usize).min(train.count));
    let pixels = train.image_len();
    let h = fnv1a(FNV_OFFSET, &(count as u64).to_le_bytes());
    let h = fnv1a(h, &train.images[..count * pixels]);
    fnv1a(h, &train.labels[..count])
}

/// Where the classifier of `config` trained on `train` is cached by
/// default: one file per data set (named by [`data_checksum`]), so MNIST's
/// and Fashion-MNIST's classifiers live side by side.
pub fn default_path(config: &ClassifierConfig, train: &Dataset) -> Result<PathBuf> {
    let dir = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".cache"),
            None => {
                return Err(Error::config(
                    "--classifier",
                    "neither XDG_CACHE_HOME nor HOME is set; pass --classifier PATH",
                ))
            }
        },
    };
    Ok(dir.join("gan-gpu").join(format!(
        "classifier-{}-seed{}-data{:016x}.bin",
        config.architecture(),
        config.seed,
        data_checksum(train, config)
    )))
}

fn header(config: &ClassifierConfig, data: u64, test_accuracy: f32, params: usize) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(MAGIC);
    for v in [
        VERSION,
        config.input as u32,
        config.classes as u32,
        config.seed,
        config.epochs,
        config.batch_size,
        config.train_limit.unwrap_or(u32::MAX),
    ] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(&config.lr.to_le_bytes());
    h.extend_from_slice(&config.lr_decay.to_le_bytes());
    h.extend_from_slice(&data.to_le_bytes());
    h.extend_from_slice(&(config.hidden.len() as u32).to_le_bytes());
    for &w in &config.hidden {
        h.extend_from_slice(&(w as u32).to_le_bytes());
    }
    h.extend_from_slice(&test_accuracy.to_le_bytes());
    h.extend_from_slice(&(params as u64).to_le_bytes());
    h
}

/// The file's bytes for `classifier`, trained on data with checksum `data`.
pub fn encode(classifier: &Classifier, data: u64) -> Vec<u8> {
    let mut bytes = header(
        &classifier.config,
        data,
        classifier.test_accuracy,
        classifier.params.len(),
    );
    let params: &[u8] = bytemuck::cast_slice(&classifier.params);
    let params_le: Vec<u8> = if cfg!(target_endian = "little") {
        params.to_vec()
    } else {
        classifier
            .params
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect()
    };
    let checksum = fnv1a(fnv1a(FNV_OFFSET, &bytes), &params_le);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes.extend_from_slice(&params_le);
    bytes
}

/// Reads little-endian fields off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(format!("truncated ({} bytes)", self.bytes.len())),
        }
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32(&mut self) -> std::result::Result<f32, String> {
        self.u32().map(f32::from_bits)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        let lo = u64::from(self.u32()?);
        let hi = u64::from(self.u32()?);
        Ok(lo | hi << 32)
    }
}

/// Decodes a cache file, requiring it to hold a classifier for exactly
/// `expected` trained on data with checksum `data`. The error says what is
/// wrong, in a few words.
pub fn decode(
    bytes: &[u8],
    expected: &ClassifierConfig,
    data: u64,
) -> std::result::Result<Classifier, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MAGIC {
        return Err("not a gan-gpu classifier file (bad magic)".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let (input, classes) = (r.u32()? as usize, r.u32()? as usize);
    let (seed, epochs, batch_size, limit) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    let (lr, lr_decay) = (r.f32()?, r.f32()?);
    let file_data = r.u64()?;
    let layers = r.u32()? as usize;
    if layers > 64 {
        return Err(format!("implausible layer count {layers}"));
    }
    let mut hidden = Vec::with_capacity(layers);
    for _ in 0..layers {
        hidden.push(r.u32()? as usize);
    }
    let test_accuracy = r.f32()?;
    let count = r.u64()?;
    let header_end = r.at;
    let checksum = r.u64()?;
    let config = ClassifierConfig {
        input,
        classes,
        hidden,
        epochs,
        batch_size,
        lr,
        lr_decay,
        seed,
        train_limit: (limit != u32::MAX).then_some(limit),
    };
    if &config != expected {
        return Err(format!(
            "made for another classifier ({} seed {seed}, {epochs} epochs; wanted {} seed {}, {} epochs)",
            config.architecture(),
            expected.architecture(),
            expected.seed,
            expected.epochs
        ));
    }
    if file_data != data {
        return Err("trained on other data than the training set given".into());
    }
    let needed = NetworkLayout::new(&expected.spec()).len as u64;
    if count != needed {
        return Err(format!(
            "holds {count} parameters, the architecture has {needed}"
        ));
    }
    let rest = bytes.len() - r.at;
    if (rest as u64) < count * 4 {
        return Err(format!(
            "truncated: {rest} parameter bytes, the header declares {}",
            count * 4
        ));
    }
    if rest as u64 > count * 4 {
        return Err(format!("{} trailing bytes", rest as u64 - count * 4));
    }
    let params_bytes = &bytes[r.at..];
    if fnv1a(fnv1a(FNV_OFFSET, &bytes[..header_end]), params_bytes) != checksum {
        return Err("checksum mismatch (the file is corrupt)".into());
    }
    let params: Vec<f32> = params_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if params.iter().any(|p| !p.is_finite()) {
        return Err("holds non-finite parameters".into());
    }
    Ok(Classifier {
        config,
        params,
        test_accuracy,
    })
}

/// What was found at a cache path.
#[derive(Debug)]
pub enum Cached {
    /// A valid classifier for the configuration and data.
    Loaded(Classifier),
    /// No file there.
    Missing,
    /// A file that must not be used, and why.
    Unusable(String),
}

/// Looks at the cache file at `path`.
pub fn load(path: &Path, expected: &ClassifierConfig, data: u64) -> Result<Cached> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(match decode(&bytes, expected, data) {
            Ok(c) => Cached::Loaded(c),
            Err(problem) => Cached::Unusable(problem),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cached::Missing),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes `classifier` to `path` atomically, creating the directory.
pub fn save(path: &Path, classifier: &Classifier, data: u64) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::util::write_atomic(path, &encode(classifier, data))
}
