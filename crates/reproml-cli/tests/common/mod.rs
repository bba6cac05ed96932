//! What the tests of the binary share.

use std::process::Command;

/// The `reproml` binary under test, keeping data sets it fetches in the
/// build's temporary folder instead of the user's `~/.cache/reproml`.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_reproml"));
    command.env(
        "REPROML_CACHE_DIR",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/reproml-cache"),
    );
    command
}
