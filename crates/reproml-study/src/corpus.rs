//! Data collection: release notes → the corpus B_a of bug fixes.
//!
//! Three formats, read line by line (no Markdown library: what matters here
//! is the heading structure, the bullets and their wrapping, which a
//! renderer throws away):
//!
//! - GitHub release bodies as PyTorch writes them: a `Bug Fixes` heading of
//!   any level, sub-headings (`### torch.nn`) that become the *context*;
//! - a `RELEASE.md` holding many releases: `# Release X.Y.Z`, then
//!   `## Bug Fixes and Other Changes` with nested bullets (a bullet ending in
//!   `:` names the component of the bullets under it);
//! - Keep a Changelog: `## [x.y.z] - date`, then `### Fixed`.
//!
//! A bug section ends at the next heading of the same or a higher level.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One bug fix mentioned in release notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BugRecord {
    /// Identifier within the corpus: `B` and the 1-based position
    /// (assigned by [`number_corpus`]).
    #[serde(default)]
    pub id: String,
    /// The framework (e.g. `pytorch`).
    pub framework: String,
    /// The release that shipped the fix.
    pub release: String,
    /// The heading of the bug section (e.g. `Bug Fixes`).
    pub section: String,
    /// Sub-headings and parent bullets, outermost first, joined by ` / `.
    pub context: String,
    /// The bullet's text, Markdown kept, wrapped lines joined.
    pub description: String,
    /// Pull-request numbers (`#123`, `…/pull/123`).
    pub prs: Vec<u32>,
    /// Issue numbers (`…/issues/123`).
    pub issues: Vec<u32>,
    /// Every link target in the bullet.
    pub links: Vec<String>,
    /// The bullet's lines as written.
    pub raw: String,
    /// `file:line` where the bullet starts.
    pub source: String,
}

/// The release-notes formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotesFormat {
    /// One GitHub release body; the release comes from the caller.
    GithubRelease,
    /// A `RELEASE.md` with `# Release X.Y.Z` headings.
    ReleaseMd,
    /// Keep a Changelog: `## [x.y.z]` and `### Fixed`.
    KeepAChangelog,
}

impl NotesFormat {
    /// Guesses the format from the text: `# Release` headings mean
    /// `RELEASE.md`, `## [x.y.z]` Keep a Changelog, anything else a GitHub
    /// release body.
    pub fn detect(text: &str) -> Self {
        let headings: Vec<(usize, &str)> = text.lines().filter_map(heading).collect();
        if headings
            .iter()
            .any(|(_, t)| release_of_release_md(t).is_some())
        {
            NotesFormat::ReleaseMd
        } else if headings
            .iter()
            .any(|(_, t)| release_of_changelog(t).is_some())
        {
            NotesFormat::KeepAChangelog
        } else {
            NotesFormat::GithubRelease
        }
    }
}

/// Why release notes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorpusError {
    /// No heading announces bug fixes.
    #[error(
        "{origin}: no bug-fix section (a heading with \"Bug Fixes\" or, in a changelog, \"Fixed\"); is this the right file?"
    )]
    NoBugSection {
        /// The file.
        origin: String,
    },
    /// A Markdown link is not closed.
    #[error("{origin}:{line}: unterminated link {text:?}; close it with `)`")]
    UnterminatedLink {
        /// The file.
        origin: String,
        /// Line, from 1.
        line: usize,
        /// The start of the link.
        text: String,
    },
    /// A GitHub release body needs its release named.
    #[error("{origin}: a GitHub release body does not name its release; give --release TAG")]
    NoRelease {
        /// The file.
        origin: String,
    },
}

impl fmt::Display for NotesFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotesFormat::GithubRelease => "github-release",
            NotesFormat::ReleaseMd => "release-md",
            NotesFormat::KeepAChangelog => "keep-a-changelog",
        })
    }
}

/// `(level, text)` of a Markdown ATX heading.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    (level > 0 && level <= 6 && (rest.is_empty() || rest.starts_with(' ')))
        .then(|| (level, rest.trim().trim_end_matches('#').trim()))
}

fn release_of_release_md(title: &str) -> Option<String> {
    let rest = title.strip_prefix("Release ")?;
    rest.chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| rest.split_whitespace().next().unwrap_or(rest).to_owned())
}

fn release_of_changelog(title: &str) -> Option<String> {
    let rest = title.strip_prefix('[')?;
    let end = rest.find(']')?;
    Some(rest[..end].to_owned())
}

fn is_bug_section(title: &str, format: NotesFormat) -> bool {
    let lower = title.to_ascii_lowercase();
    match format {
        NotesFormat::KeepAChangelog => lower == "fixed",
        _ => lower.contains("bug fix"),
    }
}

/// A bullet: its indentation and its text after the marker.
fn bullet(line: &str) -> Option<(usize, &str)> {
    let indent = line.len() - line.trim_start().len();
    let rest = line.trim_start();
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some('*' | '-' | '+'), Some(' ' | '\t')) => Some((indent, rest[1..].trim_start())),
        _ => None,
    }
}

/// Gives every record of a corpus its identifier, `B0001`, `B0002`, … in order.
pub fn number_corpus(corpus: &mut [BugRecord]) {
    for (i, b) in corpus.iter_mut().enumerate() {
        b.id = format!("B{:04}", i + 1);
    }
}

/// Parses release notes into bug records. `release` names the release of a
/// GitHub release body (ignored by the other formats, which name their own).
pub fn parse_release_notes(
    text: &str,
    origin: &str,
    framework: &str,
    release: Option<&str>,
    format: NotesFormat,
) -> Result<Vec<BugRecord>, CorpusError> {
    let mut current_release = release.map(str::to_owned);
    // The open bug section: (level, title), and the sub-heading stack.
    let mut section: Option<(usize, String)> = None;
    let mut subheadings: Vec<(usize, String)> = Vec::new();
    let mut found_section = false;
    // Bullets being gathered: (indent, start line, lines).
    let mut items: Vec<Item> = Vec::new();
    let mut records = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let flush = |items: &mut Vec<Item>,
                 records: &mut Vec<BugRecord>,
                 ctx: &Ctx<'_>|
     -> Result<(), CorpusError> {
        for item in build_tree(std::mem::take(items)) {
            emit(&item, &[], ctx, records)?;
        }
        Ok(())
    };
    for (i, line) in lines.iter().enumerate() {
        if let Some((level, title)) = heading(line) {
            let ctx = Ctx::new(origin, framework, &current_release, &section, &subheadings);
            flush(&mut items, &mut records, &ctx)?;
            match format {
                NotesFormat::ReleaseMd => {
                    if let Some(r) = release_of_release_md(title) {
                        current_release = Some(r);
                        section = None;
                        subheadings.clear();
                        continue;
                    }
                }
                NotesFormat::KeepAChangelog => {
                    if let Some(r) = release_of_changelog(title) {
                        current_release = Some(r);
                        section = None;
                        subheadings.clear();
                        continue;
                    }
                }
                NotesFormat::GithubRelease => {}
            }
            if section.as_ref().is_some_and(|(l, _)| level <= *l) {
                section = None;
                subheadings.clear();
            }
            if section.is_none() && is_bug_section(title, format) {
                if current_release.is_none() {
                    return Err(CorpusError::NoRelease {
                        origin: origin.into(),
                    });
                }
                section = Some((level, title.to_owned()));
                found_section = true;
            } else if section.is_some() {
                subheadings.retain(|(l, _)| *l < level);
                subheadings.push((level, title.to_owned()));
            }
            continue;
        }
        if section.is_none() {
            continue;
        }
        if let Some((indent, _)) = bullet(line) {
            items.push(Item {
                indent,
                line: i + 1,
                lines: vec![line.to_string()],
                children: Vec::new(),
            });
        } else if !line.trim().is_empty() {
            // A wrapped line continues the last bullet.
            if let Some(last) = items.last_mut() {
                last.lines.push(line.to_string());
            }
        }
    }
    let ctx = Ctx::new(origin, framework, &current_release, &section, &subheadings);
    flush(&mut items, &mut records, &ctx)?;
    if !found_section {
        return Err(CorpusError::NoBugSection {
            origin: origin.into(),
        });
    }
    Ok(records)
}

struct Ctx<'a> {
    origin: &'a str,
    framework: &'a str,
    release: String,
    section: String,
    context: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(
        origin: &'a str,
        framework: &'a str,
        release: &Option<String>,
        section: &Option<(usize, String)>,
        subheadings: &[(usize, String)],
    ) -> Self {
        Self {
            origin,
            framework,
            release: release.clone().unwrap_or_default(),
            section: section.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
            context: subheadings.iter().map(|(_, t)| t.clone()).collect(),
        }
    }
}

#[derive(Debug)]
struct Item {
    indent: usize,
    line: usize,
    lines: Vec<String>,
    children: Vec<Item>,
}

/// Nests bullets by indentation.
fn build_tree(items: Vec<Item>) -> Vec<Item> {
    let mut roots: Vec<Item> = Vec::new();
    for item in items {
        fn insert(list: &mut Vec<Item>, item: Item) {
            match list.last_mut() {
                Some(parent) if item.indent > parent.indent => insert(&mut parent.children, item),
                _ => list.push(item),
            }
        }
        insert(&mut roots, item);
    }
    roots
}

fn item_text(item: &Item) -> String {
    let mut parts = Vec::new();
    for (k, line) in item.lines.iter().enumerate() {
        let t = if k == 0 {
            bullet(line).map_or(line.trim(), |(_, t)| t)
        } else {
            line.trim()
        };
        parts.push(t.to_owned());
    }
    parts.join(" ")
}

fn emit(
    item: &Item,
    parents: &[String],
    ctx: &Ctx<'_>,
    out: &mut Vec<BugRecord>,
) -> Result<(), CorpusError> {
    let text = item_text(item);
    if !item.children.is_empty() {
        // A parent bullet names a component for the bullets under it.
        let label = text.trim_end_matches(':').trim().to_owned();
        let mut path = parents.to_vec();
        path.push(label);
        for child in &item.children {
            emit(child, &path, ctx, out)?;
        }
        return Ok(());
    }
    let References { links, prs, issues } = references(&text, ctx.origin, item.line)?;
    let context: Vec<String> = ctx.context.iter().chain(parents).cloned().collect();
    out.push(BugRecord {
        id: String::new(),
        framework: ctx.framework.into(),
        release: ctx.release.clone(),
        section: ctx.section.clone(),
        context: context.join(" / "),
        description: text,
        prs,
        issues,
        links,
        raw: item.lines.join("\n"),
        source: format!("{}:{}", ctx.origin, item.line),
    });
    Ok(())
}

/// What a bullet points at.
struct References {
    links: Vec<String>,
    prs: Vec<u32>,
    issues: Vec<u32>,
}

/// Link targets, PR numbers and issue numbers of a bullet.
fn references(text: &str, origin: &str, line: usize) -> Result<References, CorpusError> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            return Err(CorpusError::UnterminatedLink {
                origin: origin.into(),
                line,
                text: rest[start..].chars().take(40).collect(),
            });
        };
        links.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    // Bare URLs count as links too.
    for word in
        text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '<' || c == '>')
    {
        if word.starts_with("https://") && !links.iter().any(|l| l == word) {
            links.push(word.trim_end_matches(['.', ',']).to_owned());
        }
    }
    let mut prs = Vec::new();
    let mut issues = Vec::new();
    for link in &links {
        let number = |marker: &str| {
            link.split(marker)
                .nth(1)
                .and_then(|tail| tail.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u32>().ok())
        };
        if let Some(n) = number("/pull/") {
            prs.push(n);
        } else if let Some(n) = number("/issues/") {
            issues.push(n);
        }
    }
    // `#123` outside links: a pull request, as release notes use it.
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('#') {
        let preceded_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric() && bytes[i - 1] != b'/';
        let digits: String = text[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if preceded_ok
            && let Ok(n) = digits.parse::<u32>()
            && !prs.contains(&n)
            && !issues.contains(&n)
        {
            prs.push(n);
        }
    }
    Ok(References { links, prs, issues })
}
