//! The study pipeline of the paper (§IV): data collection from release
//! notes into a bug corpus, and filtering by labellers with inter-rater
//! agreement; artifact builds with provenance; study files. The study is
//! driven (runs trained, retried, resumed) by `reproml-runner`.

pub mod artifact;
pub mod corpus;
pub mod files;
pub mod labels;
pub mod study;
pub mod template;

pub use corpus::{BugRecord, CorpusError, NotesFormat, number_corpus, parse_release_notes};
pub use labels::{Decision, Label, accepted, agreement, disagreements};
pub use study::{ArtifactSpec, Comparisons, SlurmSettings, Study, StudyBug, StudyError};
