//! One module per subcommand; each parses its arguments with clap and does
//! its I/O here, calling the library crates for the logic.

pub mod seeds;
pub mod spec;
pub mod stats;
