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
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use reproml_data::wire::CachedDataset;
use reproml_data::{CONTENT_MEDIA_TYPE, Dataset};
use sha2::{Digest, Sha256};

use crate::{Client, ClientError, problem, read_limited, read_limited_sized};

/// Default size limit: 10 GiB.
pub const DEFAULT_LIMIT_BYTES: u64 = 10 << 30;
/// Largest data set content accepted from a server (what a split stream
/// may hold too).
pub const MAX_CONTENT_BYTES: u64 = 8 << 30;

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
pub struct DataCache {
    dir: PathBuf,
    limit: u64,
    /// Opened data sets; the lock also serialises fetches, so that
    /// parallel runs of one process fetch a data set once.
    open: Mutex<HashMap<String, Arc<CachedDataset>>>,
    stats: Mutex<CacheStats>,
}

// By hand: a derived Debug would print every open data set's pixels.
impl std::fmt::Debug for DataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataCache")
            .field("dir", &self.dir)
            .field("limit", &self.limit)
            .finish()
    }
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
    /// `REPROML_CACHE_LIMIT` (bytes, or with a K, M, G or T suffix: powers
    /// of 1024); `None` when `REPROML_CACHE=off` or no folder can be named.
    /// A value that cannot be read is an error saying so, not a default.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("REPROML_CACHE").as_deref() {
            Ok("off") => return Ok(None),
            Ok("on") | Ok("") | Err(_) => {}
            Ok(other) => return Err(format!("REPROML_CACHE={other:?}: use on or off")),
        }
        let dir = match std::env::var_os("REPROML_CACHE_DIR") {
            Some(d) if d.is_empty() => {
                return Err(
                    "REPROML_CACHE_DIR is empty: name a folder, or set REPROML_CACHE=off".into(),
                );
            }
            Some(d) => Some(PathBuf::from(d)),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join("reproml"))
                .or_else(|| {
                    std::env::var_os("HOME")
                        .filter(|h| !h.is_empty())
                        .map(|h| PathBuf::from(h).join(".cache").join("reproml"))
                }),
        };
        let limit = match std::env::var("REPROML_CACHE_LIMIT") {
            Ok(v) => parse_size(&v).ok_or_else(|| {
                format!("REPROML_CACHE_LIMIT={v:?}: give bytes, e.g. 5000000000 or 5G")
            })?,
            Err(_) => DEFAULT_LIMIT_BYTES,
        };
        Ok(dir.map(|d| Self::new(d, limit)))
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
        // It becomes a file name and a URL: nothing but a SHA-256 (a split
        // header's checks say the same; this holds for any caller).
        if !reproml_data::wire::is_digest(digest) {
            return Err(ClientError::Protocol {
                url: client.base().to_owned(),
                message: format!("{digest:?} is not a data set digest"),
            });
        }
        // Held while fetching too, so that parallel runs of this process
        // fetch a data set once (they wait for it rather than fetch it again).
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
        // Not read at all when larger than any content a server may send.
        let bytes = (fs::metadata(&path).ok()?.len() <= MAX_CONTENT_BYTES)
            .then(|| fs::read(&path).ok())
            .flatten();
        let dataset = bytes
            .filter(|b| hex(&Sha256::digest(b)) == digest)
            .and_then(|b| Dataset::from_content(b).ok());
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
        // Sized from Content-Length (bounded), so that a data set of
        // hundreds of MB is not grown by doubling.
        let announced = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let bytes = read_limited_sized(
            &url,
            response.body_mut().as_reader(),
            MAX_CONTENT_BYTES,
            announced,
        )?;
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
    /// fit within the limit. Temporary files (another process's entry
    /// being written) are neither counted nor removed.
    fn make_room(&self, incoming: u64) -> std::io::Result<()> {
        let folder = self.dir.join("datasets");
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = match fs::read_dir(&folder) {
            Ok(dir) => dir
                .filter_map(Result::ok)
                .filter(|e| reproml_data::wire::is_digest(&e.file_name().to_string_lossy()))
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
            match fs::remove_file(&path) {
                Ok(()) => self.count(|s| s.evicted += 1),
                // Another process removed it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total -= length;
        }
        Ok(())
    }

    /// Writes an entry whole or not at all: to a temporary file of its own
    /// (another process, or another cache of this one, may write the same
    /// entry at once), synced, then renamed into place.
    fn store(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let folder = self.dir.join("datasets");
        fs::create_dir_all(&folder)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = folder.join(format!(
            ".{digest}.{}.{nanos}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = fs::File::create_new(&tmp)
            .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
            .and_then(|()| fs::rename(&tmp, self.path(digest)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// `5000000000`, `512M`, `5G`: bytes, or K, M, G, T as powers of 1024.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, shift) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 10),
        (i, 'M' | 'm') => (&text[..i], 20),
        (i, 'G' | 'g') => (&text[..i], 30),
        (i, 'T' | 't') => (&text[..i], 40),
        _ => (text, 0),
    };
    number.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `data`, whose content was just checked against `digest`.
fn cached(data: Dataset, digest: &str) -> CachedDataset {
    CachedDataset {
        data,
        digest: digest.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    reproml_core::hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sha256_names_an_entry() {
        let dir = std::env::temp_dir().join(format!("reproml-cache-names-{}", std::process::id()));
        let cache = DataCache::new(&dir, 1 << 20);
        // Nothing listens there: a refused name never reaches the network.
        let client = Client::new("http://127.0.0.1:9", None).with_retries(0);
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "ABCDEF",
            &"g".repeat(64),
            "",
        ] {
            let err = cache.dataset(&client, bad).unwrap_err();
            assert!(
                err.to_string().contains("is not a data set digest"),
                "{bad}: {err}"
            );
        }
        assert!(!dir.exists(), "nothing was written");
    }

    #[test]
    fn sizes_read_as_bytes_or_powers_of_1024() {
        assert_eq!(parse_size("5000000000"), Some(5_000_000_000));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("5G"), Some(5 << 30));
        assert_eq!(parse_size(" 1 t "), Some(1 << 40));
        for bad in ["", "G", "5GB", "-1", "1.5G", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
