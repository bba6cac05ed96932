//! The binary stream in which the server serves a split (documented in
//! `docs/protocol.md`, "Split stream"): a JSON header, then chunks of
//! records each followed by its SHA-256, then a trailer with the SHA-256 of
//! the header bytes and the chunk checksums in order (which pins the whole
//! split, header included, without hashing the records twice). The reader
//! verifies every checksum and fails loudly.
//!
//! Version 1 left the header outside the split checksum; it stays
//! readable, and the server still sends it to a client that asks for it
//! by media type, but clients of this workspace refuse it.
//!
//! Version 3 is version 2 with XXH3-128 checksums (16 bytes) in place of
//! SHA-256: about 15 times faster on both ends, so that a split streams at
//! a good part of the network's speed. The stream's checksums guard
//! against damage on the way; TLS (required off loopback) against anyone
//! changing it on purpose. Clients of this workspace ask for it, a server
//! sends it to those that do, and version 2 to the others.
//!
//! The indices-only form (`RPMLIDX1`) is version 2 without the pixels: a
//! record is the example's index and label. A client that holds the data
//! set in its cache (by digest) needs no more, and a CIFAR-10 training
//! split shrinks from 154 MB to 250 kB.

use std::io::Read;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use sha2::{Digest, Sha256};
use twox_hash::XxHash3_128;

pub use reproml_api::{SplitHeader, SplitOrder};

use crate::Dataset;

/// A version of the split stream format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The split checksum covers the chunk checksums only.
    V1,
    /// The split checksum also covers the magic, header length and header.
    V2,
    /// Version 2 with XXH3-128 checksums.
    V3,
    /// Version 2 without pixels: records are an index and a label.
    Indices,
}

impl Version {
    /// The 8 bytes a stream of this version starts with.
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Self::V1 => b"RPMLSPL1",
            Self::V2 => b"RPMLSPL2",
            Self::V3 => b"RPMLSPL3",
            Self::Indices => b"RPMLIDX1",
        }
    }

    /// Its media type, for `Content-Type` and `Accept`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::V1 => "application/vnd.reproml.split.v1",
            Self::V2 => "application/vnd.reproml.split.v2",
            Self::V3 => "application/vnd.reproml.split.v3",
            Self::Indices => "application/vnd.reproml.split-indices.v1",
        }
    }

    /// Bytes of each of its checksums.
    pub fn checksum_len(self) -> usize {
        match self {
            Self::V3 => 16,
            Self::V1 | Self::V2 | Self::Indices => 32,
        }
    }

    /// Whether its records carry the images' pixels.
    pub fn carries_pixels(self) -> bool {
        self != Self::Indices
    }

    /// Pixel bytes per record for images of `shape`.
    pub fn record_pixels(self, shape: reproml_api::ImageShape) -> usize {
        if self.carries_pixels() {
            shape.pixels()
        } else {
            0
        }
    }

    /// The version a server sends for an `Accept` header: the
    /// indices-only form to a client that names it, else version 3 to one
    /// that names it, version 1 only to a client that names it and no
    /// later one (an old client), else version 2.
    pub fn for_accept(accept: Option<&str>) -> Self {
        let names = |v: Self| accept.is_some_and(|a| a.contains(v.media_type()));
        if names(Self::Indices) {
            Self::Indices
        } else if names(Self::V3) {
            Self::V3
        } else if names(Self::V1) && !names(Self::V2) {
            Self::V1
        } else {
            Self::V2
        }
    }

    fn from_magic(magic: &[u8; 8]) -> Option<Self> {
        [Self::V1, Self::V2, Self::V3, Self::Indices]
            .into_iter()
            .find(|v| v.magic() == magic)
    }
}

/// The version this crate writes unless told otherwise, and the one its
/// client asks for.
pub const CURRENT: Version = Version::V3;
/// What a client that holds no cache sends as `Accept`: version 3, and 2
/// from a server that predates it.
pub const ACCEPT_FULL: &str = "application/vnd.reproml.split.v3, application/vnd.reproml.split.v2";
/// Largest header accepted by a reader.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;

/// Largest size of a split's records a header may announce: they are
/// allocated before the split checksum vouches for the header. (CIFAR-10's
/// training split is 154 MB; a client reads at most 2 GiB of a stream.)
pub const MAX_RECORD_BYTES: usize = 2 << 30;
/// Records are grouped into chunks of about this many bytes.
pub const TARGET_CHUNK_BYTES: usize = 1 << 20;

/// A data set a client holds, with the digest its bytes were checked
/// against: what an indices-only stream is resolved against. (Its
/// normalisation is the split header's, as with the full stream: computing
/// it again would cost a pass over every pixel in each process.)
#[derive(Clone, PartialEq)]
pub struct CachedDataset {
    /// The examples.
    pub data: Dataset,
    /// SHA-256 of its content, hex.
    pub digest: String,
}

// By hand: a derived Debug would print every pixel.
impl std::fmt::Debug for CachedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedDataset")
            .field("digest", &self.digest)
            .field("examples", &self.data.len())
            .field("shape", &self.data.shape)
            .finish()
    }
}

impl CachedDataset {
    /// `data` with its digest computed (a pass over every byte).
    pub fn new(data: Dataset) -> Self {
        let digest = reproml_core::hex(&data.digest());
        Self { data, digest }
    }
}

/// A decoded, verified split: the records in the served order, kept as
/// they arrived (no copy beyond the one off the socket), or, from an
/// indices-only stream, the indices and labels over a cached data set.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSplit {
    /// What the stream says about itself.
    pub header: SplitHeader,
    /// The format version it came in.
    pub version: Version,
    records: Records,
}

#[derive(Debug, Clone, PartialEq)]
enum Records {
    /// Every record: `u32` index, label byte, pixels; in memory that goes
    /// back to its [`RecordBuffers`], if it came from one, when the last
    /// clone of the split is dropped.
    Inline(Bytes),
    /// Every record's `u32` index and label byte; the pixels are the data
    /// set's.
    Indexed {
        entries: Vec<u8>,
        dataset: Arc<CachedDataset>,
    },
}

impl DecodedSplit {
    fn record_size(&self) -> usize {
        match &self.records {
            Records::Inline(_) => 5 + self.header.shape.pixels(),
            Records::Indexed { .. } => 5,
        }
    }

    /// The records' bytes: whole records, or index and label only.
    fn record_bytes(&self) -> &[u8] {
        match &self.records {
            Records::Inline(bytes) => bytes,
            Records::Indexed { entries, .. } => entries,
        }
    }

    fn record(&self, k: usize) -> &[u8] {
        let size = self.record_size();
        &self.record_bytes()[k * size..(k + 1) * size]
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.record_bytes().len() / self.record_size()
    }

    /// True when the split is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index in the data set of the `k`-th example served.
    pub fn index(&self, k: usize) -> u32 {
        u32_le(&self.record(k)[..4])
    }

    /// Label of the `k`-th example served.
    pub fn label(&self, k: usize) -> u8 {
        self.record(k)[4]
    }

    /// Pixels of the `k`-th example served.
    pub fn image(&self, k: usize) -> &[u8] {
        match &self.records {
            Records::Inline(_) => &self.record(k)[5..],
            Records::Indexed { dataset, .. } => dataset.data.image(self.index(k) as usize),
        }
    }

    /// Data set indices of every example, in the served order.
    pub fn indices(&self) -> Vec<u32> {
        (0..self.len()).map(|k| self.index(k)).collect()
    }
}

/// Memory of the splits a client has dropped, for the next ones it
/// fetches. A split of CIFAR-10's training set is 154 MB: landed in new
/// memory, every page of it is first zeroed by the kernel, which on a
/// virtual machine costs about as much as the transfer itself. A client
/// that fetches split after split (one run after another) lands each in
/// the memory of one it no longer holds.
///
/// It keeps at most [`RecordBuffers::MAX_SPARE`] buffers (two runs'
/// training and test splits, as two jobs sharing a client drop them),
/// lends one only to a split that fills at least half of it, so that a
/// test split does not hold a training split's memory, and frees them
/// with itself.
///
/// ```
/// use reproml_data::wire::RecordBuffers;
/// let buffers = RecordBuffers::new();
/// assert_eq!(buffers.spare_bytes(), 0);
/// ```
#[derive(Debug, Default)]
pub struct RecordBuffers {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl RecordBuffers {
    /// Buffers kept for reuse at most.
    pub const MAX_SPARE: usize = 4;

    /// An empty set, shared by the splits decoded with it.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Bytes held in spare buffers.
    pub fn spare_bytes(&self) -> usize {
        self.lock().iter().map(Vec::capacity).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic while holding it leaves a list of plain buffers: usable.
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of `len` bytes: the smallest spare one that holds them
    /// and is at most twice as large, or new memory, zeroed lazily by the
    /// kernel (not written here). Its content is whatever it held: the
    /// caller overwrites all of it.
    fn take(&self, len: usize) -> Vec<u8> {
        if len == 0 {
            return Vec::new();
        }
        let reused = {
            let mut spare = self.lock();
            let best = (0..spare.len())
                .filter(|&i| (len..=len.saturating_mul(2)).contains(&spare[i].capacity()))
                .min_by_key(|&i| spare[i].capacity());
            best.map(|i| spare.swap_remove(i))
        };
        match reused {
            Some(mut buffer) => {
                // Within the capacity: no reallocation; only bytes beyond
                // the old length are written (zeroed).
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0; len],
        }
    }

    /// Keeps `buffer` for a later split, dropping the smallest spare one
    /// when there are too many.
    fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        let mut spare = self.lock();
        spare.push(buffer);
        if spare.len() > Self::MAX_SPARE {
            let smallest = (0..spare.len())
                .min_by_key(|&i| spare[i].capacity())
                .expect("more than MAX_SPARE buffers");
            spare.swap_remove(smallest);
        }
    }
}

/// A split's records in a buffer of a [`RecordBuffers`]: given back to it
/// when dropped (or freed, when the set is gone).
struct Borrowed {
    records: Vec<u8>,
    home: Weak<RecordBuffers>,
}

impl AsRef<[u8]> for Borrowed {
    fn as_ref(&self) -> &[u8] {
        &self.records
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            home.give(std::mem::take(&mut self.records));
        }
    }
}

/// A checksum of a stream's version: 32 or 16 bytes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checksum {
    bytes: [u8; 32],
    len: usize,
}

impl Checksum {
    /// The checksum of `bytes` (a chunk's records) in `version`.
    fn of(version: Version, bytes: &[u8]) -> Self {
        match version {
            Version::V3 => Self::short(XxHash3_128::oneshot(bytes)),
            _ => Self::long(Sha256::digest(bytes).into()),
        }
    }

    fn long(bytes: [u8; 32]) -> Self {
        Self { bytes, len: 32 }
    }

    /// An XXH3-128 value in its canonical (big-endian) form.
    fn short(value: u128) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&value.to_be_bytes());
        Self { bytes, len: 16 }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The running split checksum of a stream's version.
enum SplitHasher {
    Sha256(Sha256),
    Xxh3(Box<XxHash3_128>),
}

impl SplitHasher {
    fn new(version: Version) -> Self {
        match version {
            Version::V3 => Self::Xxh3(Box::default()),
            _ => Self::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Xxh3(h) => h.write(bytes),
        }
    }

    fn finish(self) -> Checksum {
        match self {
            Self::Sha256(h) => Checksum::long(h.finalize().into()),
            Self::Xxh3(h) => Checksum::short(h.finish_128()),
        }
    }
}

/// Starts a split stream: its first bytes (magic, header length, header
/// JSON) and the encoder of the chunks that follow them.
pub fn begin(header: &SplitHeader, version: Version) -> (Vec<u8>, ChunkEncoder) {
    let json = serde_json::to_vec(header).expect("a split header always serialises");
    let mut head = Vec::with_capacity(12 + json.len());
    head.extend_from_slice(version.magic());
    head.extend_from_slice(&(json.len() as u32).to_le_bytes());
    head.extend_from_slice(&json);
    let mut whole = SplitHasher::new(version);
    if version != Version::V1 {
        whole.update(&head);
    }
    let record_bytes = 5 + version.record_pixels(header.shape);
    (
        head,
        ChunkEncoder {
            whole,
            version,
            record_bytes,
        },
    )
}

/// Records per chunk for images of `pixels` bytes.
pub fn records_per_chunk(pixels: usize) -> usize {
    (TARGET_CHUNK_BYTES / (5 + pixels)).max(1)
}

/// Exact length in bytes of the `version` stream of a split with
/// `examples` images of `pixels` bytes (per record, as
/// [`Version::record_pixels`] gives them) and a header of `header_len`
/// bytes (so the server can send a `Content-Length`).
pub fn encoded_len(version: Version, header_len: usize, examples: usize, pixels: usize) -> u64 {
    let per_chunk = records_per_chunk(pixels);
    let chunks = examples.div_ceil(per_chunk) as u64;
    let checksum = version.checksum_len() as u64;
    header_len as u64
        + chunks * (4 + checksum)
        + examples as u64 * (5 + pixels) as u64
        + 4
        + checksum
}

/// Builds a split stream chunk by chunk, keeping the running digest
/// (made by [`begin`]).
pub struct ChunkEncoder {
    whole: SplitHasher,
    version: Version,
    /// Bytes of a record, to size each chunk once (a megabyte grown by
    /// doubling would be copied about once more).
    record_bytes: usize,
}

impl ChunkEncoder {
    /// The version of the stream it encodes.
    pub fn version(&self) -> Version {
        self.version
    }

    /// One chunk: record count, records (`u32` index, label, pixels unless
    /// indices only), checksum.
    pub fn chunk<'a>(
        &mut self,
        records: impl ExactSizeIterator<Item = (u32, u8, &'a [u8])>,
    ) -> Vec<u8> {
        let count = records.len() as u32;
        let mut out =
            Vec::with_capacity(4 + records.len() * self.record_bytes + self.version.checksum_len());
        out.extend_from_slice(&count.to_le_bytes());
        let start = out.len();
        for (index, label, pixels) in records {
            out.extend_from_slice(&index.to_le_bytes());
            out.push(label);
            if self.version.carries_pixels() {
                out.extend_from_slice(pixels);
            }
        }
        let digest = Checksum::of(self.version, &out[start..]);
        self.whole.update(digest.as_bytes());
        out.extend_from_slice(digest.as_bytes());
        out
    }

    /// The trailer: a zero count, then the split checksum.
    pub fn finish(self) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(self.whole.finish().as_bytes());
        out
    }
}

/// Why a split stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The stream does not start with the magic of a known version.
    #[error("not a ReproduceML split stream (bad magic bytes)")]
    BadMagic,
    /// The header is too long or not valid JSON.
    #[error("bad split header: {0}")]
    BadHeader(String),
    /// A chunk's checksum does not match its records.
    #[error(
        "checksum mismatch in chunk {chunk}: the data was corrupted in transit; fetch it again"
    )]
    ChunkChecksum {
        /// Chunk number, from 0.
        chunk: usize,
    },
    /// The whole-split checksum does not match.
    #[error("checksum mismatch for the whole split: the data was corrupted; fetch it again")]
    SplitChecksum,
    /// The header is well-formed but is not the split that was asked for.
    #[error("the split stream is not the one asked for: {0}")]
    Mismatch(String),
    /// The stream ended early or holds more or fewer records than announced.
    #[error("truncated or malformed split stream: {0}")]
    Malformed(String),
}

/// Decodes and verifies a whole split stream held in memory.
pub fn decode(bytes: &[u8]) -> Result<DecodedSplit, WireError> {
    let mut reader = bytes;
    let split = decode_from(&mut reader)?;
    if !reader.is_empty() {
        return Err(WireError::Malformed("bytes after the trailer".into()));
    }
    Ok(split)
}

/// Decodes and verifies a split stream as it arrives, chunk by chunk, so
/// that checking one chunk overlaps with the next one's transfer. Reads
/// exactly up to the end of the trailer. An indices-only stream is refused
/// here: it needs its data set ([`decode_indices_from`]).
pub fn decode_from(reader: &mut impl Read) -> Result<DecodedSplit, WireError> {
    VerifiedStream::read(reader)?.into_split()
}

/// [`decode_from`], landing the records in a buffer of `buffers` (given
/// back to it when the split is dropped).
pub fn decode_reusing(
    reader: &mut impl Read,
    buffers: &Arc<RecordBuffers>,
) -> Result<DecodedSplit, WireError> {
    VerifiedStream::read_reusing(reader, buffers)?.into_split()
}

/// A stream whose every checksum held, not yet resolved into a split: an
/// indices-only one needs its data set ([`VerifiedStream::over`]), which a
/// client picks by the header's digest only now that the header is known
/// to be the server's.
#[derive(Debug)]
pub struct VerifiedStream {
    header: SplitHeader,
    version: Version,
    records: Vec<u8>,
    /// Where `records` goes back to when its split is dropped.
    home: Option<Weak<RecordBuffers>>,
}

impl VerifiedStream {
    /// Reads and verifies a whole stream of any version.
    pub fn read(reader: &mut impl Read) -> Result<Self, WireError> {
        let (header, version, records) = read_stream(reader, None)?;
        Ok(Self {
            header,
            version,
            records,
            home: None,
        })
    }

    /// [`VerifiedStream::read`], landing the records of a full stream in
    /// a buffer of `buffers`. (An indices-only stream's few hundred kB are
    /// not worth keeping.)
    pub fn read_reusing(
        reader: &mut impl Read,
        buffers: &Arc<RecordBuffers>,
    ) -> Result<Self, WireError> {
        let (header, version, records) = read_stream(reader, Some(buffers))?;
        let home = version.carries_pixels().then(|| Arc::downgrade(buffers));
        Ok(Self {
            header,
            version,
            records,
            home,
        })
    }

    /// Its header, verified.
    pub fn header(&self) -> &SplitHeader {
        &self.header
    }

    /// Its version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The split, resolving an indices-only stream against `dataset`: the
    /// header must name its digest, shape, classes and maximum value, and
    /// every record an example of it with that example's label. A full
    /// stream (from a server that does not know the indices-only form) is
    /// the split as it is.
    pub fn over(self, dataset: &Arc<CachedDataset>) -> Result<DecodedSplit, WireError> {
        if self.version.carries_pixels() {
            return self.into_split();
        }
        let Self {
            header,
            version,
            records: entries,
            ..
        } = self;
        let data = &dataset.data;
        let mut wrong = Vec::new();
        if header.dataset_digest != dataset.digest {
            wrong.push(format!(
                "data set {} (cached: {})",
                header.dataset_digest, dataset.digest
            ));
        }
        if header.shape != data.shape
            || header.classes != data.classes
            || header.normalization.max_value != data.max_value
        {
            wrong.push("its shape, classes or maximum pixel value".into());
        }
        if !wrong.is_empty() {
            return Err(WireError::Mismatch(format!(
                "the split is not of the cached data set: {}",
                wrong.join(", ")
            )));
        }
        for (k, entry) in entries.chunks_exact(5).enumerate() {
            let index = u32_le(entry) as usize;
            if data.labels.get(index) != Some(&entry[4]) {
                return Err(WireError::Malformed(format!(
                    "record {k} names example {index} with label {}, which the cached data set {}",
                    entry[4],
                    if index < data.len() {
                        "labels otherwise"
                    } else {
                        "does not have"
                    }
                )));
            }
        }
        Ok(DecodedSplit {
            header,
            version,
            records: Records::Indexed {
                entries,
                dataset: Arc::clone(dataset),
            },
        })
    }

    /// The split of a full stream; an indices-only one is refused (it
    /// needs its data set).
    pub fn into_split(self) -> Result<DecodedSplit, WireError> {
        if !self.version.carries_pixels() {
            return Err(WireError::Mismatch(
                "an indices-only stream, but the pixels were asked for".into(),
            ));
        }
        let records = match self.home {
            Some(home) => Bytes::from_owner(Borrowed {
                records: self.records,
                home,
            }),
            None => Bytes::from(self.records),
        };
        check_labels(DecodedSplit {
            header: self.header,
            version: self.version,
            records: Records::Inline(records),
        })
    }
}

/// [`VerifiedStream::read`] then [`VerifiedStream::over`] `dataset`.
pub fn decode_indices_from(
    reader: &mut impl Read,
    dataset: &Arc<CachedDataset>,
) -> Result<DecodedSplit, WireError> {
    VerifiedStream::read(reader)?.over(dataset)
}

/// Refuses a split with a label its header's classes do not allow.
fn check_labels(split: DecodedSplit) -> Result<DecodedSplit, WireError> {
    if let Some(k) = (0..split.len()).find(|&k| u32::from(split.label(k)) >= split.header.classes) {
        return Err(WireError::Malformed(format!(
            "record {k} has label {}, but the header says {} classes",
            split.label(k),
            split.header.classes
        )));
    }
    Ok(split)
}

/// Reads and verifies a stream of any version: the header, checked, and
/// the records' bytes.
/// The records land in a buffer of `buffers` when given (a full stream's;
/// given back when the stream is refused), else in new memory. Either way
/// they are read straight into place, not first copied elsewhere or
/// zeroed in advance.
fn read_stream(
    reader: &mut impl Read,
    buffers: Option<&RecordBuffers>,
) -> Result<(SplitHeader, Version, Vec<u8>), WireError> {
    let mut word = [0u8; 4];
    let mut magic = [0u8; 8];
    read_part(reader, &mut magic, "magic")?;
    let version = Version::from_magic(&magic).ok_or(WireError::BadMagic)?;
    read_part(reader, &mut word, "header length")?;
    let len = u32::from_le_bytes(word);
    if len > MAX_HEADER_BYTES {
        return Err(WireError::BadHeader(format!(
            "{len} bytes is longer than {MAX_HEADER_BYTES}"
        )));
    }
    let mut json = vec![0u8; len as usize];
    read_part(reader, &mut json, "header")?;
    let mut whole = SplitHasher::new(version);
    if version != Version::V1 {
        whole.update(&magic);
        whole.update(&word);
        whole.update(&json);
    }
    // A header damaged in transit is caught here or, at the latest, by the
    // split checksum; either way before any record is used.
    let header: SplitHeader =
        serde_json::from_slice(&json).map_err(|e| WireError::BadHeader(e.to_string()))?;
    check_header(&header)?;
    let size = version.record_pixels(header.shape);
    let record_size = 5 + size;
    let examples = header.examples as usize;
    if examples
        .checked_mul(record_size)
        .is_none_or(|total| total > MAX_RECORD_BYTES)
    {
        return Err(WireError::BadHeader(format!(
            "{examples} records of {record_size} bytes is implausibly large"
        )));
    }
    // Sized by the header before the split checksum has vouched for it:
    // bounded above, and new memory is only claimed as it is written.
    let total = examples * record_size;
    let pooled = buffers.filter(|_| version.carries_pixels());
    let mut records = match pooled {
        Some(buffers) => buffers.take(total),
        None => vec![0; total],
    };
    match read_records(reader, &mut records, record_size, version, whole) {
        Ok(()) => Ok((header, version, records)),
        Err(err) => {
            // A retry of the split can land where this one would have.
            if let Some(buffers) = pooled {
                buffers.give(records);
            }
            Err(err)
        }
    }
}

/// Fills `records` (exactly) with a stream's chunks, verifying each
/// chunk's checksum and then the split checksum `whole` accumulates.
fn read_records(
    reader: &mut impl Read,
    records: &mut [u8],
    record_size: usize,
    version: Version,
    mut whole: SplitHasher,
) -> Result<(), WireError> {
    let total = records.len();
    let examples = total / record_size;
    let mut word = [0u8; 4];
    let mut filled = 0;
    let mut expected_bytes = [0u8; 32];
    let expected = &mut expected_bytes[..version.checksum_len()];
    for chunk in 0.. {
        read_part(reader, &mut word, "chunk length")?;
        let count = u32::from_le_bytes(word) as usize;
        if count == 0 {
            break;
        }
        if filled / record_size + count > examples {
            return Err(WireError::Malformed(format!(
                "more records than the {examples} announced"
            )));
        }
        // Read straight into place and hash there, while the chunk is
        // still in the cache.
        let place = &mut records[filled..filled + count * record_size];
        reader
            .read_exact(place)
            .map_err(|e| WireError::Malformed(format!("stream ends inside chunk {chunk} ({e})")))?;
        filled += place.len();
        read_part(reader, expected, "chunk checksum")?;
        let digest = Checksum::of(version, place);
        if digest.as_bytes() != expected {
            return Err(WireError::ChunkChecksum { chunk });
        }
        whole.update(digest.as_bytes());
    }
    read_part(reader, expected, "split checksum")?;
    if whole.finish().as_bytes() != expected {
        return Err(WireError::SplitChecksum);
    }
    if filled != total {
        return Err(WireError::Malformed(format!(
            "{} records, {examples} announced",
            filled / record_size
        )));
    }
    Ok(())
}

/// Reads `buf` whole; what it is (`what`) names it in the error.
fn read_part(reader: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), WireError> {
    reader
        .read_exact(buf)
        .map_err(|e| WireError::Malformed(format!("stream ends inside the {what} ({e})")))
}

/// What a header must say about itself for its records to be usable: a
/// real image shape, a class count labels fit in, one finite mean and one
/// positive standard deviation per channel, the order its split is served
/// in. A reader that trusted less would index out of bounds or divide by
/// zero on a corrupted header.
pub fn check_header(h: &SplitHeader) -> Result<(), WireError> {
    let bad = |m: String| Err(WireError::BadHeader(m));
    let s = h.shape;
    if s.channels == 0 || s.height == 0 || s.width == 0 {
        return bad(format!(
            "images of {}×{}×{} have no pixels",
            s.channels, s.height, s.width
        ));
    }
    if !(1..=256).contains(&h.classes) {
        return bad(format!(
            "{} classes; labels are bytes, so 1 to 256",
            h.classes
        ));
    }
    let n = &h.normalization;
    let channels = s.channels as usize;
    if n.mean.len() != channels || n.std.len() != channels {
        return bad(format!(
            "{} channels but {} means and {} standard deviations",
            channels,
            n.mean.len(),
            n.std.len()
        ));
    }
    if n.max_value == 0
        || !n.mean.iter().all(|m| m.is_finite())
        || !n.std.iter().all(|d| d.is_finite() && *d > 0.0)
    {
        return bad("the normalisation is not usable (zero maximum, or a mean or standard deviation that is not a positive finite number)".into());
    }
    // It names a cache entry (a file) and a URL: nothing but a SHA-256.
    if !is_digest(&h.dataset_digest) {
        return bad("the data set digest is not 64 lowercase hexadecimal digits".into());
    }
    if h.order != SplitOrder::of(h.split) {
        return bad(format!(
            "the {} split is never served in {:?} order",
            h.split, h.order
        ));
    }
    Ok(())
}

/// Checks that `header` is the split that was asked for: the experiment,
/// run, split and seed of the request.
pub fn check_request(
    header: &SplitHeader,
    experiment: &reproml_core::ExperimentId,
    run: reproml_core::RunIndex,
    split: reproml_core::split::SplitName,
    seed: reproml_core::Seed,
) -> Result<(), WireError> {
    let mut wrong = Vec::new();
    if header.experiment != *experiment {
        wrong.push(format!(
            "experiment {} (asked: {experiment})",
            header.experiment
        ));
    }
    if header.run != run {
        wrong.push(format!("run {} (asked: {run})", header.run));
    }
    if header.split != split {
        wrong.push(format!("split {} (asked: {split})", header.split));
    }
    if header.seed != seed {
        wrong.push(format!("seed {} (asked: {seed})", header.seed));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(WireError::Mismatch(wrong.join(", ")))
    }
}

/// True for a SHA-256 written as 64 lowercase hexadecimal digits, the only
/// form a data set digest takes.
pub fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use reproml_api::{ImageShape, Normalization};
    use reproml_core::split::SplitName;

    fn stream(records: &[(u32, u8, Vec<u8>)], chunk: usize) -> Vec<u8> {
        stream_in(CURRENT, records, chunk)
    }

    fn stream_in(version: Version, records: &[(u32, u8, Vec<u8>)], chunk: usize) -> Vec<u8> {
        let header = SplitHeader {
            experiment: "e".parse().unwrap(),
            run: reproml_core::RunIndex::new(0),
            split: reproml_core::split::SplitName::Test,
            seed: reproml_core::Seed::new(1),
            examples: records.len() as u32,
            shape: ImageShape {
                channels: 1,
                height: 1,
                width: 2,
            },
            classes: 2,
            normalization: Normalization {
                max_value: 255,
                mean: vec![0.5],
                std: vec![0.5],
            },
            dataset_digest: "0".repeat(64),
            order: SplitOrder::Index,
        };
        let (mut out, mut enc) = begin(&header, version);
        for part in records.chunks(chunk) {
            out.extend(enc.chunk(part.iter().map(|(i, l, p)| (*i, *l, p.as_slice()))));
        }
        out.extend(enc.finish());
        out
    }

    fn sample() -> Vec<(u32, u8, Vec<u8>)> {
        (0..7)
            .map(|i| (i * 3, (i % 2) as u8, vec![i as u8, 255 - i as u8]))
            .collect()
    }

    /// `sample()` with every pixel shifted by `shift` and `n` records.
    fn other_sample(n: usize, shift: u8) -> Vec<(u32, u8, Vec<u8>)> {
        let mut records = sample();
        records.truncate(n);
        for (_, _, pixels) in &mut records {
            for p in pixels.iter_mut() {
                *p = p.wrapping_add(shift);
            }
        }
        records
    }

    #[test]
    fn a_dropped_splits_memory_carries_the_next_one() {
        let buffers = RecordBuffers::new();
        let first = decode_reusing(&mut stream(&sample(), 3).as_slice(), &buffers).unwrap();
        let memory = first.image(0).as_ptr();
        // A clone holds the memory as long as the split does.
        let clone = first.clone();
        drop(first);
        assert_eq!(buffers.spare_bytes(), 0);
        drop(clone);
        assert_eq!(buffers.spare_bytes(), 7 * 7);

        // Fewer records with other pixels: the same memory, and nothing of
        // the first split shows through.
        let bytes = stream(&other_sample(5, 40), 2);
        let second = decode_reusing(&mut bytes.as_slice(), &buffers).unwrap();
        assert_eq!(second.image(0).as_ptr(), memory);
        assert_eq!(second, decode(&bytes).unwrap());
        assert_eq!(buffers.spare_bytes(), 0);
        drop(second);

        // More records than the spare memory holds: new memory.
        let mut more = sample();
        more.extend(sample());
        let bigger = decode_reusing(&mut stream(&more, 4).as_slice(), &buffers).unwrap();
        assert_ne!(bigger.image(0).as_ptr(), memory);
        assert_eq!(bigger.len(), 14);
        assert_eq!(buffers.spare_bytes(), 7 * 7);
    }

    #[test]
    fn spare_buffers_are_bounded_and_lent_to_splits_that_fill_half() {
        let buffers = RecordBuffers::new();
        let splits: Vec<_> = [3, 7, 5, 4, 6]
            .map(|n| decode_reusing(&mut stream(&other_sample(n, 1), 2).as_slice(), &buffers))
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(splits);
        // The largest four.
        assert_eq!(buffers.spare_bytes(), (7 + 6 + 5 + 4) * 7);
        // One record does not fill half of the smallest (4): new memory,
        // and every spare buffer stays.
        let small =
            decode_reusing(&mut stream(&other_sample(1, 1), 1).as_slice(), &buffers).unwrap();
        assert_eq!(buffers.spare_bytes(), (7 + 6 + 5 + 4) * 7);
        drop(small);
        // Three records fill more than half of the smallest (4): it is lent.
        let three =
            decode_reusing(&mut stream(&other_sample(3, 1), 1).as_slice(), &buffers).unwrap();
        assert_eq!(buffers.spare_bytes(), (7 + 6 + 5) * 7);
        drop(three);
        // Freed with the set, whoever still holds a split.
        let held = decode_reusing(&mut stream(&sample(), 7).as_slice(), &buffers).unwrap();
        drop(buffers);
        assert_eq!(held.label(1), 1);
        drop(held);
    }

    #[test]
    fn a_damaged_stream_into_reused_memory_is_refused_and_gives_it_back() {
        let buffers = RecordBuffers::new();
        drop(decode_reusing(&mut stream(&sample(), 7).as_slice(), &buffers).unwrap());
        let mut bytes = stream(&other_sample(7, 9), 7);
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        assert!(matches!(
            decode_reusing(&mut bytes.as_slice(), &buffers),
            Err(WireError::ChunkChecksum { chunk: 0 })
        ));
        assert_eq!(buffers.spare_bytes(), 7 * 7);
        let short = stream(&sample(), 7);
        assert!(decode_reusing(&mut &short[..short.len() / 2], &buffers).is_err());
        assert_eq!(buffers.spare_bytes(), 7 * 7);
        // An indices-only stream takes no spare buffer (and needs its data
        // set: refused here).
        let idx = stream_in(Version::Indices, &sample(), 3);
        let stream = VerifiedStream::read_reusing(&mut idx.as_slice(), &buffers).unwrap();
        assert_eq!(buffers.spare_bytes(), 7 * 7);
        assert!(stream.into_split().is_err());
    }

    proptest::proptest! {
        /// Whatever splits came before, a split decoded into reused memory
        /// is the split decoded into new memory.
        #[test]
        fn reused_memory_never_changes_a_split(
            streams in proptest::collection::vec((0usize..=7, proptest::prelude::any::<u8>(), 1usize..9), 1..8),
            keep in proptest::collection::vec(proptest::prelude::any::<bool>(), 8),
        ) {
            let buffers = RecordBuffers::new();
            let mut held = Vec::new();
            for (k, (n, shift, chunk)) in streams.into_iter().enumerate() {
                let bytes = stream(&other_sample(n, shift), chunk);
                let split = decode_reusing(&mut bytes.as_slice(), &buffers).unwrap();
                proptest::prop_assert_eq!(&split, &decode(&bytes).unwrap());
                if keep[k] {
                    held.push(split);
                }
            }
        }
    }

    #[test]
    fn round_trip_in_any_chunking() {
        for (version, chunk) in [Version::V2, Version::V3]
            .into_iter()
            .flat_map(|v| [1, 2, 3, 7, 100].map(|c| (v, c)))
        {
            let split = decode(&stream_in(version, &sample(), chunk)).unwrap();
            assert_eq!(split.version, version);
            assert_eq!(split.header.examples, 7);
            assert_eq!(split.len(), 7);
            assert_eq!(
                (split.index(2), split.label(2), split.image(2)),
                (6, 0, &[2u8, 253][..])
            );
        }
    }

    #[test]
    fn encoded_length_is_exact() {
        let header_len = 12
            + serde_json::to_vec(&decode(&stream(&sample(), 1)).unwrap().header)
                .unwrap()
                .len();
        for version in [Version::V1, Version::V2, Version::V3, Version::Indices] {
            let pixels = if version.carries_pixels() { 2 } else { 0 };
            let bytes = stream_in(version, &sample(), records_per_chunk(pixels));
            assert_eq!(
                encoded_len(version, header_len, 7, pixels),
                bytes.len() as u64,
                "{version:?}"
            );
        }
    }

    #[test]
    fn headers_that_records_cannot_live_with_are_refused() {
        let good = decode(&stream(&sample(), 3)).unwrap();
        let mut cases: Vec<(&str, SplitHeader)> = Vec::new();
        let mut h = good.header.clone();
        h.classes = 0;
        cases.push(("classes", h));
        let mut h = good.header.clone();
        h.shape.width = 0;
        cases.push(("no pixels", h));
        let mut h = good.header.clone();
        h.normalization.std = vec![0.5, 0.5];
        cases.push(("channels", h));
        let mut h = good.header.clone();
        h.normalization.std = vec![0.0];
        cases.push(("normalisation", h));
        let mut h = good.header.clone();
        h.order = SplitOrder::Epoch0;
        cases.push(("order", h));
        for (what, header) in cases {
            let err = check_header(&header).unwrap_err().to_string();
            assert!(err.starts_with("bad split header"), "{what}: {err}");
        }
        // Labels at or above the class count are refused while decoding.
        let mut labels = sample();
        labels[4].1 = 2;
        assert!(matches!(
            decode(&stream(&labels, 3)),
            Err(WireError::Malformed(m)) if m.contains("label 2")
        ));
    }

    #[test]
    fn a_header_for_another_request_is_a_mismatch() {
        let h = decode(&stream(&sample(), 3)).unwrap().header;
        let id = "e".parse().unwrap();
        let (run, seed) = (reproml_core::RunIndex::new(0), reproml_core::Seed::new(1));
        assert!(check_request(&h, &id, run, SplitName::Test, seed).is_ok());
        let err = check_request(
            &h,
            &id,
            reproml_core::RunIndex::new(3),
            SplitName::Test,
            seed,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("run 0 (asked: 3)"), "{err}");
        assert!(check_request(&h, &id, run, SplitName::Train, seed).is_err());
        assert!(check_request(&h, &id, run, SplitName::Test, reproml_core::Seed::new(2)).is_err());
    }

    #[test]
    fn every_version_stays_readable_and_each_is_sent_when_asked() {
        let v1 = decode(&stream_in(Version::V1, &sample(), 3)).unwrap();
        let v2 = decode(&stream_in(Version::V2, &sample(), 3)).unwrap();
        let v3 = decode(&stream_in(Version::V3, &sample(), 3)).unwrap();
        assert_eq!(
            (v1.version, v2.version, v3.version),
            (Version::V1, Version::V2, Version::V3)
        );
        assert_eq!((&v1.header, &v1.records), (&v2.header, &v2.records));
        assert_eq!((&v3.header, &v3.records), (&v2.header, &v2.records));
        let [v1_type, v2_type, v3_type, indices_type] =
            [Version::V1, Version::V2, Version::V3, Version::Indices].map(Version::media_type);
        for (accept, sent) in [
            (Some(ACCEPT_FULL), Version::V3),
            (Some(v3_type), Version::V3),
            (Some(v2_type), Version::V2),
            (Some(v1_type), Version::V1),
            (Some(&format!("{v2_type}, {v1_type}")), Version::V2),
            (Some(&format!("{v3_type}, {v1_type}")), Version::V3),
            (Some(indices_type), Version::Indices),
            (Some("*/*"), Version::V2),
            (None, Version::V2),
        ] {
            assert_eq!(Version::for_accept(accept), sent, "{accept:?}");
        }
    }

    #[test]
    fn every_corruption_is_detected() {
        // Versions 2 and 3 protect every byte, the header's included,
        // against any change of one byte (all 255 of them at every offset).
        for version in [Version::V2, Version::V3] {
            let good = stream_in(version, &sample(), 3);
            for i in 0..good.len() {
                for flip in 1..=255u8 {
                    let mut bad = good.clone();
                    bad[i] ^= flip;
                    assert!(
                        decode(&bad).is_err(),
                        "{version:?}: changing byte {i} by {flip:#04x} went unnoticed"
                    );
                }
            }
        }
        let good = stream(&sample(), 3);
        // Version 1 leaves its header to the reader's own checks.
        let v1 = stream_in(Version::V1, &sample(), 3);
        let header_len = 12 + u32_le(&v1[8..12]) as usize;
        for i in header_len..v1.len() {
            let mut bad = v1.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flipping byte {i} went unnoticed");
        }
        let mut bad = good.clone();
        bad[header_len + 4 + 1] ^= 0x80; // a record byte of chunk 0
        assert_eq!(
            decode(&bad).unwrap_err(),
            WireError::ChunkChecksum { chunk: 0 }
        );
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(decode(b"NOTMAGIC....").unwrap_err(), WireError::BadMagic);
    }
}
