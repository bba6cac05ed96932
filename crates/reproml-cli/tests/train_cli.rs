//! `reproml run` and `reproml verify` end to end, against real servers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-train-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_spec(dir: &Path, model: &str, runs: u32) -> PathBuf {
    let path = dir.join("spec.toml");
    std::fs::write(
        &path,
        format!("id = \"e\"\nmodel = \"{model}\"\nchallenge = \"digits\"\nepochs = 2\nruns = {runs}\n[optimizer]\nlr = 0.05\n"),
    )
    .unwrap();
    path
}

fn reproml(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = common::binary();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `run → (seed, digest)` from `--json` output.
fn digests(out: &Output) -> BTreeMap<u64, (u64, String)> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            for key in ["accuracy", "precision", "recall", "f1"] {
                assert!(v[key].as_f64().is_some(), "{key} in {l}");
            }
            (
                v["run"].as_u64().unwrap(),
                (
                    v["seed"].as_u64().unwrap(),
                    v["digest"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

fn embedded_run(dir: &Path, variant: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let db = dir.join("r.db");
    let spec = dir.join("spec.toml");
    let mut args = vec![
        "run",
        "--embedded",
        "--db",
        db.to_str().unwrap(),
        "--master-seed",
        "5",
        "--experiment",
        "e",
        "--spec",
        spec.to_str().unwrap(),
        "--variant",
        variant,
        "--json",
    ];
    args.extend_from_slice(extra);
    reproml(&args, env)
}

#[test]
fn parallel_runs_and_thread_counts_change_nothing() {
    let dir = temp_dir("parallel");
    write_spec(&dir, "mlp", 4);
    let one = digests(&embedded_run(&dir, "jobs1", &["--jobs", "1"], &[]));
    let two = digests(&embedded_run(&dir, "jobs2", &["--jobs", "2"], &[]));
    assert_eq!(one.len(), 4);
    assert_eq!(one, two, "--jobs 2 is bit-identical to --jobs 1");
    let single = digests(&embedded_run(&dir, "threads1", &["--threads", "1"], &[]));
    let double = digests(&embedded_run(&dir, "threads2", &["--threads", "2"], &[]));
    assert_eq!(single, one);
    assert_eq!(double, one, "the thread count changes nothing");
    let distinct: std::collections::BTreeSet<_> = one.values().map(|(_, d)| d).collect();
    assert_eq!(
        distinct.len(),
        4,
        "per-run seeds give different trajectories"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn recorded_runs_are_skipped_on_resume() {
    let dir = temp_dir("resume");
    write_spec(&dir, "mlp", 3);
    assert_eq!(
        digests(&embedded_run(&dir, "v", &["--runs", "0-1"], &[])).len(),
        2
    );
    let out = embedded_run(&dir, "v", &[], &[]);
    let resumed = digests(&out);
    assert_eq!(
        resumed.keys().copied().collect::<Vec<_>>(),
        [2],
        "only the missing run is trained"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("e / v: 2 run(s) already recorded"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_model_that_cannot_take_the_input_says_so() {
    let dir = temp_dir("badmodel");
    write_spec(&dir, "vgg11", 1);
    let out = embedded_run(&dir, "v", &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vgg11 cannot take 1×8×8 inputs"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn end_to_end_against_a_server_process_with_verify() {
    let dir = temp_dir("e2e");
    let spec = write_spec(&dir, "lenet5", 2);
    let mut server = common::binary()
        .args(["server", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("server.db"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();

    let run = reproml(
        &[
            "run",
            "--server",
            &url,
            "--experiment",
            "e",
            "--spec",
            spec.to_str().unwrap(),
            "--variant",
            "buggy",
            "--json",
            "--fault",
            "momentum-ignored",
        ],
        &[],
    );
    let buggy = digests(&run);
    let clean = digests(&reproml(
        &[
            "run",
            "--server",
            &url,
            "--experiment",
            "e",
            "--variant",
            "corrected",
            "--json",
        ],
        &[],
    ));
    for run in [0, 1] {
        assert_eq!(
            buggy[&run].0, clean[&run].0,
            "run {run}: both variants share the seed"
        );
        assert_ne!(
            buggy[&run].1, clean[&run].1,
            "run {run}: the fault changes the trajectory"
        );
    }
    let verify = reproml(
        &[
            "verify",
            "--server",
            &url,
            "--experiment",
            "e",
            "--run",
            "1",
        ],
        &[],
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        text.contains("deterministic: 2 epochs × 10 tensors bit-identical"),
        "{text}"
    );
    assert!(
        text.contains(&clean[&1].1),
        "verify reproduces the recorded digest: {text}"
    );

    // The comparison from the server and from its CSV export agree.
    let from_server = reproml(&["compare", "--server", &url, "--json"], &[]);
    assert!(
        from_server.status.success(),
        "{}",
        String::from_utf8_lossy(&from_server.stderr)
    );
    let csv = reproml_client::Client::new(&url, None)
        .runs_csv(&"e".parse().unwrap())
        .unwrap();
    let csv_path = dir.join("runs.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let from_csv = reproml(
        &["compare", "--csv-in", csv_path.to_str().unwrap(), "--json"],
        &[],
    );
    assert!(
        from_csv.status.success(),
        "{}",
        String::from_utf8_lossy(&from_csv.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&from_server.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&from_csv.stdout).unwrap();
    assert_eq!(
        a["comparisons"][0]["metrics"],
        b["comparisons"][0]["metrics"]
    );
    assert_eq!(a["comparisons"][0]["baseline"], "buggy");
    assert_eq!(a["comparisons"][0]["identical_pairs"], 0);
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn off_a_terminal_each_run_is_a_line_and_ctrl_c_says_how_far_it_got() {
    let dir = temp_dir("lines");
    let spec = dir.join("spec.toml");
    // Long enough a run (about a second) to interrupt between two runs.
    std::fs::write(
        &spec,
        "id = \"e\"\nmodel = \"lenet5\"\nchallenge = \"digits\"\nepochs = 20\nruns = 5\n[optimizer]\nlr = 0.05\n",
    )
    .unwrap();
    let quiet = embedded_run(&dir, "v", &["--runs", "0", "--quiet"], &[]);
    assert!(quiet.status.success());
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "", "--quiet");
    assert_eq!(digests(&quiet).len(), 1, "--quiet keeps the results");

    let db = dir.join("r.db");
    let mut child = common::binary()
        .args(["run", "--embedded", "--db", db.to_str().unwrap()])
        .args(["--experiment", "e", "--variant", "v"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("recorded (1/4)") {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l == "e / v: 1 run(s) already recorded; skipping them"),
        "{seen:?}"
    );
    let run_line = seen.last().unwrap();
    assert!(
        run_line.starts_with("e / v: run 1 recorded (1/4): seed ")
            && run_line.contains(", accuracy 0.")
            && run_line.ends_with(" s"),
        "one plain line per run with its seed, metric and time: {run_line}"
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let last = rest.last().unwrap();
    let recorded: usize = last
        .strip_prefix("interrupted: ")
        .and_then(|l| l.strip_suffix("/5 runs recorded; run the same command again to resume"))
        .unwrap_or_else(|| panic!("the interruption line: {last:?}"))
        .parse()
        .unwrap();
    assert!(
        (2..5).contains(&recorded),
        "the run before the signal and the one from --quiet at least: {recorded}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
