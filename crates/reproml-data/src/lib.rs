//! Data sets for ReproduceML's challenges: readers for the standard file
//! formats, the built-in `digits` set, generated sets for tests and
//! benchmarks, content digests and per-data-set normalisation.
//!
//! A [`Dataset`] keeps pixels as bytes, exactly as the files hold them, and
//! travels over the wire that way; clients scale and normalise with the
//! data set's own [`Normalization`].

mod dataset;
mod formats;
mod generate;
pub mod serve;
pub mod wire;

pub use dataset::{CONTENT_HEAD_BYTES, CONTENT_MEDIA_TYPE, Dataset, OfficialSplit};
pub use formats::{
    DataFormat, FASHION_MNIST_DIR, builtin, load, read_cifar10_dir, read_digits_csv, read_idx_dir,
    read_idx_pair,
};
pub use generate::generate;
pub use reproml_api::{ImageShape, Normalization};

/// Why a data set cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not in the expected format.
    #[error("{path}: {problem}")]
    Format {
        /// What was being read.
        path: String,
        /// What is wrong, and where.
        problem: String,
    },
    /// A name that is neither built in nor importable this way.
    #[error("unknown data set {name:?}: {hint}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// What to do.
        hint: String,
    },
}

impl DataError {
    pub(crate) fn format(path: impl std::fmt::Display, problem: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_string(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_string(),
            source,
        }
    }
}
