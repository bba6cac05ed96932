//! Bundles written, read back and checked: a faithful one verifies and is
//! byte-reproducible; a changed byte, a changed record or a report that
//! does not follow from the runs is refused, naming the file.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::PathBuf;

use reproml_api::{Experiment, RecordedRun};
use reproml_bundle::{Bundle, BundleError, Description, ExperimentRecord, ReportSettings};
use reproml_core::run::sample_result;
use reproml_core::{ExperimentSpec, RunIndex, Seed};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-bundle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One experiment, two variants of 6 runs that differ in accuracy.
fn records() -> Vec<ExperimentRecord> {
    let spec = ExperimentSpec::from_toml(
        "id = \"b-1\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 2\nruns = 6\n",
        "test",
    )
    .unwrap();
    let seeds: Vec<Seed> = (0..6).map(|i| Seed::new(1000 + i)).collect();
    let experiment = Experiment {
        spec,
        seeds: seeds.clone(),
        created_at: "2026-11-27T00:00:00Z".into(),
    };
    let mut runs = Vec::new();
    for (variant, base) in [("buggy", 0.80), ("corrected", 0.90)] {
        for (i, seed) in seeds.iter().enumerate() {
            let mut result = sample_result(*seed, base + 0.004 * i as f64, 2);
            result.artifact.name = format!("build-{variant}");
            runs.push(RecordedRun {
                experiment: experiment.spec.id.clone(),
                variant: variant.parse().unwrap(),
                run: RunIndex::new(i as u32),
                recorded_at: "2026-11-27T00:01:00Z".into(),
                result,
            });
        }
    }
    vec![ExperimentRecord {
        experiment,
        runs,
        failures: Vec::new(),
    }]
}

fn description() -> Description {
    Description {
        tool: "reproml test".into(),
        created_at: "2026-11-27T00:02:00Z".into(),
        source: "test".into(),
        experiments: vec!["b-1".into()],
        settings: ReportSettings::default(),
        study_files: vec!["study/study.toml".into()],
    }
}

fn assembled() -> Bundle {
    reproml_bundle::assemble(
        &description(),
        &records(),
        &serde_json::json!({"builtin": ["digits"]}),
        vec![("study/study.toml".into(), b"name = \"b\"\n".to_vec())],
    )
    .unwrap()
}

/// The archive's tar bytes, and a way to pack changed ones again.
fn unpack(path: &PathBuf) -> Vec<u8> {
    let mut tar = Vec::new();
    zstd::Decoder::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    tar
}

fn pack(path: &PathBuf, tar: &[u8]) {
    std::fs::write(path, zstd::encode_all(tar, 3).unwrap()).unwrap();
}

#[test]
fn a_faithful_bundle_verifies_and_is_byte_reproducible() {
    let dir = temp("faithful");
    let (a, b) = (dir.join("a.tar.zst"), dir.join("b.tar.zst"));
    assembled().write(&a).unwrap();
    assembled().write(&b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let read = Bundle::read(&a).unwrap();
    assert_eq!(read, assembled());
    let (verified, records) = reproml_bundle::verify(&read).unwrap();
    assert_eq!(
        (verified.experiments, verified.runs, verified.comparisons),
        (1, 12, 1)
    );
    assert_eq!(records, self::records());
    assert!(read.paths().any(|p| p == "report/report.md"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_changed_byte_in_a_file_is_named() {
    let dir = temp("byte");
    let path = dir.join("b.tar.zst");
    assembled().write(&path).unwrap();
    let mut tar = unpack(&path);
    // A seed inside runs.json, changed by one digit: still valid JSON.
    let at = tar
        .windows(12)
        .position(|w| w == b"\"seed\": 1003")
        .unwrap();
    tar[at + 11] = b'4';
    pack(&path, &tar);
    let err = Bundle::read(&path).unwrap_err();
    assert!(matches!(err, BundleError::Tampered(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("experiments/b-1/runs.json: SHA-256") && message.contains("changed"),
        "{message}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_changed_byte_of_the_compressed_archive_names_the_file_it_held() {
    let dir = temp("compressed");
    let path = dir.join("b.tar.zst");
    assembled().write(&path).unwrap();
    let original = std::fs::read(&path).unwrap();
    // Every file is a frame of its own: find runs.json's, by the frames'
    // sizes, and damage it at its start, middle and checksum.
    let (frames, whole) = reproml_bundle::frames(&original);
    assert!(whole);
    let read = Bundle::read(&path).unwrap();
    let files: Vec<&str> = read.paths().collect();
    assert_eq!(
        frames.len(),
        files.len() + 1,
        "the manifest, then one frame per file"
    );
    let index = files
        .iter()
        .position(|f| *f == "experiments/b-1/runs.json")
        .unwrap()
        + 1;
    let frame = frames[index].clone();
    for byte in [
        frame.start + 8,
        (frame.start + frame.end) / 2,
        frame.end - 2,
    ] {
        let mut bytes = original.clone();
        bytes[byte] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let err = Bundle::read(&path).unwrap_err();
        let message = err.to_string();
        let named = match err {
            BundleError::Damaged { .. } => message.contains(&format!(
                "in experiments/b-1/runs.json (compressed frame {index})"
            )),
            // Decoded, but to other bytes: the manifest names it.
            BundleError::Tampered(_) => message.contains("experiments/b-1/runs.json: SHA-256"),
            _ => false,
        };
        assert!(named, "byte {byte}: {message}");
    }
    // The manifest's own frame.
    let mut bytes = original.clone();
    bytes[frames[0].end - 2] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let message = Bundle::read(&path).unwrap_err().to_string();
    assert!(
        message.contains("in manifest.json (compressed frame 0)"),
        "{message}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_added_or_missing_is_named() {
    let dir = temp("added");
    let path = dir.join("b.tar.zst");
    assembled().write(&path).unwrap();
    let tar = unpack(&path);
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "datasets.json" {
            continue; // dropped
        }
        let mut header = entry.header().clone();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.append_data(&mut header, &name, bytes.as_slice())
            .unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    out.append_data(&mut header, "extra.json", &b"{}"[..])
        .unwrap();
    pack(&path, &out.into_inner().unwrap());
    let message = Bundle::read(&path).unwrap_err().to_string();
    assert!(
        message.contains("datasets.json: listed in the manifest, missing")
            && message.contains("extra.json: not in the manifest"),
        "{message}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn records_that_contradict_each_other_or_the_report_are_named() {
    // A report that does not follow from the runs (written with its own
    // manifest: only re-deriving it catches this).
    let mut bundle = assembled();
    let mut report: serde_json::Value = bundle.json("report/report.json").unwrap();
    report["comparisons"][0]["metrics"][0]["mwu_p"] = serde_json::json!(0.5);
    bundle.insert_json("report/report.json", &report).unwrap();
    let message = reproml_bundle::verify(&bundle).unwrap_err().to_string();
    assert!(
        message.contains("report/report.json differs")
            && message.contains(".comparisons[0].metrics[0].mwu_p: recorded 0.5"),
        "{message}"
    );

    // A run with another run's seed, and a variant with two artifacts.
    let mut records = records();
    records[0].runs[1].result.seed = Seed::new(1000);
    records[0].runs[2].result.artifact.name = "another-build".into();
    let bundle =
        reproml_bundle::assemble(&description(), &records, &serde_json::json!({}), Vec::new())
            .unwrap();
    let message = reproml_bundle::verify(&bundle).unwrap_err().to_string();
    assert!(
        message.contains("experiments/b-1/runs.json: buggy run 1: seed 1000, but the experiment gives this run 1001")
            && message.contains("buggy run 2: artifact another-build, but the variant's other runs are of build-buggy"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_a_bundle_is_named_as_such() {
    let dir = temp("not");
    let path = dir.join("x.tar.zst");
    std::fs::write(&path, zstd::encode_all(&b"hello"[..], 3).unwrap()).unwrap();
    assert!(Bundle::read(&path).is_err());
    let mut empty = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    empty
        .append_data(&mut header, "a.json", &b"{}"[..])
        .unwrap();
    pack(&path, &empty.into_inner().unwrap());
    let err = Bundle::read(&path).unwrap_err();
    assert!(matches!(err, BundleError::NoManifest(_)), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_header_claiming_a_huge_file_is_refused_without_reserving_it() {
    let dir = temp("huge");
    let path = dir.join("x.tar.zst");
    // A 1 KiB archive whose only header claims a terabyte.
    let mut header = tar::Header::new_gnu();
    header.set_path("report/report.json").unwrap();
    header.set_size(1 << 40);
    header.set_mode(0o644);
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    tar.extend_from_slice(&[b'{'; 512]);
    pack(&path, &tar);
    let err = Bundle::read(&path).unwrap_err();
    assert!(matches!(err, BundleError::Damaged { .. }), "{err}");
    assert!(
        err.to_string().contains("more than the archive holds"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
