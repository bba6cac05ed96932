//! One module per subcommand; each parses its arguments with clap and does
//! its I/O here, calling the library crates for the logic.

pub mod artifact;
pub mod bugs;
pub mod compare;
pub mod connect;
pub mod data;
pub mod demo;
pub mod run;
pub mod seeds;
pub mod server;
pub mod spec;
pub mod stats;
pub mod study;
pub mod verify;

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Reads a UTF-8 text file of at most `max_bytes`; `what` names it in
/// errors ("spec file", "sample file"). The bound keeps a wrong path (a
/// data set, a device) from being read whole into memory.
pub fn read_text_file(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .len();
    if size > max_bytes {
        bail!(
            "{} is {size} bytes; a {what} is at most {max_bytes} bytes — is this the right file?",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {} as UTF-8 text", path.display()))
}
