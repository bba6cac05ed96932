//! The report on a small fixture: rows, † marks, verdicts, files, images.
#![allow(clippy::unwrap_used)]

use reproml_report::{
    CompareOptions, RunSummary, Verdict, compare, to_csv, to_markdown, verdict_lines, write_report,
};

/// The runs of `fixtures/runs.csv`, read as `compare --csv` reads an export.
fn fixture() -> Vec<RunSummary> {
    let text = include_str!("fixtures/runs.csv");
    reproml_api::runs_csv::read(text.as_bytes(), "fixtures/runs.csv").unwrap()
}

#[test]
fn verdicts_daggers_and_equal_size_truncation() {
    let rows = fixture();
    let report = compare(&rows, &CompareOptions::default()).unwrap();
    let by = |id: &str| {
        report
            .experiments
            .iter()
            .find(|e| e.experiment == id)
            .unwrap()
    };
    assert_eq!(by("shifted").verdict, Verdict::Detected);
    assert_eq!(by("identical").verdict, Verdict::NotTriggered);
    assert_eq!(by("identical").identical_pairs, 8);
    let short = by("short");
    assert!(short.incomplete, "8 buggy runs but 6 corrected: †");
    assert_eq!(short.n, 6, "truncated to the smaller variant");
    assert_eq!(short.recorded, (8, 6));
    assert!(!by("shifted").incomplete);
    let all = compare(
        &rows,
        &CompareOptions {
            all_runs: true,
            ..CompareOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        all.experiments
            .iter()
            .find(|e| e.experiment == "short")
            .unwrap()
            .metrics[0]
            .baseline
            .n,
        8
    );

    let markdown = to_markdown(&report);
    assert_eq!(
        markdown.lines().filter(|l| l.starts_with("| ")).count(),
        1 + 3 * 4,
        "header + 4 metrics × 3 experiments"
    );
    assert!(
        markdown.contains("| short † (buggy vs corrected) | accuracy | 6 |"),
        "{markdown}"
    );
    assert!(markdown.contains("† fewer runs than planned"));
    let lines = verdict_lines(&report);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("identical: not triggered — identical trajectories")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("shifted: difference detected")),
        "{lines:?}"
    );
    assert_eq!(to_csv(&report).lines().count(), 1 + 12);
}

#[test]
fn adjusted_p_values_dominate_as_they_should() {
    let report = compare(&fixture(), &CompareOptions::default()).unwrap();
    for e in &report.experiments {
        for m in &e.metrics {
            let (raw, h, b) = (m.mwu_p.unwrap(), m.holm_p.unwrap(), m.bh_p.unwrap());
            assert!(
                h >= b && b >= raw,
                "{}/{}: holm {h} bh {b} raw {raw}",
                e.experiment,
                m.metric
            );
        }
    }
}

#[test]
fn the_report_folder_has_every_file_and_valid_images() {
    let rows = fixture();
    let report = compare(&rows, &CompareOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("reproml-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let provenance =
        reproml_report::Provenance::new("reproml test", "2026-11-27T00:00:00Z", &rows, &[]);
    let page = write_report(&dir, &report, &rows, "Fixture", &provenance).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("not triggered — identical trajectories") && html.contains("<table>"));
    assert!(html.contains("<h2>Provenance</h2>") && html.contains("Made by reproml test"));
    for name in [
        "report.md",
        "report.csv",
        "report.json",
        "provenance.json",
        "index.html",
    ] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    for stem in ["shifted", "identical", "short", "dispersion"] {
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        assert!(png.len() > 5_000, "{stem}.png has content");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg is an SVG"
        );
        assert!(svg.contains("accuracy") || stem == "dispersion");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["experiments"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Rows of one experiment: `values` per side, digests all different.
fn rows(experiment: &str, policy: &str, buggy: &[f64], corrected: &[f64]) -> Vec<RunSummary> {
    let mut text = String::from(
        "experiment,variant,run,seed,seed_policy,accuracy,precision,recall,f1,final_digest,artifact,recorded_at\n",
    );
    for (variant, values, salt) in [("buggy", buggy, 0), ("corrected", corrected, 500)] {
        for (run, v) in values.iter().enumerate() {
            let seed = if policy == "fixed" { 7 } else { 1000 + run };
            text.push_str(&format!(
                "{experiment},{variant},{run},{seed},{policy},{v},{v},{v},{v},{:064x},x,2026-11-27T00:00:00Z\n",
                run + salt
            ));
        }
    }
    reproml_api::runs_csv::read(text.as_bytes(), "test").unwrap()
}

#[test]
fn too_few_runs_are_underpowered_not_no_evidence() {
    // Three runs a side that do not overlap: the smallest two-sided exact
    // p is 2/C(6,3) = 0.1, so no correction can bring it under 0.05.
    let few = rows("few", "per-run", &[0.1, 0.2, 0.3], &[0.7, 0.8, 0.9]);
    let report = compare(&few, &CompareOptions::default()).unwrap();
    let e = &report.experiments[0];
    assert_eq!(e.verdict, Verdict::Underpowered);
    // Four metrics tested: Holm multiplies the smallest p by 4.
    assert!(
        (e.best_possible_holm_p.unwrap() - 0.4).abs() < 1e-12,
        "{e:?}"
    );
    assert!(verdict_lines(&report)[0].contains("underpowered"));
    // The same separation with eight runs a side is detected.
    let b: Vec<f64> = (0..8).map(|i| 0.1 + f64::from(i) * 0.01).collect();
    let c: Vec<f64> = b.iter().map(|v| v + 0.5).collect();
    let enough = compare(
        &rows("enough", "per-run", &b, &c),
        &CompareOptions::default(),
    )
    .unwrap();
    assert_eq!(enough.experiments[0].verdict, Verdict::Detected);
    // Overlapping samples of that size are "no evidence": a difference
    // could have been found, and was not.
    let c: Vec<f64> = b.iter().rev().copied().collect();
    let same = compare(&rows("same", "per-run", &b, &c), &CompareOptions::default()).unwrap();
    assert_eq!(same.experiments[0].verdict, Verdict::NoEvidence);
}

#[test]
fn fixed_seed_experiments_are_not_tested_and_leave_the_family_alone() {
    let mut all = rows("fixed", "fixed", &[0.5; 5], &[0.9; 5]);
    let b: Vec<f64> = (0..8).map(|i| 0.1 + f64::from(i) * 0.01).collect();
    let c: Vec<f64> = b.iter().map(|v| v + 0.5).collect();
    all.extend(rows("tested", "per-run", &b, &c));
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let fixed = &report.experiments[0];
    assert_eq!(fixed.verdict, Verdict::FixedSeeds);
    assert!(
        fixed
            .metrics
            .iter()
            .all(|m| m.mwu_p.is_none() && m.holm_p.is_none())
    );
    assert!(verdict_lines(&report)[0].contains("effective n = 1"));
    // The per-run experiment's Holm correction counts only its own 4 tests.
    let tested = &report.experiments[1];
    let m = &tested.metrics[0];
    assert!((m.holm_p.unwrap() - (4.0 * m.mwu_p.unwrap()).min(1.0)).abs() < 1e-15);
}

#[test]
fn runtime_differences_between_variants_are_listed_as_possible_confounds() {
    let b: Vec<f64> = (0..8).map(|i| 0.1 + f64::from(i) * 0.01).collect();
    let c: Vec<f64> = b.iter().map(|v| v + 0.5).collect();
    let mut all = rows("torch", "per-run", &b, &c);
    for r in &mut all {
        let threads = if r.variant.as_str() == "buggy" {
            "1"
        } else {
            "2"
        };
        r.fingerprint = format!(
            r#"{{"threads":"{threads}","cpu":"same","fault":"{}","torch":"1.13"}}"#,
            r.variant
        );
    }
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let e = &report.experiments[0];
    // The thread count differs; the fault names the artifact itself and
    // the CPU and torch are the same on both sides.
    assert_eq!(
        e.fingerprint_differences.len(),
        1,
        "{:?}",
        e.fingerprint_differences
    );
    let d = &e.fingerprint_differences[0];
    assert_eq!(
        (d.key.as_str(), &d.baseline[..], &d.treatment[..]),
        ("threads", &["1".to_string()][..], &["2".to_string()][..])
    );
    let line = &verdict_lines(&report)[0];
    assert!(
        line.contains("possible confound): threads 1 vs 2"),
        "{line}"
    );
    // Runs without a recorded fingerprint (an old export) list nothing.
    let plain = compare(&rows("old", "per-run", &b, &c), &CompareOptions::default()).unwrap();
    assert!(plain.experiments[0].fingerprint_differences.is_empty());
}

#[test]
fn provenance_names_each_variant_s_artifact_and_shared_runtime() {
    let b: Vec<f64> = (0..4).map(|i| 0.5 + f64::from(i) * 0.01).collect();
    let mut all = rows("prov", "per-run", &b, &b);
    for (k, r) in all.iter_mut().enumerate() {
        r.artifact = format!("engine-{}", r.variant);
        r.fingerprint = format!(r#"{{"threads":"1","host":"h{k}"}}"#);
    }
    let spec = reproml_core::ExperimentSpec::new(
        "prov".parse().unwrap(),
        "mlp".parse().unwrap(),
        "digits".parse().unwrap(),
        3,
    );
    let p = reproml_report::Provenance::new("reproml x", "2026-11-27T00:00:00Z", &all, &[spec]);
    let e = &p.experiments[0];
    assert_eq!(e.spec.as_ref().map(|s| s.epochs), Some(3));
    let buggy = &e.variants[0];
    assert_eq!((buggy.variant.as_str(), buggy.runs), ("buggy", 4));
    assert_eq!(buggy.artifacts, ["engine-buggy"]);
    assert_eq!(buggy.shared.get("threads").map(String::as_str), Some("1"));
    assert_eq!(buggy.varying, ["host"]);
    let md = p.to_markdown();
    assert!(
        md.contains("epochs = 3") && md.contains("artifact engine-corrected"),
        "{md}"
    );
}

#[test]
fn a_repeat_of_the_same_build_is_a_bit_identical_control_not_a_bug_verdict() {
    let v: Vec<f64> = (0..6).map(|i| 0.5 + f64::from(i) * 0.01).collect();
    let with = |fault_of_treatment: &str| {
        let mut all = rows("repeat", "per-run", &v, &v);
        for r in &mut all {
            // Same final digests for run i on both sides.
            r.final_digest = format!("{:064x}", r.run.get());
            let fault = if r.variant.as_str() == "buggy" {
                "none"
            } else {
                fault_of_treatment
            };
            r.fingerprint = format!(r#"{{"fault":"{fault}","source":"s1","threads":"1"}}"#);
        }
        compare(&all, &CompareOptions::default())
            .unwrap()
            .experiments[0]
            .verdict
    };
    assert_eq!(with("none"), Verdict::BitIdentical);
    // Another fault that never changes training: a bug not triggered.
    assert_eq!(with("unused-op"), Verdict::NotTriggered);
}
