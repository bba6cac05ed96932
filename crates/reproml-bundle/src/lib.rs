//! Replication packages: everything needed to check a study elsewhere, in
//! one archive (`tar`, compressed with zstd) whose manifest holds the
//! SHA-256 of every file.
//!
//! A bundle holds each experiment as the server stored it (spec, seeds),
//! every run's result with its per-epoch digests and fingerprint, the
//! failure reports, the data sets' digests, the comparison report with the
//! settings that made it, and the study's own files when given. Reading
//! one checks every file against the manifest ([`Bundle::read`]);
//! [`verify`] then checks that the records hold together and re-derives
//! the report from the runs, bit for bit. Re-training runs is the
//! command line's job (it needs the engine).
//!
//! The archive is reproducible: files in name order, fixed times and
//! modes, so the same records give the same bytes.

mod archive;
mod contents;

pub use archive::{Bundle, FORMAT, MANIFEST, Manifest, frames};
pub use contents::{
    Description, ExperimentRecord, ReportSettings, Verified, assemble, report_of, verify,
};

use std::path::PathBuf;

/// What can go wrong with a bundle; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The archive's bytes are damaged (a changed byte in the compressed
    /// stream, a cut-off file).
    #[error("{path} is damaged {at}: {message}")]
    Damaged {
        /// The archive.
        path: PathBuf,
        /// Where it was found: in which file, or after which.
        at: String,
        /// What the decoder said.
        message: String,
    },
    /// No manifest: not a bundle of this tool.
    #[error(
        "{0} has no {MANIFEST}: it is not a ReproduceML bundle (made by `reproml bundle export`)"
    )]
    NoManifest(PathBuf),
    /// Files differ from the manifest, are missing from it or from the
    /// archive.
    #[error("the bundle's files do not match its manifest:\n  {}", .0.join("\n  "))]
    Tampered(Vec<String>),
    /// A file cannot be read as what it should be.
    #[error("{file}: {message}")]
    Invalid {
        /// The file inside the bundle.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The records contradict each other or the report.
    #[error("the bundle's records do not hold together:\n  {}", .0.join("\n  "))]
    Inconsistent(Vec<String>),
    /// A path that cannot name a file inside a bundle.
    #[error(
        "{0:?} cannot be a file of a bundle: a relative path of letters, digits, '.', '_', '-' and '/'"
    )]
    BadPath(String),
    /// Over the bounds a bundle may have.
    #[error("{0}")]
    TooLarge(String),
}
