//! The release-note parsers on fixtures of each format.
#![allow(clippy::unwrap_used)]

use reproml_study::{CorpusError, NotesFormat, parse_release_notes};

#[test]
fn github_release_bodies_with_context_headings_wrapped_bullets_and_several_prs() {
    let text = include_str!("../../../examples/release-notes/pytorch-1.5.1.md");
    assert_eq!(NotesFormat::detect(text), NotesFormat::GithubRelease);
    let bugs = parse_release_notes(
        text,
        "notes.md",
        "pytorch",
        Some("v1.5.1"),
        NotesFormat::GithubRelease,
    )
    .unwrap();
    assert_eq!(bugs.len(), 4, "{bugs:#?}");
    assert!(
        bugs.iter()
            .all(|b| b.release == "v1.5.1" && b.section == "Bug Fixes" && b.framework == "pytorch")
    );
    assert_eq!(bugs[0].context, "torch.nn");
    assert_eq!(bugs[0].prs, [36832]);
    assert_eq!(bugs[0].source, "notes.md:9");
    assert!(
        bugs[0]
            .description
            .starts_with("`nn.Conv2d`: fixed wrong gradient")
    );
    assert_eq!(bugs[1].prs, [35129]);
    assert_eq!(bugs[1].issues, [33683]);
    assert!(
        bugs[1]
            .description
            .contains("border, see https://github.com"),
        "wrapped lines joined: {}",
        bugs[1].description
    );
    assert_eq!(bugs[1].raw.lines().count(), 2);
    assert_eq!(bugs[2].context, "Autograd");
    assert_eq!(bugs[2].prs, [36001, 36002]);
    assert!(
        bugs[3].prs.is_empty() && bugs[3].links.is_empty(),
        "a bullet without a number"
    );
}

#[test]
fn release_md_with_many_releases_and_nested_component_bullets() {
    let text = include_str!("../../../examples/release-notes/tensorflow-RELEASE.md");
    assert_eq!(NotesFormat::detect(text), NotesFormat::ReleaseMd);
    let bugs = parse_release_notes(
        text,
        "RELEASE.md",
        "tensorflow",
        None,
        NotesFormat::ReleaseMd,
    )
    .unwrap();
    let summary: Vec<(&str, &str)> = bugs
        .iter()
        .map(|b| (b.release.as_str(), b.context.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("2.3.0", "`tf.data`"),
            ("2.3.0", "`tf.data`"),
            ("2.3.0", "`tf.keras`"),
            ("2.2.0", "")
        ]
    );
    assert_eq!(bugs[0].prs, [12345]);
    assert!(
        bugs[0]
            .description
            .contains("the seed was ignored when `reshuffle_each_iteration` was set ([#12345]")
    );
    assert_eq!(bugs[2].prs, [222]);
    assert_eq!(bugs[0].section, "Bug Fixes and Other Changes");
}

#[test]
fn keep_a_changelog_fixed_sections() {
    let text = include_str!("../../../examples/release-notes/CHANGELOG.md");
    assert_eq!(NotesFormat::detect(text), NotesFormat::KeepAChangelog);
    let bugs = parse_release_notes(
        text,
        "CHANGELOG.md",
        "mylib",
        None,
        NotesFormat::KeepAChangelog,
    )
    .unwrap();
    let releases: Vec<&str> = bugs.iter().map(|b| b.release.as_str()).collect();
    assert_eq!(releases, ["Unreleased", "0.3.0", "0.3.0"]);
    assert_eq!(bugs[1].prs, [12]);
    assert_eq!(bugs[2].issues, [7]);
    assert!(bugs.iter().all(|b| b.section == "Fixed"));
}

#[test]
fn malformed_notes_are_reported_with_file_and_line() {
    let err = parse_release_notes(
        "# Notes\n\n* a feature\n",
        "x.md",
        "f",
        Some("1"),
        NotesFormat::GithubRelease,
    )
    .unwrap_err();
    assert_eq!(
        err,
        CorpusError::NoBugSection {
            origin: "x.md".into()
        }
    );
    let err = parse_release_notes(
        "## Bug Fixes\n\n* fine (#1)\n* broken [#2](https://example.org/pull/2\n",
        "y.md",
        "f",
        Some("1"),
        NotesFormat::GithubRelease,
    )
    .unwrap_err();
    assert!(
        matches!(err, CorpusError::UnterminatedLink { line: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("y.md:4: unterminated link"));
    let err = parse_release_notes(
        "## Bug Fixes\n* x\n",
        "z.md",
        "f",
        None,
        NotesFormat::GithubRelease,
    )
    .unwrap_err();
    assert_eq!(
        err,
        CorpusError::NoRelease {
            origin: "z.md".into()
        }
    );
}

mod never_panics {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn on_any_text(text in "(#{0,3} ?(Bug Fixes|Fixed|Release 1\\.0|\\[1\\.0\\])?\n|[*-] [a-z#(\\[\\]0-9/:.]{0,20}\n| {0,6}[a-z]{0,5}\n){0,20}") {
            for format in [super::NotesFormat::GithubRelease, super::NotesFormat::ReleaseMd, super::NotesFormat::KeepAChangelog] {
                let _ = super::parse_release_notes(&text, "p", "f", Some("1"), format);
            }
        }
    }
}

/// A corpus written as JSON or CSV reads back as the same records, so
/// every command that takes a corpus takes either.
#[test]
fn a_corpus_reads_back_from_json_and_csv_alike() {
    use reproml_study::files::{parse_corpus, write_corpus};
    let mut bugs = parse_release_notes(
        include_str!("../../../examples/release-notes/tensorflow-RELEASE.md"),
        "RELEASE.md",
        "tensorflow",
        None,
        NotesFormat::ReleaseMd,
    )
    .unwrap();
    bugs.extend(
        parse_release_notes(
            include_str!("../../../examples/release-notes/pytorch-1.5.1.md"),
            "notes.md",
            "pytorch",
            Some("v1.5.1"),
            NotesFormat::GithubRelease,
        )
        .unwrap(),
    );
    reproml_study::number_corpus(&mut bugs);
    let dir = std::env::temp_dir().join(format!("reproml-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["c.json", "c.csv"] {
        let path = dir.join(name);
        write_corpus(&path, &bugs).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(parse_corpus(&text, name).unwrap(), bugs, "{name}");
    }
    let err = parse_corpus("id,what\nB0001,x\n", "other.csv").unwrap_err();
    assert!(
        err.to_string().contains("the columns must be id,framework"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
