//! The `reproml` binary as a user meets it: real processes, real files.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

fn reproml(args: &[&str]) -> Output {
    common::binary()
        .args(args)
        .output()
        .expect("the reproml binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_spec_is_accepted_and_normalises_to_a_fixed_point() {
    let examples = toml_files(&repo_root().join("examples"));
    assert!(examples.len() >= 3, "examples/ holds the shipped specs");
    for file in examples {
        let out = reproml(&["spec", "check", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        let normalised = std::env::temp_dir().join(format!(
            "reproml-normalised-{}-{}",
            std::process::id(),
            file.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::write(&normalised, &out.stdout).unwrap();
        let again = reproml(&["spec", "check", normalised.to_str().unwrap()]);
        std::fs::remove_file(&normalised).unwrap();
        assert_eq!(text(&again.stdout), text(&out.stdout), "{}", file.display());
    }
}

#[test]
fn broken_specs_are_rejected_with_file_line_and_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-specs");
    // (file, line, what the message must say)
    let expected = [
        (
            "bad-identifier.toml",
            1,
            "experiment identifier \"x y\" has the character ' '",
        ),
        (
            "bad-seed-policy.toml",
            5,
            "`seed_policy`: unknown variant `sometimes`, expected `per-run` or `fixed`",
        ),
        (
            "fractions-sum.toml",
            6,
            "`split`: train + test + validation must be 1, got 0.9",
        ),
        ("missing-epochs.toml", 1, "missing field `epochs`"),
        (
            "momentum-out-of-range.toml",
            7,
            "`optimizer.momentum`: must be in [0, 1), got 1.0",
        ),
        ("syntax.toml", 3, "invalid basic string"),
        (
            "unknown-key.toml",
            7,
            "unknown field `learning_rate`, expected one of `kind`, `lr`",
        ),
        (
            "wrong-type.toml",
            4,
            "`epochs`: invalid type: string \"three\", expected u32",
        ),
    ];
    assert_eq!(
        toml_files(&dir).len(),
        expected.len(),
        "every fixture has an expectation"
    );
    for (name, line, message) in expected {
        let path = dir.join(name);
        let out = reproml(&["spec", "check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(out.stdout.is_empty(), "{name}: nothing printed on stdout");
        let err = text(&out.stderr);
        let located = format!("{}:{line}:", path.display());
        assert!(
            err.contains(&located),
            "{name}: expected {located} in {err}"
        );
        assert!(
            err.contains(message),
            "{name}: expected {message:?} in {err}"
        );
    }
}

#[test]
fn a_missing_spec_file_is_a_clear_error() {
    let out = reproml(&["spec", "check", "/nonexistent/spec.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read spec file /nonexistent/spec.toml"));
}

#[test]
fn seeds_json_lists_per_run_and_fixed_seeds() {
    let per_run = reproml(&[
        "seeds",
        "--experiment",
        "demo",
        "--master-seed",
        "42",
        "--count",
        "4",
        "--json",
    ]);
    assert!(per_run.status.success(), "{}", text(&per_run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&per_run.stdout).unwrap();
    let seeds: Vec<u64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds.len(), 4);
    let mut distinct = seeds.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "per-run seeds differ: {seeds:?}");

    let fixed = reproml(&[
        "seeds",
        "--experiment",
        "demo",
        "--master-seed",
        "42",
        "--count",
        "4",
        "--policy",
        "fixed",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&fixed.stdout).unwrap();
    for r in v["runs"].as_array().unwrap() {
        assert_eq!(
            r["seed"].as_u64().unwrap(),
            seeds[0],
            "fixed: every run gets s_0"
        );
    }
}

#[test]
fn seeds_rejects_bad_arguments() {
    for args in [
        &[
            "seeds",
            "--experiment",
            "a/b",
            "--master-seed",
            "1",
            "--count",
            "2",
        ][..],
        &[
            "seeds",
            "--experiment",
            "a",
            "--master-seed",
            "-1",
            "--count",
            "2",
        ],
        &[
            "seeds",
            "--experiment",
            "a",
            "--master-seed",
            "1",
            "--count",
            "0",
        ],
        &[
            "seeds",
            "--experiment",
            "a",
            "--master-seed",
            "1",
            "--count",
            "2",
            "--policy",
            "often",
        ],
    ] {
        let out = reproml(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("error"), "{args:?}");
    }
}

#[test]
fn help_and_version_work_everywhere() {
    for args in [
        &["--help"][..],
        &["spec", "--help"],
        &["spec", "check", "--help"],
        &["seeds", "--help"],
    ] {
        let out = reproml(args);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: reproml"), "{args:?}");
    }
    let out = reproml(&["-V"]);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("reproml {}", env!("CARGO_PKG_VERSION"))
    );
    // The long form names the source commit and the engine's build identity.
    let long = text(&reproml(&["--version"]).stdout);
    assert!(
        long.starts_with(&format!("reproml {}\ncommit ", env!("CARGO_PKG_VERSION"))),
        "{long}"
    );
    assert!(
        long.contains("engine source ") && long.contains("engine crates "),
        "{long}"
    );
    let out = reproml(&["spec", "check", "--version"]);
    assert!(out.status.success());
}

#[test]
fn bugs_collect_writes_a_corpus_and_counts_per_release() {
    let fixtures = repo_root().join("examples/release-notes");
    let out = std::env::temp_dir().join(format!("reproml-corpus-{}.json", std::process::id()));
    let run = reproml(&[
        "bugs",
        "collect",
        "--framework",
        "tensorflow",
        "--out",
        out.to_str().unwrap(),
        fixtures.join("tensorflow-RELEASE.md").to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("2.3.0\t3 bug fix(es)") && stdout.contains("2.2.0\t1 bug fix(es)"),
        "{stdout}"
    );
    let corpus: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(corpus.as_array().unwrap().len(), 4);
    assert_eq!(corpus[0]["prs"][0], 12345);
    std::fs::remove_file(&out).unwrap();

    let missing = reproml(&[
        "bugs",
        "collect",
        "--framework",
        "pytorch",
        "--out",
        out.to_str().unwrap(),
        fixtures.join("pytorch-1.5.1.md").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("give --release TAG"));
}

#[test]
fn bugs_label_and_status_show_the_funnel_and_agreement() {
    let dir = std::env::temp_dir().join(format!("reproml-labels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = repo_root().join("examples/release-notes");
    let corpus = dir.join("corpus.json");
    let csv = dir.join("corpus.csv");
    let labels = dir.join("labels.jsonl");
    let release_md = fixtures.join("tensorflow-RELEASE.md");
    for out in [&corpus, &csv] {
        let run = reproml(&[
            "bugs",
            "collect",
            "--framework",
            "tf",
            "--out",
            out.to_str().unwrap(),
            release_md.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", text(&run.stderr));
    }
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .starts_with("id,framework,release")
    );
    let label = |labeller: &str, bug: &str, decision: &str| {
        reproml(&[
            "bugs",
            "label",
            "--labels",
            labels.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--labeller",
            labeller,
            "--bug",
            bug,
            "--decision",
            decision,
        ])
    };
    for (who, bug, decision) in [
        ("ana", "B0001", "accept:gradients"),
        ("ben", "B0001", "accept:gradients"),
        ("ana", "B0002", "reject:crash"),
        ("ben", "B0002", "accept:math"),
    ] {
        assert!(label(who, bug, decision).status.success());
    }
    let missing = label("ana", "B9999", "accept:math");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("has no bug B9999"));
    let bad = label("ana", "B0001", "perhaps");
    assert_eq!(bad.status.code(), Some(2));

    let status = reproml(&[
        "bugs",
        "status",
        "--corpus",
        corpus.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ]);
    let out = text(&status.stdout);
    assert!(out.contains("collected      4"), "{out}");
    assert!(out.contains("labelled       2"), "{out}");
    assert!(out.contains("selected       1"), "{out}");
    assert!(out.contains("to discuss     1   B0002"), "{out}");
    // Pairs (g, g), (crash, math): p_o = 1/2, p_e = 1/4 → κ = 1/3.
    assert!(out.contains("Cohen's κ = 0.333"), "{out}");

    // Built: both sides of the selected bug's artifacts succeeded.
    for side in ["buggy", "corrected"] {
        let side_dir = dir.join("artifacts/B0001").join(side);
        std::fs::create_dir_all(&side_dir).unwrap();
        let provenance = serde_json::json!({
            "side": side, "revision": "r", "commit": "c", "command": "true", "env": {}, "toolchain": {},
            "succeeded": true, "status": "exit status: 0", "log": "l", "out": "o", "output_digest": "d",
        });
        std::fs::write(side_dir.join("provenance.json"), provenance.to_string()).unwrap();
    }
    // Analysed: the selected bug's study experiment has every run.
    let study = dir.join("study.toml");
    std::fs::write(
        &study,
        "name = \"s\"\nruns = 2\n[base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\n\
         [[bug]]\nid = \"B0001\"\nbuggy = { kind = \"builtin\", fault = \"momentum-ignored\" }\ncorrected = { kind = \"builtin\" }\n",
    )
    .unwrap();
    let db = dir.join("study.db");
    let ran = reproml(&[
        "study",
        "run",
        study.to_str().unwrap(),
        "--embedded",
        "--db",
        db.to_str().unwrap(),
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    let funnel = reproml(&[
        "bugs",
        "status",
        "--corpus",
        corpus.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--artifacts",
        dir.join("artifacts").to_str().unwrap(),
        "--study",
        study.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    let out = text(&funnel.stdout);
    assert!(out.contains("built          1"), "{out}");
    assert!(out.contains("analysed       1"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_only_commands_never_create_a_database() {
    let dir = std::env::temp_dir().join(format!("reproml-readonly-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("typo.db");
    let db_arg = db.to_str().unwrap();
    let study = repo_root().join("examples/studies/calibration.toml");
    let study_arg = study.to_str().unwrap();
    let corpus = dir.join("corpus.json");
    std::fs::write(&corpus, "[]").unwrap();
    let corpus_arg = corpus.to_str().unwrap();
    let out_dir = dir.join("r");
    let commands: [&[&str]; 4] = [
        &["compare", "--db", db_arg],
        &["report", "--db", db_arg, "--out", out_dir.to_str().unwrap()],
        &["study", "status", study_arg, "--embedded", "--db", db_arg],
        &[
            "bugs", "status", "--corpus", corpus_arg, "--study", study_arg, "--db", db_arg,
        ],
    ];
    for args in commands {
        let out = reproml(args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("there is no database") && err.contains("typo.db"),
            "{args:?}: {err}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    // `data list` still lists the built-in data sets, and says why only them.
    let out = reproml(&["data", "list", "--db", db_arg]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("digits           built-in   digits-csv     1797"));
    assert!(text(&out.stderr).contains("no database at"));
    assert!(!db.exists(), "data list created {}", db.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn experiments_are_created_listed_shown_and_deleted_without_training() {
    let dir = std::env::temp_dir().join(format!("reproml-experiment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("e.db");
    let db = db.to_str().unwrap();
    let spec = dir.join("torch.toml");
    std::fs::write(
        &spec,
        "id = \"torch-113\"\nmodel = \"custom:resnet-tiny\"\nchallenge = \"digits\"\nepochs = 2\nruns = 4\n",
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    let on_db = |args: &[&str]| {
        let mut all = vec!["experiment"];
        all.extend_from_slice(&args[..1]);
        all.extend(["--embedded", "--db", db]);
        all.extend_from_slice(&args[1..]);
        reproml(&all)
    };
    let out = on_db(&["create", "--spec", spec]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created experiment torch-113"));
    let out = on_db(&["list"]);
    assert!(
        text(&out.stdout).contains("custom:resnet-tiny"),
        "{}",
        text(&out.stdout)
    );
    let out = on_db(&["show", "torch-113", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["experiment"]["seeds"].as_array().unwrap().len(), 4);

    // A model no engine knows is refused by `spec check` and at creation.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "id = \"bad\"\nmodel = \"resnet50\"\nchallenge = \"digits\"\nepochs = 1\n",
    )
    .unwrap();
    let out = reproml(&["spec", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("custom:NAME"),
        "{}",
        text(&out.stderr)
    );
    let out = on_db(&["create", "--spec", bad.to_str().unwrap()]);
    assert!(!out.status.success());

    // Deleting says what it would delete, and does it only with --yes.
    let out = on_db(&["delete", "torch-113"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert!(text(&on_db(&["list"]).stdout).contains("torch-113"));
    let out = on_db(&["delete", "torch-113", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&on_db(&["list"]).stdout).contains("no experiments yet"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plan_finds_the_runs_a_study_needs_from_a_spread_or_pilot_runs() {
    let out = reproml(&["plan", "--a12", "0.75", "--sd", "0.01", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plan = &json["plan"];
    let runs = plan["runs"].as_f64().unwrap();
    let noether = plan["noether_runs"].as_f64().unwrap();
    // A12 0.75 at 0.05/4: Noether's normal approximation gives about 30.
    assert!((noether - 29.7).abs() < 0.5, "{noether}");
    assert!((runs / noether - 1.0).abs() < 0.2, "{runs} vs {noether}");
    assert!((plan["level"].as_f64().unwrap() - 0.0125).abs() < 1e-12);
    // Planning over more tests needs more runs.
    let wider = reproml(&[
        "plan", "--a12", "0.75", "--sd", "0.01", "--tests", "72", "--json",
    ]);
    let wider: serde_json::Value = serde_json::from_slice(&wider.stdout).unwrap();
    assert!(wider["plan"]["runs"].as_f64().unwrap() > runs);

    // Pilot runs from a CSV export: the fixture's 8 corrected runs of "shifted".
    let csv = repo_root().join("crates/reproml-report/tests/fixtures/runs.csv");
    let csv = csv.to_str().unwrap();
    let out = reproml(&[
        "plan",
        "--shift",
        "0.01",
        "--csv-in",
        csv,
        "--experiment",
        "shifted",
        "--variant",
        "corrected",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("8 pilot runs of shifted / corrected (accuracy)"),
        "{stdout}"
    );
    assert!(stdout.contains("runs per side for power 0.8"), "{stdout}");
    // A pilot that cannot give a spread is explained.
    let out = reproml(&[
        "plan",
        "--a12",
        "0.7",
        "--csv-in",
        csv,
        "--variant",
        "corrected",
    ]);
    assert!(text(&out.stderr).contains("name one with --experiment"));
    let out = reproml(&["plan", "--a12", "0.5", "--sd", "1"]);
    assert!(!out.status.success() && text(&out.stderr).contains("not 0.5"));
}

#[test]
fn compare_runs_selects_the_first_runs_of_every_side() {
    let csv = repo_root().join("crates/reproml-report/tests/fixtures/runs.csv");
    let out = reproml(&[
        "compare",
        "--csv-in",
        csv.to_str().unwrap(),
        "shifted",
        "--runs",
        "0..4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["comparisons"][0]["n"], 4);
    assert_eq!(json["comparisons"][0]["pairs"], 4);
    let out = reproml(&[
        "compare",
        "--csv-in",
        csv.to_str().unwrap(),
        "--runs",
        "4..2",
    ]);
    assert!(text(&out.stderr).contains("is not a run selection"));
    let out = reproml(&[
        "compare",
        "--csv-in",
        csv.to_str().unwrap(),
        "--margin",
        "-1",
    ]);
    assert!(text(&out.stderr).contains("must be a positive number"));
}

#[test]
fn a_busy_port_is_explained_once_and_leaves_no_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("reproml-busy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("new.db");
    let out = reproml(&["server", "--listen", &addr, "--db", db.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--listen"), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "the cause once: {err}");
    assert!(!db.exists(), "no database left behind");
    // A database in a folder that does not exist: said once, with a hint.
    let missing = dir.join("no/such/folder/x.db");
    let out = reproml(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--db",
        missing.to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("unable to open").count(), 1, "{err}");
    assert!(err.contains("does its folder exist"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The exit statuses `docs/cli.md` documents: 0 done, 1 failed, 2 usage,
/// 3 a difference with `--fail-on-difference` (130 after Ctrl-C is tested
/// with training in `train_cli.rs`).
#[test]
fn exit_statuses_tell_scripts_what_happened() {
    let csv = repo_root().join("crates/reproml-report/tests/fixtures/runs.csv");
    let csv = csv.to_str().unwrap();
    let gated = reproml(&["compare", "--csv-in", csv, "--fail-on-difference"]);
    assert_eq!(gated.status.code(), Some(3), "{}", text(&gated.stderr));
    assert!(
        text(&gated.stdout).contains("shifted: buggy (baseline) vs corrected"),
        "the comparison is printed before the gate"
    );
    let err = text(&gated.stderr);
    assert!(
        err.trim_end()
            .ends_with("difference detected in 1 comparison(s): shifted (buggy vs corrected)"),
        "{err}"
    );
    let json = reproml(&["compare", "--csv-in", csv, "--json", "--fail-on-difference"]);
    assert_eq!(json.status.code(), Some(3));
    serde_json::from_slice::<serde_json::Value>(&json.stdout).unwrap();
    // No difference among the compared experiments, or no gate: 0.
    let same = reproml(&[
        "compare",
        "--csv-in",
        csv,
        "identical",
        "--fail-on-difference",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert_eq!(
        reproml(&["compare", "--csv-in", csv]).status.code(),
        Some(0)
    );
    // Runtime failure: 1.
    let missing = reproml(&["compare", "--csv-in", "/no/such/runs.csv"]);
    assert_eq!(missing.status.code(), Some(1));
    // Usage: 2, from clap and from the missing server alike.
    assert_eq!(
        reproml(&["compare", "--no-such-flag"]).status.code(),
        Some(2)
    );
    let no_server = common::binary()
        .args(["run", "--experiment", "e", "--variant", "v"])
        .env_remove("REPROML_SERVER")
        .output()
        .unwrap();
    assert_eq!(no_server.status.code(), Some(2));
    let err = text(&no_server.stderr);
    for hint in ["--server URL", "REPROML_SERVER", "--embedded"] {
        assert!(err.contains(hint), "{hint}: {err}");
    }
}

/// `REPROML_SERVER` stands in for --server, and --embedded wins over it.
#[test]
fn the_server_comes_from_the_environment_unless_embedded_is_asked() {
    let dir = std::env::temp_dir().join(format!("reproml-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("e.db");
    let run = |args: &[&str]| {
        common::binary()
            .args(args)
            .env("REPROML_SERVER", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let remote = run(&["experiment", "list"]);
    assert_eq!(remote.status.code(), Some(1));
    assert!(
        text(&remote.stderr).contains("no ReproduceML server answers at http://127.0.0.1:9"),
        "{}",
        text(&remote.stderr)
    );
    let spec = repo_root().join("examples/digits-lenet5.toml");
    let local = run(&[
        "experiment",
        "create",
        "--embedded",
        "--db",
        db.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
    ]);
    assert!(local.status.success(), "{}", text(&local.stderr));
    // --db alone means that database, whatever REPROML_SERVER says.
    for args in [
        &["experiment", "list", "--db", db.to_str().unwrap()][..],
        &["compare", "--db", db.to_str().unwrap()],
    ] {
        let out = run(args);
        let err = text(&out.stderr);
        assert!(
            !err.contains("no ReproduceML server answers"),
            "{args:?}: {err}"
        );
    }
    let listed = run(&["experiment", "list", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        text(&listed.stdout).contains("digits-lenet5"),
        "{}",
        text(&listed.stderr)
    );
    // A token is for a server, not for a database file.
    let token = run(&["compare", "--db", db.to_str().unwrap(), "--token-file", "t"]);
    assert_eq!(token.status.code(), Some(2));
    let token = run(&["compare", "--token-file", "t"]);
    assert_eq!(
        token.status.code(),
        Some(1),
        "with REPROML_SERVER: no server answers"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn completions_and_man_pages_are_generated_for_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = reproml(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        for word in ["reproml", "study", "fail-on-difference", "csv-in"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let page = reproml(&["man"]);
    assert!(page.status.success());
    let page = text(&page.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH reproml"),
        "roff: {}",
        &page[..200]
    );
    assert!(page.contains("completions"));

    let dir = std::env::temp_dir().join(format!("reproml-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = reproml(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in [
        "reproml",
        "reproml-run",
        "reproml-study-run",
        "reproml-stats-wilcoxon",
    ] {
        let page = std::fs::read_to_string(dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(
            page.contains(&format!(".TH {name} 1")),
            "{name}: {}",
            &page[..120]
        );
    }
    let run = std::fs::read_to_string(dir.join("reproml-run.1")).unwrap();
    assert!(
        run.contains("\\-\\-embedded") && run.contains("Examples"),
        "{run}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `reproml … | head -1`: the reader stops, reproml ends quietly (status
/// 141, as a shell reports SIGPIPE) instead of a panic message.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let mut child = common::binary()
        .args([
            "seeds",
            "--experiment",
            "x",
            "--master-seed",
            "1",
            "--count",
            "10000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody reads
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        status.code() == Some(141) || status.success(),
        "{status:?}: {stderr}"
    );
}
