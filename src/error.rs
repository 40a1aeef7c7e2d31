//! Typed errors for the library. The binary turns them into one-line messages
//! (through `anyhow` at the edge); nothing in the library panics on bad input.

use std::path::PathBuf;

/// Everything that can go wrong inside the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file is missing, unreadable or malformed.
    #[error("{path}: {problem}")]
    Data { path: PathBuf, problem: String },

    /// A flag or configuration value is out of range.
    #[error("invalid {name}: {problem}")]
    Config { name: String, problem: String },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The GPU backend could not be created or failed while running.
    #[error("GPU: {0}")]
    Gpu(String),

    /// A checkpoint is missing, unreadable, malformed, of a newer format, or
    /// does not fit the run it should resume.
    #[error("{path}: {problem}")]
    Checkpoint { path: PathBuf, problem: String },
    /// An evaluation could not be computed (see `crate::eval`).
    #[error("evaluation: {0}")]
    Eval(String),

    /// An image could not be encoded or written.
    #[error("{path}: {problem}")]
    Image { path: PathBuf, problem: String },
}

impl Error {
    /// A data-file error naming the file and the problem.
    pub fn data(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A configuration error naming the flag and the problem.
    pub fn config(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            problem: problem.into(),
        }
    }

    /// An I/O error naming the file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
