//! The study pipeline of the paper (§IV): data collection from release
//! notes into a bug corpus, and filtering by labellers with inter-rater
//! agreement. Artifacts and the study runner come next (see the open issue).

pub mod artifact;
pub mod corpus;
pub mod labels;
pub mod study;

pub use corpus::{BugRecord, CorpusError, NotesFormat, number_corpus, parse_release_notes};
pub use labels::{Decision, Label, accepted, agreement, disagreements};
pub use study::{ArtifactSpec, Study, StudyBug, StudyError};
