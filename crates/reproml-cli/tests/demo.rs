//! `reproml demo` and `reproml compare` as a new user runs them.
#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn the_demo_reports_its_three_verdicts_and_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("reproml-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = common::binary()
        .args(["demo", "--count", "8", "--epochs", "6", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("- demo-real-fault (buggy vs corrected): difference detected"),
        "{stdout}"
    );
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line}"
        );
    }
    assert!(
        stdout.contains(
            "- demo-unused-op (buggy vs corrected): not triggered — identical trajectories"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("- demo-repeat (first vs repeat): control: bit-identical"),
        "{stdout}"
    );
    assert!(
        stdout.contains("determinism proven: 8/8 repeated runs are bit-identical"),
        "{stdout}"
    );
    let page = dir.join("report/index.html");
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("difference detected") && html.contains("demo-repeat.svg"));

    // Running it again resumes: nothing is retrained, the answer is the same.
    let again = common::binary()
        .args(["demo", "--count", "8", "--epochs", "6", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("demo-real-fault / corrected: 8 run(s) already recorded"),
        "{stderr}"
    );
    let table = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with('|'))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        table(&String::from_utf8_lossy(&again.stdout)),
        table(&stdout)
    );

    // The comparison as CSV, straight from the demo's database.
    let db = dir.join("reproml.db");
    let export = common::binary()
        .args(["compare", "--embedded", "--db"])
        .arg(&db)
        .args(["demo-unused-op", "--csv-out"])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(String::from_utf8_lossy(&export.stdout).contains("not-triggered"));

    replication_package_of_the_demo(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The demo's database as a replication package: it verifies, three runs
/// re-train bit for bit, one changed byte is named, and it imports.
fn replication_package_of_the_demo(dir: &std::path::Path) {
    let reproml = |args: &[&str]| common::binary().args(args).output().unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (db, bundle) = (path("reproml.db"), path("demo.tar.zst"));
    let mut export: Vec<&str> = vec!["bundle", "export", "--db", &db];
    for e in ["demo-real-fault", "demo-unused-op", "demo-repeat"] {
        export.extend(["--experiment", e]);
    }
    export.push(&bundle);
    let out = reproml(&export);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = reproml(&["bundle", "verify", &bundle, "--retrain", "3", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (outcome["experiments"].as_u64(), outcome["runs"].as_u64()),
        (Some(3), Some(48)),
        "{outcome}"
    );
    let retrained = outcome["retrained"].as_array().unwrap();
    assert_eq!(retrained.len(), 3, "{outcome}");
    assert!(
        retrained
            .iter()
            .all(|r| r["identical"] == true && r["epochs"] == 6),
        "{outcome}"
    );

    // One byte of the archive changed, inside the frame holding
    // demo-repeat's runs (the manifest first, then the files by name).
    let original = std::fs::read(&bundle).unwrap();
    let (frames, whole) = reproml_bundle::frames(&original);
    assert!(whole);
    // The files in name order, as the archive holds them after the manifest.
    let mut files = vec!["bundle.json".to_owned(), "datasets.json".to_owned()];
    for e in ["demo-real-fault", "demo-repeat", "demo-unused-op"] {
        for f in ["experiment", "failures", "runs"] {
            files.push(format!("experiments/{e}/{f}.json"));
        }
    }
    files.extend([
        "report/report.json".to_owned(),
        "report/report.md".to_owned(),
    ]);
    assert_eq!(
        frames.len(),
        1 + files.len(),
        "the manifest, then a frame per file"
    );
    let runs = 1 + files
        .iter()
        .position(|f| f == "experiments/demo-repeat/runs.json")
        .unwrap();
    let mut damaged = original.clone();
    damaged[(frames[runs].start + frames[runs].end) / 2] ^= 0x01;
    let tampered = path("tampered.tar.zst");
    std::fs::write(&tampered, &damaged).unwrap();
    let out = reproml(&["bundle", "verify", &tampered]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("experiments/demo-repeat/runs.json"), "{err}");

    let browse = path("browse.db");
    // Twice: the second import changes nothing.
    for _ in 0..2 {
        let out = reproml(&["bundle", "import", &bundle, "--db", &browse]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = reproml(&[
        "experiment",
        "runs",
        "demo-repeat",
        "--db",
        &browse,
        "--json",
    ]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(16), "{runs}");
    let out = reproml(&["bundle", "import", &bundle, "--db", &browse]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = reproml(&["compare", "--db", &browse, "demo-real-fault", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["comparisons"][0]["verdict"], "detected", "{report}");
}
