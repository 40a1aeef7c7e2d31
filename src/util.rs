//! Small utilities that several layers share, below all of them: a
//! checksum (FNV-1a, for checkpoints and the classifier cache) and atomic
//! file writes (for every file the program leaves behind), with the
//! full-disk test hook that those writes go through.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// FNV-1a, 64-bit: a cheap checksum that catches any flipped or lost byte.
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// `path` with `.tmp` appended (`grid.png` -> `grid.png.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically: to `path.tmp` first, flushed to disk,
/// then renamed over `path`. Readers never see a half-written file, and a
/// failed write (a full disk, a crash, `kill -9`) leaves the previous `path`
/// as it was. On failure the temporary file is removed and the error names
/// the file; a full disk names `path` and says that its previous version is kept.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let result = write_and_sync(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| match e {
        Error::Io { error, .. } if is_disk_full(&error) => Error::Io {
            path: path.to_path_buf(),
            error: std::io::Error::new(
                error.kind(),
                format!("{error}; its previous version, if any, is kept"),
            ),
        },
        other => other,
    })
}

/// Whether an I/O error means there is no room left to write.
pub fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn write_and_sync(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e| Error::io(tmp, e);
    let mut file = fs::File::create(tmp).map_err(io)?;
    disk_full_injection::write(&mut file, bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A test hook for the full-disk handling where no small filesystem can be
/// mounted: with `GAN_GPU_DISK_FULL_AFTER=N` in the environment, the
/// process's atomic writes and metrics rows fail as on a full disk (part of
/// the bytes written, then `StorageFull`) once N bytes in all have been
/// written. Unset, a write is a plain `write_all`.
pub mod disk_full_injection {
    use std::io::{ErrorKind, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The environment variable that sets the byte budget.
    pub const ENV: &str = "GAN_GPU_DISK_FULL_AFTER";

    static WRITTEN: AtomicU64 = AtomicU64::new(0);

    fn budget() -> Option<u64> {
        static BUDGET: OnceLock<Option<u64>> = OnceLock::new();
        *BUDGET.get_or_init(|| std::env::var(ENV).ok()?.trim().parse().ok())
    }

    /// `file.write_all(bytes)`, failing as a full disk would once the budget is spent.
    pub fn write(file: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
        let Some(budget) = budget() else {
            return file.write_all(bytes);
        };
        let before = WRITTEN.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        let room = budget.saturating_sub(before);
        if room >= bytes.len() as u64 {
            return file.write_all(bytes);
        }
        file.write_all(&bytes[..room as usize])?;
        Err(std::io::Error::new(
            ErrorKind::StorageFull,
            "No space left on device (injected by GAN_GPU_DISK_FULL_AFTER)",
        ))
    }
}
