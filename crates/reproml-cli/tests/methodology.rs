//! `docs/methodology.md` as a user follows it: every `sh` block, in order,
//! in one fresh folder that sees the repository's `examples/`, with this
//! build's `reproml` first on the `PATH`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `sh` blocks of a Markdown text, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

#[test]
fn the_methodology_walk_through_runs_as_written() {
    let doc = std::fs::read_to_string(repo_root().join("docs/methodology.md")).unwrap();
    let blocks = shell_blocks(&doc);
    assert!(blocks.len() >= 4, "{blocks:?}");

    let dir = std::env::temp_dir().join(format!("reproml-methodology-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        repo_root().join("examples").canonicalize().unwrap(),
        dir.join("examples"),
    )
    .unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_reproml")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // What the commands printed (not the blocks' own text, which holds
    // the very words some checks look for).
    let mut transcript = String::new();
    for (i, block) in blocks.iter().enumerate() {
        let out = Command::new("bash")
            .args(["-eu", "-o", "pipefail", "-c", block])
            .current_dir(&dir)
            .env("PATH", &path)
            .env_remove("REPROML_SERVER")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        transcript.push_str(&format!("--- block {}\n{stdout}{stderr}", i + 1));
        assert!(
            out.status.success(),
            "block {} of docs/methodology.md failed ({}):\n{block}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            i + 1,
            out.status
        );
    }

    // What the prose around the blocks promises.
    for promised in [
        "selected       2   (accepted by every labeller: B_f)",
        "to discuss     1   B0004",
        "not in B_f, left out: B0003",
        "analysed       2",
        "exit status 3: a bug changed the trained models",
    ] {
        assert!(
            transcript.contains(promised),
            "{promised:?} in\n{transcript}"
        );
    }
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("verdicts.json")).unwrap()).unwrap();
    let verdict = |experiment: &str| {
        verdicts["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["experiment"] == experiment)
            .map(|c| c["verdict"].as_str().unwrap().to_owned())
    };
    assert_eq!(verdict("walkthrough-B0001").as_deref(), Some("detected"));
    assert_eq!(
        verdict("walkthrough-B0002").as_deref(),
        Some("not-triggered")
    );
    assert_eq!(verdict("walkthrough-B0003"), None, "B0003 is not in B_f");
    assert!(dir.join("walkthrough-report/index.html").is_file());
    assert!(
        transcript.contains("not triggered — identical trajectories")
            && !transcript.contains("difference detected in 1 comparison(s): walkthrough-B0002"),
        "B0002 passes its own gate"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
