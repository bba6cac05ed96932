//! Artifact generation (paper §IV-C): build the *buggy* and the *corrected*
//! revision of a framework with one command template, each in its own git
//! worktree, and record the provenance of both.
//!
//! ```toml
//! name = "conv2d-grad"
//! repository = "/src/pytorch"          # a local path or a URL
//! buggy = "a1b2c3d"                    # the last commit with the bug
//! corrected = "e4f5a6b"                # the fix
//! command = "python setup.py bdist_wheel --dist-dir {out}"
//! [env]
//! USE_CUDA = "0"
//! ```
//!
//! `{src}` is the worktree, `{rev}` the revision, `{out}` the folder the
//! build must put its output in, filled in one pass and single-quoted for
//! the shell (`template::fill`). A failed build is recorded and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A build recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The bug's name; names the artifacts' folder.
    pub name: String,
    /// Git repository: a local path or a URL.
    pub repository: String,
    /// Revision with the bug.
    pub buggy: String,
    /// Revision with the fix.
    pub corrected: String,
    /// Build command, run by `sh -c`, with `{src}`, `{rev}` and `{out}`.
    pub command: String,
    /// Environment of the build, the same for both sides.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// What is recorded about one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `buggy` or `corrected`.
    pub side: String,
    /// The revision asked for.
    pub revision: String,
    /// The commit it resolved to.
    pub commit: String,
    /// The command as run.
    pub command: String,
    /// The build environment set by the recipe.
    pub env: BTreeMap<String, String>,
    /// Versions of the tools at hand (git, cc, rustc, python3).
    pub toolchain: BTreeMap<String, String>,
    /// Whether the build succeeded.
    pub succeeded: bool,
    /// Exit status or why it did not run.
    pub status: String,
    /// The build log.
    pub log: PathBuf,
    /// The output folder.
    pub out: PathBuf,
    /// SHA-256 over the output's files (relative path and content, in
    /// path order), hex; empty when the build failed.
    pub output_digest: String,
}

/// Why a recipe cannot be used at all (a failed build is not an error).
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The recipe is not valid.
    #[error("{0}")]
    Recipe(String),
    /// Git or the file system failed.
    #[error("{what}: {message}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        message: String,
    },
}

impl Recipe {
    /// Parses a recipe; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ArtifactError> {
        let recipe: Recipe = toml::from_str(text)
            .map_err(|e| ArtifactError::Recipe(format!("{origin}: {}", e.message())))?;
        let safe = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/~^".contains(c))
        };
        // The name is a folder under --dir: an identifier, so never `..`.
        if reproml_core::Name::new(recipe.name.as_str()).is_err() {
            return Err(ArtifactError::Recipe(format!(
                "{origin}: name {:?} must be letters, digits, '.', '_', '-', starting with a letter or digit",
                recipe.name
            )));
        }
        for rev in [&recipe.buggy, &recipe.corrected] {
            if !safe(rev) || rev.starts_with('-') {
                return Err(ArtifactError::Recipe(format!(
                    "{origin}: revision {rev:?} is not a plain git revision"
                )));
            }
        }
        if !recipe.command.contains("{out}") {
            return Err(ArtifactError::Recipe(format!(
                "{origin}: the command must put its output in {{out}}"
            )));
        }
        Ok(recipe)
    }
}

fn git(args: &[&str], dir: &Path) -> Result<String, ArtifactError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| ArtifactError::Io {
            what: format!("git {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ArtifactError::Io {
            what: format!("git {} in {}", args.join(" "), dir.display()),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn version(tool: &str, arg: &str) -> Option<String> {
    let out = Command::new(tool).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    text.lines().next().map(str::to_owned)
}

fn digest_dir(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        h.update((rel.len() as u32).to_le_bytes());
        h.update(rel.as_bytes());
        h.update(std::fs::read(&f)?);
    }
    Ok(reproml_core::hex(&h.finalize()))
}

/// Builds both sides of `recipe` under `dir/<name>/`; returns the
/// provenance of each (also written to `<side>/provenance.json`).
pub fn build(recipe: &Recipe, dir: &Path) -> Result<Vec<Provenance>, ArtifactError> {
    let io = |what: String| {
        move |e: std::io::Error| ArtifactError::Io {
            what: what.clone(),
            message: e.to_string(),
        }
    };
    let root = dir.join(&recipe.name);
    std::fs::create_dir_all(&root).map_err(io(format!("create {}", root.display())))?;
    let root = std::fs::canonicalize(&root).map_err(io(format!("resolve {}", root.display())))?;
    // A URL is cloned once; a local repository is used in place.
    let repo = if Path::new(&recipe.repository).is_dir() {
        std::fs::canonicalize(&recipe.repository)
            .map_err(io(format!("resolve {}", recipe.repository)))?
    } else {
        let clone = root.join("repository");
        if !clone.is_dir() {
            git(
                &[
                    "clone",
                    "--no-checkout",
                    "--",
                    &recipe.repository,
                    &clone.display().to_string(),
                ],
                &root,
            )?;
        }
        clone
    };
    let toolchain: BTreeMap<String, String> = [
        ("git", "--version"),
        ("cc", "--version"),
        ("rustc", "--version"),
        ("python3", "--version"),
    ]
    .iter()
    .filter_map(|(t, a)| version(t, a).map(|v| (t.to_string(), v)))
    .collect();
    let mut out = Vec::new();
    for (side, rev) in [("buggy", &recipe.buggy), ("corrected", &recipe.corrected)] {
        let side_dir = root.join(side);
        let src = side_dir.join("src");
        let output = side_dir.join("out");
        let log = side_dir.join("build.log");
        std::fs::create_dir_all(&side_dir).map_err(io(format!("create {}", side_dir.display())))?;
        let commit = git(
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
            &repo,
        )?;
        if src.exists() {
            // Rebuild from a clean worktree at the same commit.
            git(
                &["worktree", "remove", "--force", &src.display().to_string()],
                &repo,
            )?;
        }
        git(
            &[
                "worktree",
                "add",
                "--detach",
                &src.display().to_string(),
                &commit,
            ],
            &repo,
        )?;
        let _ = std::fs::remove_dir_all(&output);
        std::fs::create_dir_all(&output).map_err(io(format!("create {}", output.display())))?;
        let command = crate::template::fill(
            &recipe.command,
            &[
                ("src", &src.display().to_string()),
                ("rev", &commit),
                ("out", &output.display().to_string()),
            ],
        );
        let log_file =
            std::fs::File::create(&log).map_err(io(format!("create {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(io(format!("open {}", log.display())))?;
        let status = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(&src)
            .envs(&recipe.env)
            .stdout(log_file)
            .stderr(log_err)
            .status();
        let (succeeded, status) = match status {
            Ok(s) => (s.success(), s.to_string()),
            Err(e) => (false, format!("could not start: {e}")),
        };
        let output_digest = if succeeded {
            digest_dir(&output).map_err(io(format!("digest {}", output.display())))?
        } else {
            String::new()
        };
        let provenance = Provenance {
            side: side.into(),
            revision: rev.clone(),
            commit,
            command,
            env: recipe.env.clone(),
            toolchain: toolchain.clone(),
            succeeded,
            status,
            log,
            out: output,
            output_digest,
        };
        let json = serde_json::to_string_pretty(&provenance).map_err(|e| ArtifactError::Io {
            what: "provenance".into(),
            message: e.to_string(),
        })?;
        std::fs::write(side_dir.join("provenance.json"), json)
            .map_err(io(format!("write {}", side_dir.display())))?;
        out.push(provenance);
    }
    Ok(out)
}
