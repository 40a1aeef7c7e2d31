//! Everything the program writes for people and for later runs: PNG sample
//! grids ([`grid`]), IDX and NumPy image sets ([`export`]), the run record
//! (metrics.csv, losses.png, progress.gif, real.png), the console display,
//! and the helpers they share, such as atomic writes (this module).

pub mod animation;
pub mod canvas;
pub mod compare;
pub mod console;
pub mod export;
pub mod grid;
pub mod metrics;
pub mod plot;
pub mod record;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use console::{Console, ConsoleMode};
pub use grid::{images_from_outputs, write_grid, GUTTER, GUTTER_GRAY};
pub use record::RunRecord;

/// `path` with `.tmp` appended (`grid.png` -> `grid.png.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically: to `path.tmp` first, flushed to disk,
/// then renamed over `path`. Readers never see a half-written file. On failure
/// the temporary file is removed and the error names the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let result = write_and_sync(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_and_sync(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
    file.sync_all().map_err(|e| Error::io(tmp, e))
}
