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
    let page = write_report(&dir, &report, &rows, "Fixture").unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("not triggered — identical trajectories") && html.contains("<table>"));
    for name in ["report.md", "report.csv", "report.json", "index.html"] {
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
