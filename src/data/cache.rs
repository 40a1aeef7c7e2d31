//! The decoded-folder cache: a folder of images is decoded once
//! ([`super::folder::load_folder`]) and kept as one checksummed file, so the
//! next run on the same folder with the same preprocessing starts at once.
//!
//! - **Where.** One file per folder and settings, named by a hash of the
//!   folder's canonical path and the [`FolderOptions`], under the cache
//!   directory (`$XDG_CACHE_HOME/gan-gpu/folders`, else
//!   `~/.cache/gan-gpu/folders`).
//! - **When it is used.** The file records the folder's listing key: every
//!   file's path relative to the folder, size and modification time, and the
//!   settings. A listing that differs (a file added, removed, touched or
//!   resized) rebuilds the file; so does a file that is truncated, corrupt
//!   or of another format version.
//! - **Format** (little-endian): magic `GANFOLD1`, then u64 listing key,
//!   u32 count, channels, rows, cols, u32 class count and each class name,
//!   u32 skipped count and each (path, reason), the labels (count bytes),
//!   the images (count * channels * rows * cols bytes), and last a u64
//!   FNV-1a of every byte before it. Strings are a u32 length and UTF-8.

use std::path::{Path, PathBuf};

use super::folder::{FolderOptions, FolderSet};
use super::Dataset;
use crate::error::{Error, Result};
use crate::util::{fnv1a, write_atomic, FNV_OFFSET};

const MAGIC: &[u8; 8] = b"GANFOLD1";

/// The cache directory for decoded folders, or None where neither
/// `XDG_CACHE_HOME` nor `HOME` is set (the folder is then decoded every run).
pub fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("gan-gpu").join("folders"))
}

/// The hash of the settings that change the decoded images.
fn options_key(options: &FolderOptions) -> u64 {
    let size = options.image_size.map_or(0, |n| n as u64 + 1);
    let channels = options.channels.map_or(0, |c| c as u64 + 1);
    fnv1a(
        fnv1a(FNV_OFFSET, &size.to_le_bytes()),
        &channels.to_le_bytes(),
    )
}

/// The cache file of `dir` with `options` under `cache_dir`.
pub fn cache_file(cache_dir: &Path, dir: &Path, options: &FolderOptions) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let key = fnv1a(
        options_key(options),
        canonical.as_os_str().to_string_lossy().as_bytes(),
    );
    Ok(cache_dir.join(format!("{key:016x}.bin")))
}

/// The listing key of `files` (as [`super::folder::list_files`] gives them)
/// under `dir` with `options`: each file's relative path, size and
/// modification time, in order. A file whose metadata cannot be read counts
/// by its path alone (it is skipped on decoding, and stays so).
pub fn listing_key(dir: &Path, files: &[PathBuf], options: &FolderOptions) -> u64 {
    let mut h = options_key(options);
    for path in files {
        let relative = path.strip_prefix(dir).unwrap_or(path);
        h = fnv1a(h, relative.as_os_str().to_string_lossy().as_bytes());
        h = fnv1a(h, &[0]);
        if let Ok(meta) = std::fs::metadata(path) {
            h = fnv1a(h, &meta.len().to_le_bytes());
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            h = fnv1a(h, &modified.to_le_bytes());
        }
    }
    h
}

/// The bytes of the cache file for `set`, decoded from a folder whose
/// listing key is `key`.
pub fn encode(set: &FolderSet, key: u64) -> Vec<u8> {
    let d = &set.dataset;
    let mut out = Vec::with_capacity(64 + d.labels.len() + d.images.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.to_le_bytes());
    for v in [d.count, d.channels, d.rows, d.cols, d.classes.len()] {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    for name in &d.classes {
        string(&mut out, name);
    }
    out.extend_from_slice(&(set.skipped.len() as u32).to_le_bytes());
    for (path, why) in &set.skipped {
        string(&mut out, &path.to_string_lossy());
        string(&mut out, why);
    }
    out.extend_from_slice(&d.labels);
    out.extend_from_slice(&d.images);
    let checksum = fnv1a(FNV_OFFSET, &out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Reads a cache file's bytes back.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or("truncated")?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> std::result::Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let len = self.u32()?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
    }
}

/// The set a cache file holds, if it was made from a listing with key
/// `key`: Ok(None) for another listing, Err(why) for a file that is not a
/// valid cache file. `dir` becomes the set's path.
pub fn decode(
    bytes: &[u8],
    key: u64,
    dir: &Path,
) -> std::result::Result<Option<FolderSet>, String> {
    if bytes.len() < MAGIC.len() + 16 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a gan-gpu folder cache (or another version)".into());
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    let checksum = u64::from_le_bytes(tail.try_into().map_err(|_| "truncated")?);
    if fnv1a(FNV_OFFSET, body) != checksum {
        return Err("checksum mismatch (the file is corrupt)".into());
    }
    let mut r = Reader {
        bytes: body,
        at: MAGIC.len(),
    };
    let saved_key = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| "truncated")?);
    if saved_key != key {
        return Ok(None);
    }
    let (count, channels, rows, cols, classes) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    let classes = (0..classes)
        .map(|_| r.string())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let skipped_count = r.u32()?;
    let mut skipped = Vec::with_capacity(skipped_count.min(1 << 16));
    for _ in 0..skipped_count {
        skipped.push((PathBuf::from(r.string()?), r.string()?));
    }
    let labels = r.take(count)?.to_vec();
    let len = count
        .checked_mul(channels * rows * cols)
        .ok_or("sizes overflow")?;
    let images = r.take(len)?.to_vec();
    if r.at != body.len() {
        return Err("trailing bytes".into());
    }
    Ok(Some(FolderSet {
        dataset: Dataset::of_folder(dir, (images, labels), classes, (channels, rows, cols)),
        skipped,
    }))
}

/// What [`load_cached`] did, for the run's one-line notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// The cache file was read.
    Hit(PathBuf),
    /// There was none: the folder was decoded and the file written.
    Built(PathBuf),
    /// The folder changed since the file was written (or the file was not
    /// valid, with why): decoded again and the file replaced.
    Rebuilt(PathBuf, String),
    /// Decoded, but the file could not be written (why); the run goes on.
    NotWritten(PathBuf, String),
}

/// The decoded folder `dir` with `options`, from its cache file under
/// `cache_dir` when that was made from the same listing, else decoded
/// ([`super::folder::load_folder`], `progress` following it) and cached.
pub fn load_cached(
    dir: &Path,
    options: &FolderOptions,
    cache_dir: &Path,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<(FolderSet, CacheUse)> {
    options.validate()?;
    super::folder::check_folder(dir)?;
    let files = super::folder::list_files(dir)?;
    let key = listing_key(dir, &files, options);
    let path = cache_file(cache_dir, dir, options)?;
    let stale = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(crate::error::describe_io(&e)),
        Ok(bytes) => match decode(&bytes, key, dir) {
            Ok(Some(set)) => return Ok((set, CacheUse::Hit(path))),
            Ok(None) => Some("the folder changed".to_string()),
            Err(why) => Some(why),
        },
    };
    let set = super::folder::load_folder_files(dir, files, options, progress)?;
    let written = std::fs::create_dir_all(cache_dir)
        .map_err(|e| Error::io(cache_dir, e))
        .and_then(|()| write_atomic(&path, &encode(&set, key)));
    let used = match (written, stale) {
        (Err(e), _) => CacheUse::NotWritten(path, e.to_string()),
        (Ok(()), None) => CacheUse::Built(path),
        (Ok(()), Some(why)) => CacheUse::Rebuilt(path, why),
    };
    Ok((set, used))
}
