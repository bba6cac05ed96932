//! `reproml demo` and `reproml compare` as a new user runs them.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_demo_reports_its_three_verdicts_and_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("reproml-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_reproml"))
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
    let again = Command::new(env!("CARGO_BIN_EXE_reproml"))
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
    let export = Command::new(env!("CARGO_BIN_EXE_reproml"))
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
    std::fs::remove_dir_all(&dir).unwrap();
}
