//! One run per output folder. A training run holds an exclusive lock on
//! `<out>/.gan-gpu.lock` for as long as it lives, with its process id written
//! inside for the message a second run prints. The lock is the operating
//! system's (`flock`), so it goes away with the process however the process
//! ends: a crash or `kill -9` leaves the file, never a lock that blocks the
//! next run.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name inside the output folder.
pub const LOCK_FILE: &str = ".gan-gpu.lock";

/// A held lock on an output folder; released when dropped or when the process ends.
#[derive(Debug)]
pub struct OutputLock {
    dir: PathBuf,
    _file: File,
}

impl OutputLock {
    /// Creates `dir` if needed and takes its lock. A folder that another live
    /// run holds is [`Error::OutputInUse`], naming the folder and the other
    /// process; a `dir` that is a file or cannot be looked up is an error
    /// naming `--out`.
    pub fn acquire(dir: &Path) -> Result<OutputLock> {
        let bad = |problem: String| Error::config("--out", format!("{}: {problem}", dir.display()));
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => return Err(bad("is a file, not a folder".into())),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A symbolic-link loop, a name too long, a file where a folder
            // should be on the way, no permission.
            Err(e) => return Err(bad(crate::error::describe_io(&e))),
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::OutputInUse {
                    dir: dir.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The id is only for the other run's message: a full disk that
        // cannot take these few bytes does not stop this run.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(OutputLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
