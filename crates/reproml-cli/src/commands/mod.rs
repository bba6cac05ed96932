//! One module per subcommand: its arguments (clap), calls into the library
//! crates, and its output. Command modules never import each other; what
//! several share lives beside them (`connect`, `files`, `output`).

pub mod artifact;
pub mod bugs;
pub mod bundle;
pub mod compare;
pub mod conventions;
pub mod data;
pub mod demo;
pub mod experiment;
pub mod plan;
pub mod run;
pub mod seeds;
pub mod server;
pub mod spec;
pub mod stats;
pub mod study;
pub mod verify;
