//! The archive: files by path, a manifest of their SHA-256, and the
//! `tar` + zstd encoding, read back with bounds and checked.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BundleError;

/// The manifest's name inside the archive.
pub const MANIFEST: &str = "manifest.json";

/// The format this version writes and reads.
pub const FORMAT: &str = "reproml-bundle/1";

/// Bounds on what a bundle from elsewhere may make a reader hold (the
/// archive, its tar stream and its files are in memory at once).
const MAX_FILES: usize = 100_000;
const MAX_BYTES: u64 = 2 << 30;
/// The manifest lists hashes only: a larger one is not a manifest.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The list every bundle carries: each file's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Every other file of the archive, by path, with its SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

/// A bundle's files in memory, by path (the manifest apart: it is made
/// from them when written, and checked against them when read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    files: BTreeMap<String, Vec<u8>>,
}

fn sha256(bytes: &[u8]) -> String {
    reproml_core::hex(&Sha256::digest(bytes))
}

/// A path that is safe to unpack anywhere: relative, no `..`, plain names.
fn check_path(path: &str) -> Result<(), BundleError> {
    let plain = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if plain && path != MANIFEST {
        Ok(())
    } else {
        Err(BundleError::BadPath(path.to_owned()))
    }
}

impl Bundle {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), BundleError> {
        check_path(path)?;
        self.files.insert(path.to_owned(), bytes);
        Ok(())
    }

    /// Adds `value` as pretty JSON.
    pub fn insert_json<T: Serialize>(&mut self, path: &str, value: &T) -> Result<(), BundleError> {
        let mut text = serde_json::to_vec_pretty(value).map_err(|e| BundleError::Invalid {
            file: path.to_owned(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        self.insert(path, text)
    }

    /// A file's bytes.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// A JSON file read as `T`; missing or malformed is an error naming it.
    pub fn json<T: DeserializeOwned>(&self, path: &str) -> Result<T, BundleError> {
        let bytes = self.get(path).ok_or_else(|| BundleError::Invalid {
            file: path.to_owned(),
            message: "missing from the bundle".into(),
        })?;
        serde_json::from_slice(bytes).map_err(|e| BundleError::Invalid {
            file: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Every path, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Its manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            files: self
                .files
                .iter()
                .map(|(path, bytes)| (path.clone(), sha256(bytes)))
                .collect(),
        }
    }

    /// The manifest as written into the archive.
    fn manifest_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(&self.manifest())?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes the archive to `out` (through a temporary file beside it, so
    /// that a crash never leaves half a bundle under the name).
    ///
    /// Each file is a zstd frame of its own (the manifest first, then the
    /// files in name order): concatenated frames are one ordinary
    /// `.tar.zst` to `tar --zstd -x`, and a damaged frame tells which file
    /// it held.
    pub fn write(&self, out: &Path) -> Result<(), BundleError> {
        let io = |source| BundleError::Io {
            path: out.to_owned(),
            source,
        };
        let manifest = self
            .manifest_bytes()
            .map_err(|e| io(std::io::Error::other(e)))?;
        let mut archive = tar::Builder::new(Vec::new());
        archive.mode(tar::HeaderMode::Deterministic);
        let mut cuts = Vec::new();
        let entries = std::iter::once((MANIFEST, manifest.as_slice()))
            .chain(self.files.iter().map(|(p, b)| (p.as_str(), b.as_slice())));
        for (path, bytes) in entries {
            cuts.push(archive.get_ref().len());
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            archive.append_data(&mut header, path, bytes).map_err(io)?;
        }
        // The end-of-archive blocks go with the last file's frame.
        let tar = archive.into_inner().map_err(io)?;
        cuts.push(tar.len());
        let partial = out.with_extension("partial");
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        for range in cuts.windows(2) {
            let mut encoder = zstd::Encoder::new(&mut file, 9).map_err(io)?;
            // The frame's checksum catches a changed byte in it.
            encoder.include_checksum(true).map_err(io)?;
            std::io::Write::write_all(&mut encoder, &tar[range[0]..range[1]]).map_err(io)?;
            encoder.finish().map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&partial, out).map_err(io)
    }

    /// Reads the archive at `path` and checks every file against the
    /// manifest: a changed, missing or unlisted file is an error naming
    /// it; so is a damaged compressed frame (by the file it held).
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let io = |source| BundleError::Io {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_BYTES {
            return Err(BundleError::TooLarge(format!(
                "{} is {} GiB, over the {} GiB a bundle may have",
                path.display(),
                size >> 30,
                MAX_BYTES >> 30
            )));
        }
        let compressed = std::fs::read(path).map_err(io)?;
        let tar = decompress_frames(path, &compressed)?;
        let (manifest, files) = untar(path, &tar)?;
        let manifest: Manifest = serde_json::from_slice(
            &manifest.ok_or_else(|| BundleError::NoManifest(path.to_owned()))?,
        )
        .map_err(|e| BundleError::Invalid {
            file: MANIFEST.into(),
            message: e.to_string(),
        })?;
        if manifest.format != FORMAT {
            return Err(BundleError::Invalid {
                file: MANIFEST.into(),
                message: format!(
                    "format {:?}; this version reads {FORMAT:?}",
                    manifest.format
                ),
            });
        }
        let bundle = Self { files };
        bundle.check(&manifest)?;
        Ok(bundle)
    }

    /// Every difference between the files and `manifest`.
    fn check(&self, manifest: &Manifest) -> Result<(), BundleError> {
        let mut problems = Vec::new();
        for (path, expected) in &manifest.files {
            match self.files.get(path) {
                None => problems.push(format!("{path}: listed in the manifest, missing")),
                Some(bytes) => {
                    let found = sha256(bytes);
                    if &found != expected {
                        problems.push(format!(
                            "{path}: SHA-256 {found}, but the manifest says {expected} (the file was changed)"
                        ));
                    }
                }
            }
        }
        for path in self.files.keys() {
            if !manifest.files.contains_key(path) {
                problems.push(format!("{path}: not in the manifest (a file was added)"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BundleError::Tampered(problems))
        }
    }
}

/// Where each zstd frame of `compressed` lies (a bundle holds one per
/// file, the manifest's first), and whether they cover it all: `false`
/// when a frame's end cannot be found (the ranges before it are whole).
pub fn frames(compressed: &[u8]) -> (Vec<std::ops::Range<usize>>, bool) {
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < compressed.len() {
        match zstd::zstd_safe::find_frame_compressed_size(&compressed[at..]) {
            Ok(n) if n > 0 && n <= compressed.len() - at => {
                ranges.push(at..at + n);
                at += n;
            }
            _ => return (ranges, false),
        }
    }
    (ranges, true)
}

/// The zstd frames of `compressed`, decoded and joined (the tar stream).
/// A frame that does not decode is named by the file it held: frame `i`
/// holds the manifest's `i`-th entry (the manifest itself first), when
/// the bundle was written by [`Bundle::write`] and its manifest decodes.
fn decompress_frames(path: &Path, compressed: &[u8]) -> Result<Vec<u8>, BundleError> {
    let (ranges, whole) = frames(compressed);
    let frames: Vec<&[u8]> = ranges.into_iter().map(|r| &compressed[r]).collect();
    if !whole {
        // Cannot even find where this frame ends: the frames
        // before it are whole.
        let manifest = frames.first().and_then(|first| {
            let mut bytes = Vec::new();
            zstd::Decoder::with_buffer(*first)
                .ok()?
                .single_frame()
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut bytes)
                .ok()?;
            let (manifest, _) = untar(path, &bytes).ok()?;
            serde_json::from_slice::<Manifest>(&manifest?).ok()
        });
        return Err(damaged_frame(
            path,
            frames.len(),
            manifest.as_ref(),
            "its frame header is broken",
        ));
    }
    let mut tar = Vec::new();
    let mut manifest = None;
    for (i, frame) in frames.iter().enumerate() {
        let decoder = zstd::Decoder::with_buffer(*frame)
            .map_err(|e| damaged_frame(path, i, manifest.as_ref(), &e.to_string()))?
            .single_frame();
        let room = MAX_BYTES.saturating_sub(tar.len() as u64);
        decoder
            .take(room + 1)
            .read_to_end(&mut tar)
            .map_err(|e| damaged_frame(path, i, manifest.as_ref(), &e.to_string()))?;
        if i == 0 {
            // The manifest's frame, read once, names the frames after it.
            manifest = untar(path, &tar)
                .ok()
                .and_then(|(bytes, _)| serde_json::from_slice::<Manifest>(&bytes?).ok());
        }
        if tar.len() as u64 > MAX_BYTES {
            return Err(BundleError::TooLarge(format!(
                "{} unpacks to more than {} GiB: not a bundle this tool made",
                path.display(),
                MAX_BYTES >> 30
            )));
        }
    }
    Ok(tar)
}

/// The error for frame `index`, naming the file it held where the
/// manifest (frame 0) can say which.
fn damaged_frame(
    path: &Path,
    index: usize,
    manifest: Option<&Manifest>,
    message: &str,
) -> BundleError {
    let name = if index == 0 {
        Some(MANIFEST.to_owned())
    } else {
        manifest.and_then(|m| m.files.keys().nth(index - 1).cloned())
    };
    BundleError::Damaged {
        path: path.to_owned(),
        at: match name {
            Some(name) => format!("in {name} (compressed frame {index})"),
            None => format!("in compressed frame {index}"),
        },
        message: message.to_owned(),
    }
}

/// The manifest and the files of a tar stream, bounded in count.
type Unpacked = (Option<Vec<u8>>, BTreeMap<String, Vec<u8>>);

fn untar(path: &Path, tar: &[u8]) -> Result<Unpacked, BundleError> {
    let mut archive = tar::Archive::new(tar);
    let mut files = BTreeMap::new();
    let mut manifest = None;
    let mut last = String::from("at its start");
    let damaged = |at: &str, e: &dyn std::fmt::Display| BundleError::Damaged {
        path: path.to_owned(),
        at: at.to_owned(),
        message: e.to_string(),
    };
    let entries = archive.entries().map_err(|e| damaged(&last, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(&last, &e))?;
        let name = entry
            .path()
            .map_err(|e| damaged(&last, &e))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(
                &format!("at {name}"),
                &"not a plain file (a bundle holds only files)",
            ));
        }
        if files.len() >= MAX_FILES {
            return Err(BundleError::TooLarge(format!(
                "{} holds more than {MAX_FILES} files: not a bundle this tool made",
                path.display()
            )));
        }
        // The header's size is the archive's word: never trusted further
        // than the bytes that are there.
        if entry.size() > tar.len() as u64 {
            return Err(damaged(
                &format!("at {name}"),
                &format!(
                    "its header claims {} bytes, more than the archive holds",
                    entry.size()
                ),
            ));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| damaged(&format!("in {name}"), &e))?;
        last = format!("after {name}");
        if name == MANIFEST {
            manifest = Some(bytes);
        } else {
            check_path(&name)?;
            files.insert(name, bytes);
        }
    }
    Ok((manifest, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_files_of_a_bundle() {
        for good in ["a.json", "experiments/e-1/runs.json", "study/B0001.toml"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            "./a",
            "a b",
            "manifest.json",
            "é.json",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
