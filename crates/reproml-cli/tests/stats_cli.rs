//! `reproml stats` as a user runs it.
#![allow(clippy::unwrap_used)] // a test that cannot set up should panic loudly

mod common;

use std::process::Output;

fn reproml(args: &[&str]) -> Output {
    common::binary().args(args).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn mannwhitneyu_json_matches_scipy() {
    // scipy.stats.mannwhitneyu([19, 22, 16, 29, 24], [20, 11, 17, 12]) -> U 17, p 0.1111111111111111
    let v = json(&reproml(&[
        "stats",
        "mannwhitneyu",
        "--x",
        "19,22,16,29,24",
        "--y",
        "20,11,17,12",
        "--json",
    ]));
    assert_eq!(v["statistic"], 17.0);
    assert!((v["pvalue"].as_f64().unwrap() - 0.1111111111111111).abs() < 1e-15);
    assert_eq!(v["method"], "exact");
}

#[test]
fn wilcoxon_reads_files_and_negative_numbers() {
    let dir = std::env::temp_dir().join(format!("reproml-stats-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = dir.join("x.txt");
    let y = dir.join("y.txt");
    std::fs::write(&x, "# accuracies, buggy\n0.91\n0.93\n\n-0.5\n0.97\n").unwrap();
    std::fs::write(&y, "0.90\n0.90\n0.5\n0.90\n").unwrap();
    let from_files = json(&reproml(&[
        "stats",
        "wilcoxon",
        "--x-file",
        x.to_str().unwrap(),
        "--y-file",
        y.to_str().unwrap(),
        "--json",
    ]));
    let inline = json(&reproml(&[
        "stats",
        "wilcoxon",
        "--x",
        "0.91,0.93,-0.5,0.97",
        "--y",
        "0.90,0.90,0.5,0.90",
        "--json",
    ]));
    assert_eq!(from_files, inline);
    // d = 0.01, 0.03, -1.0, 0.07: R+ = 1 + 2 + 3 = 6, R- = 4; exact two-sided p = 0.875 (SciPy).
    assert_eq!(inline["statistic"], 4.0);
    assert_eq!(inline["pvalue"], 0.875);

    std::fs::write(&x, "0.9\nzero point nine\n").unwrap();
    let out = reproml(&[
        "stats",
        "wilcoxon",
        "--x-file",
        x.to_str().unwrap(),
        "--y",
        "1,2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("x.txt:2: \"zero point nine\" is not a number"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_samples_get_clear_errors() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["stats", "mannwhitneyu", "--x", "1,nan", "--y", "2"],
            "sample x has a non-finite value (NaN) at position 1",
        ),
        (
            &["stats", "wilcoxon", "--x", "1,2,3", "--y", "1,2"],
            "paired samples must have the same length, got 3 and 2",
        ),
        (
            &[
                "stats",
                "mannwhitneyu",
                "--x",
                "1,1,1",
                "--y",
                "1,1",
                "--no-continuity",
            ],
            "undefined",
        ),
    ];
    for (args, message) in cases {
        let out = reproml(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
    let out = reproml(&[
        "stats",
        "mannwhitneyu",
        "--x",
        "1",
        "--y",
        "2",
        "--alternative",
        "bigger",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use two-sided, less or greater"));
}
