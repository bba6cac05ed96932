//! Records what identifies this build of the engine exactly, for the run's
//! fingerprint and artifact:
//!
//! - the compiler and the target;
//! - the compute stack: every crate.io crate the engine depends on, as
//!   resolved in `Cargo.lock` (name, version, checksum), digested — burn's
//!   facade is pinned, but its sub-crates resolve separately (0.22.0 vs
//!   0.22.1), and so do gemm, pulp and the rest;
//! - the source: a digest of the sources of the crates that decide what a
//!   run computes (this one, `reproml-core`, `reproml-data`), so that two
//!   builds of different code never share an identity, committed or not;
//! - the git commit, for people (absent outside a git checkout).
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    env("REPROML_RUSTC_VERSION", version.trim());
    env(
        "REPROML_TARGET",
        &std::env::var("TARGET").unwrap_or_default(),
    );

    let lock = root.join("Cargo.lock");
    let (stack, versions) = compute_stack(&lock);
    env("REPROML_STACK", &stack);
    for (var, krate) in [
        ("REPROML_BURN_RESOLVED", "burn-tensor"),
        ("REPROML_BURN_FLEX", "burn-flex"),
    ] {
        let v = versions.get(krate).map_or("unknown", String::as_str);
        env(var, v);
    }

    let sources = [
        "crates/reproml-train",
        "crates/reproml-core",
        "crates/reproml-data",
        // Patched into the CUDA build in place of a crates.io crate, so
        // not covered by the locked crates' digest.
        "third_party/cubecl-llvm",
    ];
    env("REPROML_SOURCE", &source_digest(&root, &sources));
    env("REPROML_COMMIT", &git_commit(&root));

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", lock.display());
    for dir in sources {
        for sub in ["src", "Cargo.toml"] {
            println!(
                "cargo:rerun-if-changed={}",
                root.join(dir).join(sub).display()
            );
        }
    }
    for git in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        let path = root.join(git);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn env(name: &str, value: &str) {
    println!("cargo:rustc-env={name}={value}");
}

/// The first 16 hex digits of a SHA-256.
fn short(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of every registry crate reachable from this crate in
/// `Cargo.lock`, and their resolved versions by name.
fn compute_stack(lock: &Path) -> (String, BTreeMap<String, String>) {
    let Ok(text) = std::fs::read_to_string(lock) else {
        return ("unknown".into(), BTreeMap::new());
    };
    let Ok(parsed) = text.parse::<toml::Table>() else {
        return ("unknown".into(), BTreeMap::new());
    };
    let packages: Vec<&toml::Table> = parsed
        .get("package")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter_map(|p| p.as_table()).collect())
        .unwrap_or_default();
    let field =
        |p: &toml::Table, k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    // A dependency is written "name" or, when several versions are locked,
    // "name version".
    let find = |dep: &str| -> Option<&toml::Table> {
        let mut parts = dep.split(' ');
        let name = parts.next()?;
        let version = parts.next();
        packages
            .iter()
            .copied()
            .find(|p| field(p, "name") == name && version.is_none_or(|v| field(p, "version") == v))
    };
    let mut seen = BTreeSet::new();
    let mut lines = BTreeSet::new();
    let mut versions = BTreeMap::new();
    let mut queue = VecDeque::from(["reproml-train".to_owned()]);
    while let Some(dep) = queue.pop_front() {
        if !seen.insert(dep.clone()) {
            continue;
        }
        let Some(p) = find(&dep) else { continue };
        if p.contains_key("source") {
            let (name, version) = (field(p, "name"), field(p, "version"));
            lines.insert(format!("{name} {version} {}", field(p, "checksum")));
            versions.insert(name, version);
        }
        for d in p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
        {
            queue.push_back(d.to_owned());
        }
    }
    let mut hash = Sha256::new();
    for line in &lines {
        hash.update(line.as_bytes());
        hash.update(b"\n");
    }
    (
        format!("{}-{}", lines.len(), short(&hash.finalize())),
        versions,
    )
}

/// SHA-256 over the path and content of every file under each `dirs`
/// (`src/` and `Cargo.toml`), in path order.
fn source_digest(root: &Path, dirs: &[&str]) -> String {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in dirs {
        walk(&root.join(dir).join("src"), &mut files);
        files.push(root.join(dir).join("Cargo.toml"));
    }
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(&file);
        hash.update(relative.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(&file).unwrap_or_default());
        hash.update([0]);
    }
    short(&hash.finalize())
}

/// The commit checked out, with `-dirty` when tracked files differ from it;
/// `unknown` outside a git checkout.
fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        _ => "unknown".into(),
    }
}
