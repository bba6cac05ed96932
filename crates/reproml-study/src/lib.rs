//! The study pipeline of the paper (§IV): data collection from release
//! notes into a bug corpus. Filtering, artifacts and the study runner come
//! next (see the open issue).

pub mod corpus;

pub use corpus::{BugRecord, CorpusError, NotesFormat, parse_release_notes};
