//! `reproml study`: a study killed midway and resumed ends with exactly N
//! runs per variant, none trained twice.
#![allow(clippy::unwrap_used)]
// The child is killed and waited for inside the polling loop.
#![allow(clippy::zombie_processes)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

fn status(study: &std::path::Path, db: &std::path::Path) -> String {
    let out = common::binary()
        .args(["study", "status"])
        .arg(study)
        .args(["--embedded", "--db"])
        .arg(db)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Recorded runs per line of `study status`, e.g. "corrected 3/6   buggy 0/6".
fn recorded(status: &str) -> usize {
    status
        .split_whitespace()
        .filter_map(|w| w.split_once('/').and_then(|(a, _)| a.parse::<usize>().ok()))
        .sum()
}

#[test]
fn an_interrupted_study_resumes_without_retraining() {
    let dir = std::env::temp_dir().join(format!("reproml-study-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let study = dir.join("study.toml");
    std::fs::write(
        &study,
        "name = \"t\"\nruns = 6\n[base]\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = 4\n\
         [[bug]]\nid = \"a\"\nbuggy = { kind = \"builtin\", fault = \"momentum-ignored\" }\ncorrected = { kind = \"builtin\" }\n\
         [[bug]]\nid = \"b\"\nbuggy = { kind = \"builtin\", fault = \"tanh-offset\" }\ncorrected = { kind = \"builtin\" }\n",
    )
    .unwrap();
    let db = dir.join("study.db");
    let run = || {
        let mut cmd = common::binary();
        cmd.args(["study", "run"])
            .arg(&study)
            .args(["--embedded", "--db"])
            .arg(&db)
            .args(["--jobs", "1", "--out"])
            .arg(dir.join("report"));
        cmd
    };
    let mut first = run()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some, but not all, runs are recorded.
    let started = Instant::now();
    let before = loop {
        std::thread::sleep(Duration::from_millis(150));
        let n = recorded(&status(&study, &db));
        if n >= 3 || started.elapsed() > Duration::from_secs(60) {
            first.kill().unwrap();
            first.wait().unwrap();
            break recorded(&status(&study, &db));
        }
    };
    assert!(
        (3..24).contains(&before),
        "interrupted midway ({before} of 24 runs recorded)"
    );

    let resumed = run().output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    let skipped: usize = stderr
        .lines()
        .filter_map(|l| {
            l.split_once(" run(s) already recorded")
                .and_then(|(head, _)| head.rsplit_once(": "))
                .and_then(|(_, n)| n.parse::<usize>().ok())
        })
        .sum();
    assert_eq!(
        skipped, before,
        "every run recorded before the kill was skipped, not retrained: {stderr}"
    );
    let after = status(&study, &db);
    assert_eq!(
        after.matches("6/6").count(),
        4,
        "exactly N runs per variant: {after}"
    );
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        stdout.contains("t-a: buggy (baseline) vs corrected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- t-b (buggy vs corrected): not triggered — identical trajectories"),
        "{stdout}"
    );
    assert!(dir.join("report/index.html").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_three_sided_study_with_a_command_artifact_compares_each_side_with_the_reference() {
    let dir = std::env::temp_dir().join(format!("reproml-study-cmd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let study = dir.join("study.toml");
    // The "other client" here is reproml itself, run as a command: the
    // same engine as the reference, so every pair of runs is identical.
    let client = format!(
        "{} run --server {{server}} --experiment {{experiment}} --variant {{variant}} --jobs 1",
        env!("CARGO_BIN_EXE_reproml")
    );
    std::fs::write(
        &study,
        format!(
            "name = \"c\"\nruns = 3\nsides = [\"engine\", \"client\", \"no-momentum\"]\n\
             [base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 2\n\
             [[bug]]\nid = \"x\"\n[bug.sides]\nengine = {{ kind = \"builtin\" }}\n\
             client = {{ kind = \"command\", command = \"{client}\" }}\n\
             no-momentum = {{ kind = \"builtin\", fault = \"momentum-ignored\" }}\n"
        ),
    )
    .unwrap();
    let db = dir.join("study.db");
    let out = common::binary()
        .args(["study", "run"])
        .arg(&study)
        .args(["--embedded", "--db"])
        .arg(&db)
        .args(["--jobs", "1", "--out"])
        .arg(dir.join("report"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The log names each side and its artifact.
    assert!(
        stderr.contains("c-x / client: trained by command `"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "c-x / no-momentum: trained by the built-in engine with fault momentum-ignored"
        ),
        "{stderr}"
    );
    let after = status(&study, &db);
    assert!(
        after.contains("engine 3/3")
            && after.contains("client 3/3")
            && after.contains("no-momentum 3/3"),
        "{after}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("c-x: engine (baseline) vs client, n = 3, 3/3 identical trajectories"),
        "{stdout}"
    );
    assert!(
        stdout.contains("c-x: engine (baseline) vs no-momentum, n = 3, 0/3 identical trajectories"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap())
            .unwrap();
    assert_eq!(json["comparisons"].as_array().unwrap().len(), 2);
    // The identical side is decided by its digests: only the other
    // comparison's 4 metrics are tested.
    assert_eq!(json["tests"], 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_side_without_runs_is_named_and_the_others_are_still_compared() {
    let dir = std::env::temp_dir().join(format!("reproml-study-gap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let study = dir.join("study.toml");
    std::fs::write(
        &study,
        "name = \"g\"\nruns = 3\nretries = 0\nsides = [\"engine\", \"broken\", \"no-momentum\"]\n\
         [base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\n\
         [[bug]]\nid = \"x\"\n[bug.sides]\nengine = { kind = \"builtin\" }\n\
         broken = { kind = \"command\", command = \"false\" }\n\
         no-momentum = { kind = \"builtin\", fault = \"momentum-ignored\" }\n",
    )
    .unwrap();
    let out = common::binary()
        .args(["study", "run"])
        .arg(&study)
        .args(["--embedded", "--db"])
        .arg(dir.join("study.db"))
        .args(["--jobs", "1", "--out"])
        .arg(dir.join("report"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the broken side's runs are unfinished"
    );
    assert!(
        stderr.contains("not compared for want of runs: g-x has no runs of broken"),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap())
            .unwrap();
    let pairs: Vec<(&str, &str)> = json["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["baseline"].as_str().unwrap(),
                c["treatment"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(pairs, [("engine", "no-momentum")]);
    // The command died without reporting: the study reported it for the
    // dashboard and `study status`.
    let out = common::binary()
        .args(["study", "status"])
        .arg(&study)
        .arg("--db")
        .arg(dir.join("study.db"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("broken: 1 run(s) failing; run 0 at ")
            && stdout.contains("the side's command exited with exit status: 1"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
