//! A machine's cache of data sets, by content digest: fetched once
//! (verified end to end: the content's SHA-256 is its name), then each
//! run's split comes as indices only and is resolved against it.
//!
//! Opening an entry checks its content again, so a damaged file is fetched
//! anew, never used. The check compares the content with a checksum
//! written beside it when its SHA-256 was verified ([`content_check`]:
//! XXH3-128 of 8 MiB blocks, on every core: a new process has its first
//! CIFAR-10 split in about 10 ms here, docs/performance.md), or with its
//! SHA-256 again when that file is missing. On a local disk the entry is
//! mapped, not read: its pixels are used where the page cache holds them,
//! shared by every process of the machine. The cache keeps to a size limit
//! by removing the entries used least recently (by modification time,
//! which opening refreshes).
//!
//! What the check at open guards against is damage: a torn or truncated
//! write, a bad disk, a file copied in part, for which a 128-bit checksum
//! is as good as a cryptographic hash. Someone who can write the cache
//! folder could replace an entry and its checksum together, whichever hash
//! it were; such a person can as well replace the programs that read them
//! (`docs/protocol.md` §8).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
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

/// One data set of a process: empty until it is opened or fetched.
type Slot = Mutex<Option<Arc<CachedDataset>>>;

/// A cache directory shared by the processes of a machine, with the data
/// sets this process opened kept in memory.
pub struct DataCache {
    dir: PathBuf,
    limit: u64,
    /// Data sets this process opened or is opening, by digest. Each slot
    /// has its own lock, held while its data set is read or fetched, so
    /// that parallel runs of one process fetch a data set once while runs
    /// of another data set go on.
    open: Mutex<HashMap<String, Arc<Slot>>>,
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

    /// The file holding the check of entry `digest`'s content.
    fn check_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("datasets")
            .join(format!("{digest}{CHECK_SUFFIX}"))
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
        let slot = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(open.entry(digest.to_owned()).or_default())
        };
        // Held while fetching too, so that parallel runs of this process
        // fetch a data set once (they wait for it rather than fetch it
        // again). A failed fetch leaves the slot empty: the next run tries.
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = slot.as_ref() {
            self.count(|s| s.reused += 1);
            return Ok(Arc::clone(d));
        }
        let dataset = match self.read_entry(digest) {
            Some(d) => d,
            None => self.fetch(client, digest)?,
        };
        let dataset = Arc::new(dataset);
        *slot = Some(Arc::clone(&dataset));
        Ok(dataset)
    }

    /// The entry on disk, when there is one and its content has its digest.
    fn read_entry(&self, digest: &str) -> Option<CachedDataset> {
        let path = self.path(digest);
        let mut file = fs::File::open(&path).ok()?;
        let dataset = load_entry(&mut file)
            .filter(|content| self.content_is(digest, content))
            .and_then(|content| Dataset::from_content(content).ok());
        match dataset {
            Some(data) => {
                // Used now: the last to be evicted. (Opened for appending
                // only to set the time: no byte of a mapped entry is written.)
                let _ = fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                self.count(|s| s.opened += 1);
                Some(cached(data, digest))
            }
            None => {
                // Damaged on disk: never used, fetched again.
                self.remove(digest);
                self.count(|s| s.corrupt += 1);
                None
            }
        }
    }

    /// Whether `content`, found under `digest`, is what was stored there:
    /// by its check when the entry has one written beside it, otherwise by
    /// its SHA-256 (then the check is written for the next open).
    fn content_is(&self, digest: &str, content: &[u8]) -> bool {
        let recorded = fs::read(self.check_path(digest))
            .ok()
            .and_then(|text| parse_check(&text));
        match recorded {
            Some(expected) => content_check(content) == expected,
            None => {
                let matches = hex(&Sha256::digest(content)) == digest;
                if matches {
                    let _ = self.store_check(digest, content);
                }
                matches
            }
        }
    }

    /// Removes entry `digest` and its check, if there.
    fn remove(&self, digest: &str) {
        let _ = fs::remove_file(self.path(digest));
        let _ = fs::remove_file(self.check_path(digest));
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
        let names: Vec<String> = match fs::read_dir(&folder) {
            Ok(dir) => dir
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        let is_entry = |name: &str| reproml_data::wire::is_digest(name);
        let present: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        // Checks whose entry is gone (a process died between removing the
        // two, or another removed the entry first): removed too.
        for name in &names {
            if let Some(digest) = name.strip_suffix(CHECK_SUFFIX)
                && is_entry(digest)
                && !present.contains(digest)
            {
                let _ = fs::remove_file(folder.join(name));
            }
        }
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = names
            .iter()
            .filter(|name| is_entry(name))
            .filter_map(|name| {
                let path = folder.join(name);
                let meta = fs::metadata(&path).ok().filter(fs::Metadata::is_file)?;
                Some((meta.modified().ok()?, meta.len(), path))
            })
            .collect();
        entries.sort();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        for (_, length, path) in entries {
            if total + incoming <= self.limit {
                break;
            }
            let removed = fs::remove_file(&path);
            let mut check = path.into_os_string();
            check.push(CHECK_SUFFIX);
            match removed {
                Ok(()) => self.count(|s| s.evicted += 1),
                // Another process removed it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let _ = fs::remove_file(check);
            total -= length;
        }
        Ok(())
    }

    /// Writes an entry whole or not at all, then the check of its content
    /// beside it (the caller verified its SHA-256).
    fn store(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.write_whole(&self.path(digest), bytes)?;
        self.store_check(digest, bytes)
    }

    /// Records the check of `content`, whose SHA-256 was just found to be
    /// `digest`.
    fn store_check(&self, digest: &str, content: &[u8]) -> std::io::Result<()> {
        let text = format!("{:032x}\n", content_check(content));
        self.write_whole(&self.check_path(digest), text.as_bytes())
    }

    /// Writes `bytes` to `path` whole or not at all: to a temporary file of
    /// its own (another process, or another cache of this one, may write the
    /// same file at once), synced, then renamed into place. A file in place
    /// is never written again, only replaced or removed; mapping entries
    /// relies on it.
    fn write_whole(&self, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let folder = self.dir.join("datasets");
        fs::create_dir_all(&folder)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = path
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy());
        let tmp = folder.join(format!(
            ".{name}.{}.{nanos}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = fs::File::create_new(&tmp)
            .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
            .and_then(|()| fs::rename(&tmp, path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// Suffix of the file beside an entry that holds its content's check. It
/// names the scheme, so that another scheme would use other files (and
/// find no check, rather than a wrong one).
const CHECK_SUFFIX: &str = ".xxh3-8mib";
/// Length of the blocks that [`content_check`] hashes one by one.
pub const CHECK_BLOCK_BYTES: usize = 8 << 20;

/// The check of a cache entry's content, which both clients write beside
/// the entry once its SHA-256 is verified and compare at every open
/// (`docs/protocol.md` §8): the XXH3-128 (seed 0) of each block of
/// [`CHECK_BLOCK_BYTES`] (the last one shorter), their canonical 16-byte
/// big-endian forms one after another, and the XXH3-128 of that. The
/// blocks make it parallel: one block per task, on every core.
///
/// ```
/// // Within one block, the XXH3-128 of the block's own hash.
/// let block = twox_hash::XxHash3_128::oneshot(b"abc").to_be_bytes();
/// assert_eq!(
///     reproml_client::content_check(b"abc"),
///     twox_hash::XxHash3_128::oneshot(&block)
/// );
/// ```
pub fn content_check(content: &[u8]) -> u128 {
    use rayon::prelude::*;
    let blocks: Vec<[u8; 16]> = content
        .par_chunks(CHECK_BLOCK_BYTES)
        .map(|block| twox_hash::XxHash3_128::oneshot(block).to_be_bytes())
        .collect();
    twox_hash::XxHash3_128::oneshot(blocks.as_flattened())
}

/// A check as its file holds it: 32 lowercase hexadecimal digits and a
/// line end; anything else is no check.
fn parse_check(text: &[u8]) -> Option<u128> {
    let digits = text.strip_suffix(b"\n")?;
    let lowercase_hex = |d: &u8| d.is_ascii_digit() || (b'a'..=b'f').contains(d);
    if digits.len() != 32 || !digits.iter().all(lowercase_hex) {
        return None;
    }
    u128::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The content of an open entry, or `None` when it is larger than any
/// content a server may send or cannot be read. On a local disk it is
/// mapped (no copy; the pages are the page cache's, shared by every
/// process of the machine); elsewhere read.
fn load_entry(file: &mut fs::File) -> Option<Bytes> {
    let length = file.metadata().ok()?.len();
    if length > MAX_CONTENT_BYTES || length == 0 {
        return None;
    }
    if !on_local_disk(file) {
        let mut bytes = Vec::with_capacity(length as usize);
        std::io::Read::read_to_end(file, &mut bytes).ok()?;
        return Some(bytes.into());
    }
    // SAFETY: a mapping is sound while no one changes or truncates the file
    // for as long as it is mapped. The clients of this project never
    // write a cache entry in place: an entry appears whole by a rename
    // (`write_whole`, and the Python client's `_write_whole`), is then only
    // read, and leaves by being unlinked, which on a local file system
    // keeps a mapped file's pages (`on_local_disk`; on NFS another node's
    // removal would not). The cache folder belongs to the user running the
    // clients, and docs/protocol.md §8 says that other programs must not
    // edit its files in place, as for any memory-mapped cache.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&*file) }.ok()?;
    Some(Bytes::from_owner(map))
}

/// Whether `file` lies on a local file system (by its `statfs` type),
/// where a mapped file stays readable when another process removes it. On
/// a network file system another node's eviction would make reading the
/// mapping fail (SIGBUS), so such entries are read instead.
#[cfg(target_os = "linux")]
fn on_local_disk(file: &fs::File) -> bool {
    // Magic numbers from Linux's include/uapi/linux/magic.h.
    const LOCAL: [u64; 8] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x2FC1_2FC1, // zfs
        0xF2F5_2010, // f2fs
        0x794C_7630, // overlayfs (containers, over a local disk)
        0xCA45_1A4E, // bcachefs
    ];
    rustix::fs::fstatfs(file).is_ok_and(|s| LOCAL.contains(&(s.f_type as u64)))
}

#[cfg(not(target_os = "linux"))]
fn on_local_disk(_: &fs::File) -> bool {
    false
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

    /// The check, block by block on one thread, as docs/protocol.md §8
    /// defines it.
    fn check_one_by_one(content: &[u8]) -> u128 {
        let mut hashes = Vec::new();
        for block in content.chunks(CHECK_BLOCK_BYTES) {
            hashes.extend(twox_hash::XxHash3_128::oneshot(block).to_be_bytes());
        }
        twox_hash::XxHash3_128::oneshot(&hashes)
    }

    #[test]
    fn the_check_hashes_blocks_in_order_whatever_the_threads() {
        let bytes: Vec<u8> = (0..3 * CHECK_BLOCK_BYTES + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let b = CHECK_BLOCK_BYTES;
        for length in [0, 1, b - 1, b, b + 1, 2 * b, 3 * b + 5] {
            let expected = check_one_by_one(&bytes[..length]);
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| content_check(&bytes[..length]));
                assert_eq!(got, expected, "{length} bytes, {threads} threads");
            }
        }
        // Any byte, and the length, changes it.
        let whole = content_check(&bytes);
        let mut flipped = bytes.clone();
        flipped[2 * b + 3] ^= 0x80;
        assert_ne!(content_check(&flipped), whole);
        assert_ne!(content_check(&bytes[..3 * b]), whole);
        // Blocks in another order.
        let swapped = [&bytes[b..2 * b], &bytes[..b], &bytes[2 * b..]].concat();
        assert_ne!(content_check(&swapped), whole);
    }

    /// The vector of docs/protocol.md §8, which the Python client's tests
    /// (another XXH3 implementation, the xxHash C library's) check too.
    #[test]
    fn the_check_s_test_vector() {
        let content: Vec<u8> = (0..20_000_003u64).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(
            format!("{:032x}", content_check(&content)),
            "acfe0f61eb5110a3240fd0f652401b9e"
        );
    }

    #[test]
    fn a_check_file_is_32_lowercase_hex_digits_and_a_line_end() {
        let good = format!("{:032x}\n", 0x0123_4567_89ab_cdef_u128 << 60);
        assert_eq!(
            parse_check(good.as_bytes()),
            Some(0x0123_4567_89ab_cdef_u128 << 60)
        );
        for bad in [
            &good[..32],
            &good[1..],
            &good.to_uppercase(),
            &format!("+{}", &good[1..]),
            &format!("{good}\n"),
            "",
            "\n",
        ] {
            assert_eq!(parse_check(bad.as_bytes()), None, "{bad:?}");
        }
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
