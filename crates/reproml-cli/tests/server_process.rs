//! `reproml server` as a process: durability under `kill -9`, refusing to
//! listen beyond loopback without a token, graceful shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use reproml_client::Client;
use reproml_core::run::{RunResult, sample_result};
use reproml_core::{ExperimentSpec, RunIndex, VariantLabel};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-proc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `reproml server` on a free port; returns the child and its URL.
fn start_server(db: &Path) -> (Child, String) {
    start_server_with(db, &[])
}

/// Like [`start_server`], with more arguments.
fn start_server_with(db: &Path, more: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = common::binary()
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--master-seed",
            "7",
            "--db",
        ])
        .arg(db)
        .args(more)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url)
}

#[test]
fn every_acknowledged_result_survives_kill_9() {
    let dir = temp_dir("kill9");
    let db = dir.join("reproml.db");
    let (mut server, url) = start_server(&db);
    let client = Client::new(&url, None);
    let spec = ExperimentSpec::from_toml(
        "id = \"durable\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 10000\n",
        "test",
    )
    .unwrap();
    let experiment = client.create_experiment(&spec).unwrap().0;
    let seeds = Arc::new(experiment.seeds);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8u32)
        .map(|w| {
            let (url, seeds, acknowledged, stop) = (
                url.clone(),
                seeds.clone(),
                acknowledged.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let client = Client::new(&url, None).with_retries(0);
                let variant: VariantLabel = format!("writer{w}").parse().unwrap();
                let mut run = 0u32;
                while !stop.load(Ordering::Relaxed) && run < 1250 {
                    let r = sample_result(seeds[run as usize], f64::from(run % 100) / 100.0, 1);
                    let index = RunIndex::new(run);
                    match client.post_result(&"durable".parse().unwrap(), &variant, index, &r) {
                        Ok(_) => acknowledged
                            .lock()
                            .unwrap()
                            .push((variant.clone(), index, r)),
                        Err(_) => break, // the server is gone
                    }
                    run += 8;
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    server.kill().unwrap(); // SIGKILL: no chance to flush anything
    server.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 8,
        "the writers got going ({} results)",
        acknowledged.len()
    );

    let (mut server, url) = start_server(&db);
    let client = Client::new(&url, None);
    let stored = client.runs(&"durable".parse().unwrap(), None).unwrap();
    let by_key: BTreeMap<(String, RunIndex), RunResult> = stored
        .into_iter()
        .map(|r| ((r.variant.to_string(), r.run), r.result))
        .collect();
    for (variant, run, r) in &acknowledged {
        assert_eq!(
            by_key.get(&(variant.to_string(), *run)),
            Some(r),
            "acknowledged {variant}/{run} was lost"
        );
    }
    // At most one write per writer was in flight unacknowledged.
    assert!(by_key.len() <= acknowledged.len() + 8);
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn listening_beyond_loopback_needs_a_token() {
    let dir = temp_dir("public");
    let out = common::binary()
        .args(["server", "--listen", "0.0.0.0:0", "--db"])
        .arg(dir.join("r.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );

    std::fs::write(dir.join("token"), "short\n").unwrap();
    let out = common::binary()
        .args(["server", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(dir.join("token"))
        .arg("--db")
        .arg(dir.join("r.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"));

    // A token is not enough: it would cross the network in the clear.
    std::fs::write(dir.join("token"), "0123456789abcdef0123\n").unwrap();
    let out = common::binary()
        .args(["server", "--listen", "0.0.0.0:0", "--token-file"])
        .arg(dir.join("token"))
        .arg("--db")
        .arg(dir.join("r.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("over plain HTTP") && err.contains("--tls-cert"),
        "{err}"
    );
    assert!(!dir.join("r.db").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `reproml server --tls-cert --tls-key` and a client given the private CA
/// (`--ca-cert`, or `REPROML_CA_CERT`): a run trained over HTTPS; without
/// the CA the client refuses the server and says what to give.
#[test]
fn runs_are_trained_over_https_with_a_private_ca() {
    let dir = temp_dir("tls");
    let (ca, files) = reproml_server::tls_testing::private_ca(&dir);
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let (mut server, url) = start_server_with(
        &dir.join("r.db"),
        &[
            "--token-file".as_ref(),
            token.as_ref(),
            "--tls-cert".as_ref(),
            files.cert.as_ref(),
            "--tls-key".as_ref(),
            files.key.as_ref(),
        ],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let spec = dir.join("spec.toml");
    std::fs::write(
        &spec,
        "id = \"tls\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 1\n",
    )
    .unwrap();
    let reproml = |args: &[&std::ffi::OsStr], ca_env: Option<&Path>| {
        let mut cmd = common::binary();
        cmd.args(args)
            .env("REPROML_SERVER", &url)
            .env("REPROML_TOKEN_FILE", &token)
            .env_remove("REPROML_CA_CERT");
        if let Some(ca) = ca_env {
            cmd.env("REPROML_CA_CERT", ca);
        }
        cmd.output().unwrap()
    };
    let run = reproml(
        &[
            "run".as_ref(),
            "--experiment".as_ref(),
            "tls".as_ref(),
            "--spec".as_ref(),
            spec.as_ref(),
            "--variant".as_ref(),
            "v".as_ref(),
            "--ca-cert".as_ref(),
            ca.as_ref(),
            "-q".as_ref(),
        ],
        None,
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let listed = reproml(
        &[
            "experiment".as_ref(),
            "runs".as_ref(),
            "tls".as_ref(),
            "--json".as_ref(),
        ],
        Some(&ca),
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    let refused = reproml(&["experiment".as_ref(), "list".as_ref()], None);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("TLS") && err.contains("--ca-cert"), "{err}");
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = temp_dir("sigterm");
    let (mut server, url) = start_server(&dir.join("r.db"));
    assert!(Client::new(&url, None).health().is_ok());
    let sent = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `REPROML_SERVER` and `REPROML_TOKEN_FILE` stand in for --server and
/// --token-file, so scripts on a cluster set them once.
#[test]
fn the_server_and_its_token_come_from_the_environment() {
    let dir = temp_dir("env");
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let (mut server, url) = start_server_with(
        &dir.join("r.db"),
        &["--token-file".as_ref(), token.as_ref()],
    );
    let list = |token_file: Option<&Path>| {
        let mut cmd = common::binary();
        cmd.args(["experiment", "list", "--json"])
            .env("REPROML_SERVER", &url)
            .env_remove("REPROML_TOKEN_FILE");
        if let Some(t) = token_file {
            cmd.env("REPROML_TOKEN_FILE", t);
        }
        cmd.output().unwrap()
    };
    let with = list(Some(&token));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with.stdout).trim(), "[]");
    let without = list(None);
    assert_eq!(without.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `study manifests --kubernetes`: an Indexed Job per side with missing
/// runs, a completion index per run; a side done already gets none.
#[test]
fn kubernetes_manifests_cover_exactly_the_missing_runs() {
    let dir = temp_dir("k8s");
    let (mut server, url) = start_server(&dir.join("r.db"));
    let study = dir.join("study.toml");
    std::fs::write(
        &study,
        "name = \"k\"\nruns = 3\n[base]\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\n\
         [[bug]]\nid = \"b1\"\nbuggy = { kind = \"builtin\", fault = \"momentum-ignored\" }\n\
         corrected = { kind = \"builtin\" }\n",
    )
    .unwrap();
    let reproml = |args: &[&str]| common::binary().args(args).output().unwrap();
    let out = dir.join("k8s");
    let args = [
        "study",
        "manifests",
        study.to_str().unwrap(),
        "--kubernetes",
        "--server",
        &url,
        "--image",
        "reproml:test",
        "--out",
        out.to_str().unwrap(),
    ];
    let first = reproml(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["reproml-k-b1-buggy.json", "reproml-k-b1-corrected.json"]
    );
    let job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reproml-k-b1-buggy.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            job["spec"]["completionMode"].as_str(),
            job["spec"]["completions"].as_u64()
        ),
        (Some("Indexed"), Some(3))
    );
    // With the corrected side trained, only the buggy side is left.
    let trained = reproml(&[
        "run",
        "--server",
        &url,
        "--experiment",
        "k-b1",
        "--variant",
        "corrected",
        "-q",
    ]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    std::fs::remove_dir_all(&out).unwrap();
    let again = reproml(&args);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(names.len(), 1);
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
