//! Artifact builds from a local git repository made here.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use reproml_study::artifact::{Recipe, build};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with a buggy commit and a fix that adds `fixed.txt`.
fn repository(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q"]);
    std::fs::write(dir.join("data.txt"), "version 1\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "buggy"]);
    let buggy = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("data.txt"), "version 2\n").unwrap();
    std::fs::write(dir.join("fixed.txt"), "fix\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "fix"]);
    (buggy, git(dir, &["rev-parse", "HEAD"]))
}

#[test]
fn both_sides_build_in_their_own_worktree_with_provenance() {
    let root = std::env::temp_dir().join(format!("reproml-artifact-ok-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let repo = root.join("repo");
    let (buggy, fixed) = repository(&repo);
    let recipe = Recipe::from_toml(
        &format!(
            "name = \"demo\"\nrepository = \"{}\"\nbuggy = \"{buggy}\"\ncorrected = \"HEAD\"\n\
             command = \"cp data.txt {{out}}/ && echo $GREETING-{{rev}} > {{out}}/env.txt\"\n[env]\nGREETING = \"hello\"\n",
            repo.display()
        ),
        "recipe.toml",
    )
    .unwrap();
    let built = build(&recipe, &root.join("artifacts")).unwrap();
    assert_eq!(built.len(), 2);
    assert!(built.iter().all(|p| p.succeeded), "{built:#?}");
    assert_eq!(
        (built[0].commit.as_str(), built[1].commit.as_str()),
        (buggy.as_str(), fixed.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(built[0].out.join("data.txt")).unwrap(),
        "version 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(built[1].out.join("data.txt")).unwrap(),
        "version 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(built[1].out.join("env.txt")).unwrap(),
        format!("hello-{fixed}\n")
    );
    assert_ne!(built[0].output_digest, built[1].output_digest);
    assert_eq!(built[0].output_digest.len(), 64);
    assert!(built[0].toolchain.contains_key("git"));
    assert!(root.join("artifacts/demo/buggy/provenance.json").is_file());
    // Building again gives the same outputs.
    let again = build(&recipe, &root.join("artifacts")).unwrap();
    assert_eq!(again[0].output_digest, built[0].output_digest);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_failing_build_is_recorded_and_skipped() {
    let root = std::env::temp_dir().join(format!("reproml-artifact-fail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let repo = root.join("repo");
    let (buggy, _) = repository(&repo);
    let recipe = Recipe::from_toml(
        &format!(
            "name = \"needs-fix\"\nrepository = \"{}\"\nbuggy = \"{buggy}\"\ncorrected = \"HEAD\"\n\
             command = \"echo building; test -f fixed.txt && cp fixed.txt {{out}}/\"\n",
            repo.display()
        ),
        "recipe.toml",
    )
    .unwrap();
    let built = build(&recipe, &root.join("artifacts")).unwrap();
    assert!(!built[0].succeeded, "the buggy side cannot build");
    assert!(
        built[0].status.contains("exit status: 1"),
        "{}",
        built[0].status
    );
    assert!(built[0].output_digest.is_empty());
    assert!(
        std::fs::read_to_string(&built[0].log)
            .unwrap()
            .contains("building")
    );
    assert!(built[1].succeeded, "the corrected side still builds");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_recipes_are_refused() {
    let base = "name = \"x\"\nrepository = \"/tmp\"\nbuggy = \"a\"\ncorrected = \"b\"\ncommand = \"make OUT={out}\"\n";
    assert!(Recipe::from_toml(base, "r").is_ok());
    assert!(
        Recipe::from_toml(&base.replace("OUT={out}", ""), "r")
            .unwrap_err()
            .to_string()
            .contains("{out}")
    );
    assert!(
        Recipe::from_toml(
            &base.replace("buggy = \"a\"", "buggy = \"--upload-pack=x\""),
            "r"
        )
        .is_err()
    );
    assert!(Recipe::from_toml(&base.replace("name = \"x\"", "name = \"../x\""), "r").is_err());
    assert!(Recipe::from_toml(&format!("{base}surprise = 1\n"), "r").is_err());
}

#[test]
fn names_and_folders_cannot_escape() {
    let root = std::env::temp_dir().join(format!("reproml-artifact-esc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let repo = root.join("repo");
    let (buggy, _) = repository(&repo);
    let recipe = |name: &str, command: &str| {
        Recipe::from_toml(
            &format!(
                "name = \"{name}\"\nrepository = \"{}\"\nbuggy = \"{buggy}\"\ncorrected = \"HEAD\"\ncommand = \"{command}\"\n",
                repo.display()
            ),
            "recipe.toml",
        )
    };
    // A recipe named `..` would build into, and clear, the parent of --dir.
    for name in ["..", ".", "a/b", ""] {
        assert!(recipe(name, "true {out}").is_err(), "{name:?}");
    }
    // A --dir whose name holds `{out}` and a space: substituted once, one word.
    let dir = root.join("odd {out} dir");
    let r = recipe(
        "esc",
        "cp data.txt {out}/ && printf %s {src} > {out}/src.txt",
    )
    .unwrap();
    let built = build(&r, &dir).unwrap();
    assert!(built.iter().all(|p| p.succeeded), "{built:?}");
    let src = std::fs::read_to_string(built[0].out.join("src.txt")).unwrap();
    assert!(src.contains("odd {out} dir"), "{src}");
    assert!(src.ends_with("src"), "the worktree path, unexpanded: {src}");
    std::fs::remove_dir_all(&root).unwrap();
}
