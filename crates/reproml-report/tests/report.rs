//! The report on a small fixture: rows, † marks, verdicts, files, images.
#![allow(clippy::unwrap_used)]

use reproml_report::{
    CompareOptions, RunSummary, Verdict, compare, to_csv, to_markdown, verdict_lines, write_report,
};

/// The runs of `fixtures/runs.csv`, read as `compare --csv-in` reads an export.
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
            .comparisons
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
        all.comparisons
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
        markdown.contains("| short † | buggy vs corrected | accuracy | 6 |"),
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
    // "identical" is decided by its digests: no test, nothing to adjust.
    let identical = report
        .comparisons
        .iter()
        .find(|c| c.experiment == "identical")
        .unwrap();
    assert!(identical.metrics.iter().all(|m| m.mwu_p.is_none()));
    assert_eq!(report.tests, 8);
    for e in report
        .comparisons
        .iter()
        .filter(|c| c.experiment != "identical")
    {
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
        let svg_size = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        // The PNG is for print: twice the SVG's pixel size.
        let png_width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let svg_width: u32 = svg_size
            .split("width=\"")
            .nth(1)
            .and_then(|w| w.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap();
        assert_eq!(png_width, 2 * svg_width, "{stem}");
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        assert!(png.len() > 5_000, "{stem}.png has content");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg is an SVG"
        );
        assert!(svg.contains("accuracy") || stem == "dispersion");
        let pdf = std::fs::read(dir.join(format!("{stem}.pdf"))).unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "{stem}.pdf is a PDF");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["experiments"].as_array().unwrap().len(), 3);
    assert_eq!(json["comparisons"].as_array().unwrap().len(), 3);
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
fn too_few_runs_are_underpowered_not_inconclusive() {
    // Three runs a side that do not overlap: the smallest two-sided exact
    // p is 2/C(6,3) = 0.1; with every value of a side tied the normal
    // approximation applies and gives 0.0468 — times Holm's 4, neither
    // can come under 0.05.
    let few = rows("few", "per-run", &[0.1, 0.2, 0.3], &[0.7, 0.8, 0.9]);
    let report = compare(&few, &CompareOptions::default()).unwrap();
    let e = &report.comparisons[0];
    assert_eq!(e.verdict, Verdict::Underpowered);
    let tied = reproml_stats::mann_whitney_u(
        &[0.0; 3],
        &[1.0; 3],
        &reproml_stats::MannWhitneyOptions::default(),
    )
    .unwrap()
    .pvalue;
    assert!((tied - 0.0468).abs() < 1e-4, "{tied}");
    assert!(
        (e.best_possible_holm_p.unwrap() - 4.0 * tied).abs() < 1e-12,
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
    assert_eq!(enough.comparisons[0].verdict, Verdict::Detected);
    // Overlapping samples of that size, spread over 7 points, are
    // inconclusive: a difference could have been found and was not, and
    // the shift's interval reaches beyond the default ±0.01.
    let c: Vec<f64> = b.iter().rev().copied().collect();
    let same = compare(&rows("same", "per-run", &b, &c), &CompareOptions::default()).unwrap();
    assert_eq!(same.comparisons[0].verdict, Verdict::Inconclusive);
}

#[test]
fn fixed_seed_experiments_are_not_tested_and_leave_the_family_alone() {
    let mut all = rows("fixed", "fixed", &[0.5; 5], &[0.9; 5]);
    let b: Vec<f64> = (0..8).map(|i| 0.1 + f64::from(i) * 0.01).collect();
    let c: Vec<f64> = b.iter().map(|v| v + 0.5).collect();
    all.extend(rows("tested", "per-run", &b, &c));
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let fixed = &report.comparisons[0];
    assert_eq!(fixed.verdict, Verdict::FixedSeeds);
    assert!(
        fixed
            .metrics
            .iter()
            .all(|m| m.mwu_p.is_none() && m.holm_p.is_none())
    );
    assert!(verdict_lines(&report)[0].contains("effective n = 1"));
    // The per-run experiment's Holm correction counts only its own 4 tests.
    let tested = &report.comparisons[1];
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
    let e = &report.comparisons[0];
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
    assert!(plain.comparisons[0].fingerprint_differences.is_empty());
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
            .comparisons[0]
            .verdict
    };
    assert_eq!(with("none"), Verdict::BitIdentical);
    // Another fault that never changes training: a bug not triggered.
    assert_eq!(with("unused-op"), Verdict::NotTriggered);
}

#[test]
fn equal_trajectories_on_a_non_repeatable_engine_prove_nothing() {
    let v: Vec<f64> = (0..6).map(|i| 0.5 + f64::from(i) * 0.0001).collect();
    let report = |gpu_side: Option<&str>| {
        let mut all = rows("gpu", "per-run", &v, &v);
        for r in &mut all {
            r.final_digest = format!("{:064x}", r.run.get());
            let on_gpu = gpu_side.is_some_and(|side| side == r.variant.as_str());
            let deterministic = if on_gpu { "false" } else { "true" };
            r.fingerprint =
                format!(r#"{{"fault":"none","source":"s1","deterministic":"{deterministic}"}}"#);
        }
        compare(&all, &CompareOptions::default()).unwrap()
    };
    assert_eq!(report(None).comparisons[0].verdict, Verdict::BitIdentical);
    assert!(!report(None).comparisons[0].nondeterministic);
    // One side on a GPU is enough: neither a control nor "not triggered";
    // the metrics are tested, and equal ones are equivalent.
    for side in ["buggy", "corrected"] {
        let r = report(Some(side));
        let c = &r.comparisons[0];
        assert!(c.nondeterministic, "{side}");
        assert_eq!(c.verdict, Verdict::Equivalent, "{side}");
        assert!(c.metrics.iter().all(|m| m.mwu_p.is_some()), "{side}");
        assert!(to_markdown(&r).contains("6/6 identical ‡"));
        assert!(to_markdown(&r).contains("‡ runs trained on an engine that is not bit-repeatable"));
        assert!(verdict_lines(&r)[0].contains("equal trajectories prove nothing"));
    }
    // The JSON of a report without such runs keeps its old shape, so
    // bundles made before the field existed still re-derive bit for bit.
    let json = serde_json::to_string(&report(None)).unwrap();
    assert!(!json.contains("nondeterministic"));
}

/// Rows of one experiment with any number of sides, digests all different.
fn sides(experiment: &str, sides: &[(&str, &[f64])]) -> Vec<RunSummary> {
    let mut text = String::from(
        "experiment,variant,run,seed,seed_policy,accuracy,precision,recall,f1,final_digest,artifact,recorded_at\n",
    );
    for (k, (variant, values)) in sides.iter().enumerate() {
        for (run, v) in values.iter().enumerate() {
            text.push_str(&format!(
                "{experiment},{variant},{run},{},per-run,{v},{v},{v},{v},{:064x},{variant}-build,2026-11-27T00:00:00Z\n",
                1000 + run,
                run + 1000 * k
            ));
        }
    }
    reproml_api::runs_csv::read(text.as_bytes(), "test").unwrap()
}

fn spread(centre: f64, step: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| centre + step * (i as f64 - n as f64 / 2.0))
        .collect()
}

#[test]
fn three_sides_compare_each_with_the_reference_or_every_pair() {
    let old = spread(0.90, 0.002, 10);
    let new = spread(0.95, 0.002, 10);
    let same = spread(0.90, 0.002, 10);
    let all = sides(
        "release",
        &[("torch-1.13", &old), ("torch-2.15", &new), ("burn", &same)],
    );
    // More than two variants need naming.
    let err = compare(&all, &CompareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--variants"), "{err}");
    let named = CompareOptions {
        variants: vec!["torch-1.13".into(), "torch-2.15".into(), "burn".into()],
        ..CompareOptions::default()
    };
    let report = compare(&all, &named).unwrap();
    let pairs: Vec<(&str, &str)> = report
        .comparisons
        .iter()
        .map(|c| (c.baseline.as_str(), c.treatment.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("torch-1.13", "torch-2.15"), ("torch-1.13", "burn")]
    );
    assert_eq!(report.tests, 8, "Holm across both comparisons' 4 metrics");
    assert_eq!(report.side_names(), ["torch-1.13", "torch-2.15", "burn"]);
    assert_eq!(report.comparisons[0].verdict, Verdict::Detected);
    // burn equals the reference run for run: the shift is exactly 0.
    assert_eq!(report.comparisons[1].verdict, Verdict::Equivalent);
    let m = &report.comparisons[0].metrics[0];
    assert!((m.holm_p.unwrap() - (8.0 * m.mwu_p.unwrap()).min(1.0)).abs() < 1e-12);

    let every = compare(
        &all,
        &CompareOptions {
            all_pairs: true,
            ..named.clone()
        },
    )
    .unwrap();
    assert_eq!(every.comparisons.len(), 3);
    assert_eq!(every.tests, 12);
    assert_eq!(
        (
            every.comparisons[2].baseline.as_str(),
            every.comparisons[2].treatment.as_str()
        ),
        ("torch-2.15", "burn")
    );
    // A missing or repeated variant is explained.
    for bad in [vec!["torch-1.13", "torch-3"], vec!["burn", "burn"]] {
        let opts = CompareOptions {
            variants: bad.iter().map(|s| s.to_string()).collect(),
            ..CompareOptions::default()
        };
        assert!(compare(&all, &opts).is_err(), "{bad:?}");
    }

    // The report folder draws the three sides, with curves only when the
    // runs carry epochs (a CSV export does not).
    let dir = std::env::temp_dir().join(format!("reproml-3way-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let provenance = reproml_report::Provenance::new("t", "2026-11-27T00:00:00Z", &all, &[]);
    write_report(&dir, &report, &all, "Three", &provenance).unwrap();
    let svg = std::fs::read_to_string(dir.join("release.svg")).unwrap();
    for side in [
        "torch-1.13 (n = 10)",
        "torch-2.15 (n = 10)",
        "burn (n = 10)",
    ] {
        assert!(svg.contains(side), "{side} on the axis");
    }
    // The legend names each side in its colour (Okabe-Ito, by report order).
    for colour in ["#D55E00", "#0072B2", "#009E73"] {
        assert!(svg.to_uppercase().contains(colour), "{colour}");
    }
    assert!(!dir.join("release-curves.svg").exists());
    let mut with_epochs = all.clone();
    for r in &mut with_epochs {
        r.curve = (1..=3)
            .map(|e| reproml_api::runs_csv::CurvePoint {
                loss: 1.0 / f64::from(e),
                accuracy: r.accuracy * f64::from(e) / 3.0,
            })
            .collect();
    }
    write_report(&dir, &report, &with_epochs, "Three", &provenance).unwrap();
    let curves = std::fs::read_to_string(dir.join("release-curves.svg")).unwrap();
    assert!(curves.contains("training loss") && curves.contains("epoch"));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("release-curves.svg"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn equivalence_needs_every_interval_inside_the_margin() {
    // Two sides 0.001 apart that do not overlap: a real difference, but
    // one inside the margin, and the summary says so.
    let a = spread(0.970, 0.00002, 20);
    let b = spread(0.971, 0.00002, 20);
    let all = sides("tiny", &[("buggy", &a), ("corrected", &b)]);
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let c = &report.comparisons[0];
    assert_eq!(
        c.verdict,
        Verdict::Detected,
        "0.001 apart, 20 runs: detected"
    );
    // Detection wins over equivalence; a margin makes the practical call
    // visible in the interval.
    let s = c.metrics[0].shift.unwrap();
    assert!((s.estimate - 0.001).abs() < 1e-9, "{s:?}");
    assert!(s.lower > 0.0 && s.upper < 0.01, "{s:?}");
    assert!(
        verdict_lines(&report)[0].contains("negligible"),
        "{:?}",
        verdict_lines(&report)
    );

    let overlapping_a = spread(0.970, 0.0005, 20);
    let overlapping_b: Vec<f64> = overlapping_a.iter().rev().map(|v| v + 0.0001).collect();
    let all = sides(
        "close",
        &[("buggy", &overlapping_a), ("corrected", &overlapping_b)],
    );
    let report = compare(&all, &CompareOptions::default()).unwrap();
    assert_eq!(report.comparisons[0].verdict, Verdict::Equivalent);
    assert!((report.equivalence_confidence - 0.9).abs() < 1e-12);
    let strict = compare(
        &all,
        &CompareOptions {
            margin: Some(0.0005),
            ..CompareOptions::default()
        },
    )
    .unwrap();
    assert_eq!(strict.comparisons[0].verdict, Verdict::Inconclusive);
    let lines = verdict_lines(&report);
    assert!(
        lines[0].contains("equivalent") && lines[0].contains("±0.01"),
        "{lines:?}"
    );

    // Two runs a side cannot give a 90% interval at all (the widest one
    // the U distribution allows covers 2/3): never equivalent, however
    // close. Three a side can, just: [min, max] of the differences is a
    // 90% interval.
    let few = sides(
        "few",
        &[("buggy", &[0.5, 0.5001]), ("corrected", &[0.5, 0.5001])],
    );
    let report = compare(&few, &CompareOptions::default()).unwrap();
    assert_eq!(report.comparisons[0].verdict, Verdict::Underpowered);
}

#[test]
fn the_terminal_summary_fits_100_columns_and_formats_p_one_way() {
    // 120 characters without a space: wrapping must cut it.
    let long = format!("a-rather-long-experiment-name-{}", "x".repeat(90));
    let long = long.as_str();
    let mut all = sides(
        long,
        &[
            ("torch-1.13.1-debian-build", &spread(0.95, 0.001, 12)),
            ("torch-2.15.0-cpu-from-pypi", &spread(0.9, 0.001, 12)),
        ],
    );
    for r in &mut all {
        r.fingerprint = format!(
            r#"{{"threads":"{}","numpy":"{}","python":"3.11.2 (main, some long build string, gcc 12)"}}"#,
            r.run.get() % 3,
            r.variant
        );
    }
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let text = reproml_report::to_terminal(&report);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(text.contains("possible confounds"), "{text}");
    assert!(text.contains("<0.001"), "{text}");
    // A classic 80-column terminal: the same summary without Cliff's δ.
    let narrow = reproml_report::to_terminal_width(&report, 80);
    for line in narrow.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(text.contains("Cliff's δ  ") && !narrow.contains("Cliff's δ  "));
    // The same verdicts, however the lines break.
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    for c in &report.comparisons {
        let verdict = format!(
            "({} vs {}): {}",
            c.baseline,
            c.treatment,
            c.verdict.describe()
        );
        assert!(
            words(&text).contains(&verdict) && words(&narrow).contains(&verdict),
            "{verdict}"
        );
    }
    let scientific = |t: &str| {
        t.as_bytes()
            .windows(4)
            .any(|w| w[0].is_ascii_digit() && &w[1..3] == b"e-" && w[3].is_ascii_digit())
    };
    assert!(!scientific(&text), "no scientific p-values: {text}");
    // The files keep the exact value.
    let exact = report.comparisons[0].metrics[0].mwu_p.unwrap();
    assert!(exact < 1e-3 && to_csv(&report).contains(&exact.to_string()));
}

#[test]
fn verdict_names_match_the_json() {
    for v in [
        Verdict::NotTriggered,
        Verdict::BitIdentical,
        Verdict::Detected,
        Verdict::Equivalent,
        Verdict::Underpowered,
        Verdict::Inconclusive,
        Verdict::FixedSeeds,
    ] {
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
    }
}

#[test]
fn a_metric_constant_on_both_sides_is_equivalent_not_inconclusive() {
    let all = sides("flat", &[("buggy", &[1.0; 10]), ("corrected", &[1.0; 10])]);
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let c = &report.comparisons[0];
    let s = c.metrics[0].shift.unwrap();
    assert_eq!((s.lower, s.estimate, s.upper), (0.0, 0.0, 0.0));
    assert_eq!(c.verdict, Verdict::Equivalent);
}

#[test]
fn sides_whose_spreads_differ_are_never_equivalent() {
    // The same median, but one side spreads four times as far: a shift does
    // not describe that, whatever its interval.
    let narrow = spread(0.97, 0.0002, 20);
    let wide = spread(0.97, 0.0008, 20);
    let all = sides("shape", &[("buggy", &narrow), ("corrected", &wide)]);
    let report = compare(&all, &CompareOptions::default()).unwrap();
    let c = &report.comparisons[0];
    assert!(c.within_margin(report.margin, report.equivalence_confidence));
    assert_eq!(c.unequal_spreads().len(), 4);
    assert_ne!(c.verdict, Verdict::Equivalent);
    let line = &verdict_lines(&report)[0];
    assert!(line.contains("the spreads differ (accuracy sd"), "{line}");
}

#[test]
fn duplicate_runs_and_selections_are_handled() {
    let one = sides(
        "dup",
        &[
            ("buggy", &spread(0.9, 0.01, 6)),
            ("corrected", &spread(0.9, 0.01, 6)),
        ],
    );
    let mut twice = one.clone();
    twice.extend(one.iter().cloned());
    let err = compare(&twice, &CompareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("appears more than once"), "{err}");

    let first = compare(
        &one,
        &CompareOptions {
            selection: Some("0..4".parse().unwrap()),
            ..CompareOptions::default()
        },
    )
    .unwrap();
    assert_eq!(first.comparisons[0].n, 4);
    assert_eq!(
        first.selection.as_ref().map(ToString::to_string).as_deref(),
        Some("0-3")
    );
    assert!(reproml_report::legend(&first).contains("Only runs 0-3 of each side"));
    let bad = CompareOptions {
        alpha: Some(0.5),
        ..CompareOptions::default()
    };
    assert!(compare(&one, &bad).is_err());
}

#[test]
fn all_runs_shows_both_sizes() {
    let all = sides(
        "uneven",
        &[
            ("buggy", &spread(0.9, 0.01, 6)),
            ("corrected", &spread(0.9, 0.01, 8)),
        ],
    );
    let report = compare(
        &all,
        &CompareOptions {
            all_runs: true,
            ..CompareOptions::default()
        },
    )
    .unwrap();
    assert!(reproml_report::to_terminal(&report).contains("n = 6 vs 8"));
    let truncated = compare(&all, &CompareOptions::default()).unwrap();
    assert!(reproml_report::to_terminal(&truncated).contains("n = 6,"));
}

/// A side without runs has no values to set an axis by: the figure is
/// drawn with an empty axis instead of never finishing (plotters' ticks
/// over f64::MAX..f64::MIN), which once held a server's worker forever.
#[test]
fn a_figure_of_sides_without_runs_is_drawn_not_stuck() {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let svg = reproml_report::experiment_svg(&[], &["a", "b"], &["a", "b"]);
        let _ = sender.send(svg.map(|s| s.starts_with("<svg")).unwrap_or(false));
    });
    assert_eq!(
        receiver.recv_timeout(std::time::Duration::from_secs(60)),
        Ok(true)
    );
}
