//! Everything the program writes for people and for later runs: PNG sample
//! grids ([`grid`]), IDX and NumPy image sets ([`export`]), the run record
//! (metrics.csv, losses.png, progress.gif, real.png), the console display,
//! and the lock that keeps one run per output folder. Files are written
//! atomically through [`crate::util::write_atomic`].

pub mod animation;
pub mod canvas;
pub mod compare;
pub mod console;
pub mod export;
pub mod grid;
pub mod lock;
pub mod metrics;
pub mod plot;
pub mod record;

pub use console::{Console, ConsoleMode};
pub use grid::{images_from_outputs, write_grid, GUTTER, GUTTER_GRAY};
pub use lock::OutputLock;
pub use record::RunRecord;
