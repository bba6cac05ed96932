//! A machine's cache of data sets, by content digest: fetched once
//! (verified end to end: the content's SHA-256 is its name), then each
//! run's split comes as indices only and is resolved against it.
//!
//! Opening an entry checks its digest again, so a damaged file is fetched
//! anew, never used. The cache keeps to a size limit by removing the entries
//! used least recently (by modification time, which opening refreshes).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reproml_data::serve::DatasetFacts;
use reproml_data::wire::CachedDataset;
use reproml_data::{CONTENT_MEDIA_TYPE, Dataset};
use sha2::{Digest, Sha256};

use crate::{Client, ClientError, MAX_SPLIT_BYTES, problem, read_limited};

/// Default size limit: 10 GiB.
pub const DEFAULT_LIMIT_BYTES: u64 = 10 << 30;

/// What a cache did since it was made (for tests, benchmarks and people).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Data sets fetched from a server.
    pub fetched: u32,
    /// Entries read from disk and verified.
    pub opened: u32,
    /// Requests answered from this process's memory.
    pub reused: u32,
    /// Entries found damaged on disk and fetched again.
    pub corrupt: u32,
    /// Data sets fetched but not kept on disk: larger than the limit.
    pub not_kept: u32,
    /// Entries removed to stay within the limit.
    pub evicted: u32,
}

/// A cache directory shared by the processes of a machine, with the data
/// sets this process opened kept in memory.
#[derive(Debug)]
pub struct DataCache {
    dir: PathBuf,
    limit: u64,
    /// Opened data sets; the lock also serialises fetches, so that
    /// parallel runs of one process fetch a data set once.
    open: Mutex<HashMap<String, Arc<CachedDataset>>>,
    stats: Mutex<CacheStats>,
}

impl DataCache {
    /// A cache in `dir` (created when first written) holding at most
    /// `limit` bytes of data sets.
    pub fn new(dir: impl Into<PathBuf>, limit: u64) -> Self {
        Self {
            dir: dir.into(),
            limit,
            open: Mutex::new(HashMap::new()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// The cache the environment asks for: `REPROML_CACHE_DIR` (default
    /// `$XDG_CACHE_HOME/reproml`, else `~/.cache/reproml`) and
    /// `REPROML_CACHE_LIMIT` in bytes, or `None` when `REPROML_CACHE=off`
    /// or no folder can be named.
    pub fn from_env() -> Option<Self> {
        if std::env::var("REPROML_CACHE").is_ok_and(|v| v == "off") {
            return None;
        }
        let dir = std::env::var_os("REPROML_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("reproml"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("reproml"))
            })?;
        let limit = std::env::var("REPROML_CACHE_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_LIMIT_BYTES);
        Some(Self::new(dir, limit))
    }

    /// The folder it keeps data sets in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it did so far.
    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join("datasets").join(digest)
    }

    /// The data set `digest`: from this process's memory, from disk
    /// (verified), or from `client`'s server (verified, then kept).
    pub(crate) fn dataset(
        &self,
        client: &Client,
        digest: &str,
    ) -> Result<Arc<CachedDataset>, ClientError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = open.get(digest) {
            self.count(|s| s.reused += 1);
            return Ok(Arc::clone(d));
        }
        let dataset = match self.read_entry(digest) {
            Some(d) => d,
            None => self.fetch(client, digest)?,
        };
        let dataset = Arc::new(dataset);
        open.insert(digest.to_owned(), Arc::clone(&dataset));
        Ok(dataset)
    }

    /// The entry on disk, when there is one and its content has its digest.
    fn read_entry(&self, digest: &str) -> Option<CachedDataset> {
        let path = self.path(digest);
        let bytes = fs::read(&path).ok()?;
        let dataset = (hex(&Sha256::digest(&bytes)) == digest)
            .then(|| Dataset::from_content(bytes).ok())
            .flatten();
        match dataset {
            Some(data) => {
                // Used now: the last to be evicted.
                let _ = fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                self.count(|s| s.opened += 1);
                Some(cached(data, digest))
            }
            None => {
                // Damaged on disk: never used, fetched again.
                let _ = fs::remove_file(&path);
                self.count(|s| s.corrupt += 1);
                None
            }
        }
    }

    fn fetch(&self, client: &Client, digest: &str) -> Result<CachedDataset, ClientError> {
        let path = format!("/v1/datasets/{digest}/content");
        let (url, mut response) = client.call_accepting("GET", &path, None, CONTENT_MEDIA_TYPE)?;
        let status = response.status().as_u16();
        if status >= 400 {
            let bytes = read_limited(&url, response.body_mut().as_reader(), crate::MAX_JSON_BYTES)?;
            return Err(problem(&url, status, &bytes));
        }
        let bytes = read_limited(&url, response.body_mut().as_reader(), MAX_SPLIT_BYTES)?;
        let corrupt = |message: String| ClientError::Protocol {
            url: url.clone(),
            message,
        };
        let got = hex(&Sha256::digest(&bytes));
        if got != digest {
            return Err(corrupt(format!(
                "the data set's content has the digest {got}, not {digest}: it was corrupted in transit; fetch it again"
            )));
        }
        let length = bytes.len() as u64;
        if length > self.limit {
            self.count(|s| s.not_kept += 1);
        } else if self.make_room(length).is_ok() {
            // A cache that cannot be written only costs speed. (An entry
            // that does not parse below is removed when next opened.)
            let _ = self.store(digest, &bytes);
        }
        let data = Dataset::from_content(bytes)
            .map_err(|e| corrupt(format!("unusable data set content: {e}")))?;
        self.count(|s| s.fetched += 1);
        Ok(cached(data, digest))
    }

    /// Removes the least recently used entries until `incoming` more bytes
    /// fit within the limit.
    fn make_room(&self, incoming: u64) -> std::io::Result<()> {
        let folder = self.dir.join("datasets");
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = match fs::read_dir(&folder) {
            Ok(dir) => dir
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let meta = e.metadata().ok().filter(fs::Metadata::is_file)?;
                    Some((meta.modified().ok()?, meta.len(), e.path()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        entries.sort();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        for (_, length, path) in entries {
            if total + incoming <= self.limit {
                break;
            }
            fs::remove_file(&path)?;
            total -= length;
            self.count(|s| s.evicted += 1);
        }
        Ok(())
    }

    /// Writes an entry whole or not at all: to a temporary file, synced,
    /// then renamed into place (another process may do the same at once).
    fn store(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        let folder = self.dir.join("datasets");
        fs::create_dir_all(&folder)?;
        let tmp = folder.join(format!(".{digest}.{}.tmp", std::process::id()));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, self.path(digest))
    }
}

fn cached(data: Dataset, digest: &str) -> CachedDataset {
    // The digest was just checked against the bytes; only the
    // normalisation is left to compute.
    let normalization = data.normalization();
    CachedDataset {
        data,
        facts: DatasetFacts {
            digest: digest.to_owned(),
            normalization,
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    reproml_core::hex(bytes)
}
