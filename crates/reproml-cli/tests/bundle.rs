//! `reproml bundle` with a data set that is not built in: carried with
//! `--with-data`, it lets `verify --retrain` train runs again on another
//! machine; without it, those runs are named as not re-trainable.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::process::Output;

fn reproml(args: &[&str]) -> Output {
    common::binary().args(args).output().unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bundle_carries_a_registered_data_set_and_retrains_on_it() {
    let dir = std::env::temp_dir().join(format!("reproml-bundle-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    // 400 digits as a data set of its own, registered under another name.
    let gz = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../reproml-data/data/digits.csv.gz"
    ))
    .unwrap();
    let mut csv = String::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_string(&mut csv)
        .unwrap();
    let head: String = csv.lines().take(400).map(|l| format!("{l}\n")).collect();
    std::fs::write(path("few.csv"), head).unwrap();
    let db = path("d.db");
    ok(&reproml(&[
        "data",
        "import",
        "few",
        "--format",
        "digits-csv",
        &path("few.csv"),
        "--db",
        &db,
    ]));
    std::fs::write(
        path("spec.toml"),
        "id = \"few\"\nmodel = \"mlp\"\nchallenge = \"few\"\nepochs = 2\nruns = 3\n",
    )
    .unwrap();
    ok(&reproml(&[
        "run",
        "--db",
        &db,
        "--experiment",
        "few",
        "--spec",
        &path("spec.toml"),
        "--variant",
        "a",
        "-q",
    ]));
    ok(&reproml(&[
        "run",
        "--db",
        &db,
        "--experiment",
        "few",
        "--variant",
        "b",
        "--fault",
        "momentum-ignored",
        "-q",
    ]));
    ok(&reproml(&[
        "bundle",
        "export",
        "--db",
        &db,
        "--experiment",
        "few",
        "--with-data",
        &path("with.tar.zst"),
    ]));
    ok(&reproml(&[
        "bundle",
        "export",
        "--db",
        &db,
        "--experiment",
        "few",
        &path("without.tar.zst"),
    ]));
    // Elsewhere: the data set's file is gone.
    std::fs::remove_file(path("few.csv")).unwrap();

    let out = reproml(&[
        "bundle",
        "verify",
        &path("with.tar.zst"),
        "--retrain",
        "2",
        "--json",
    ]);
    ok(&out);
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let retrained = outcome["retrained"].as_array().unwrap();
    assert_eq!(retrained.len(), 2, "{outcome}");
    assert!(
        retrained.iter().all(|r| r["identical"] == true),
        "{outcome}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("data sets (few) match their recorded digests")
    );

    let out = reproml(&[
        "bundle",
        "verify",
        &path("without.tar.zst"),
        "--retrain",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not re-trained: few / ")
            && err.contains("2 runs asked for, 0 could be re-trained"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
