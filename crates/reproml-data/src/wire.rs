//! The binary stream in which the server serves a split (documented in
//! `docs/protocol.md`, "Split stream"): a JSON header, then chunks of
//! records each followed by its SHA-256, then a trailer with the SHA-256 of
//! the header bytes and the chunk checksums in order (which pins the whole
//! split, header included, without hashing the records twice). The reader
//! verifies every checksum and fails loudly.
//!
//! Version 1 left the header outside the split checksum; it stays
//! readable, and the server still sends it to a client that asks for it
//! by media type, but clients of this workspace ask for version 2.
//!
//! The indices-only form (`RPMLIDX1`) is version 2 without the pixels: a
//! record is the example's index and label. A client that holds the data
//! set in its cache (by digest) needs no more, and a CIFAR-10 training
//! split shrinks from 154 MB to 250 kB.

use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use reproml_api::{SplitHeader, SplitOrder};

use crate::Dataset;

/// A version of the split stream format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The split checksum covers the chunk checksums only.
    V1,
    /// The split checksum also covers the magic, header length and header.
    V2,
    /// Version 2 without pixels: records are an index and a label.
    Indices,
}

impl Version {
    /// The 8 bytes a stream of this version starts with.
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Self::V1 => b"RPMLSPL1",
            Self::V2 => b"RPMLSPL2",
            Self::Indices => b"RPMLIDX1",
        }
    }

    /// Its media type, for `Content-Type` and `Accept`.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::V1 => "application/vnd.reproml.split.v1",
            Self::V2 => "application/vnd.reproml.split.v2",
            Self::Indices => "application/vnd.reproml.split-indices.v1",
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

    /// The version a server sends for an `Accept` header: version 1 only
    /// to a client that names it and not version 2 (an old client), else
    /// the current one; the indices-only form to a client that names it.
    pub fn for_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains(Self::Indices.media_type()) => Self::Indices,
            Some(a) if a.contains(Self::V1.media_type()) && !a.contains(Self::V2.media_type()) => {
                Self::V1
            }
            _ => Self::V2,
        }
    }

    fn from_magic(magic: &[u8; 8]) -> Option<Self> {
        [Self::V1, Self::V2, Self::Indices]
            .into_iter()
            .find(|v| v.magic() == magic)
    }
}

/// The version this crate writes unless told otherwise.
pub const CURRENT: Version = Version::V2;
/// Largest header accepted by a reader.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
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
    /// Every record: `u32` index, label byte, pixels.
    Inline(Vec<u8>),
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

    fn record(&self, k: usize) -> &[u8] {
        let size = self.record_size();
        match &self.records {
            Records::Inline(bytes) | Records::Indexed { entries: bytes, .. } => {
                &bytes[k * size..(k + 1) * size]
            }
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        match &self.records {
            Records::Inline(bytes) | Records::Indexed { entries: bytes, .. } => {
                bytes.len() / self.record_size()
            }
        }
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

/// Starts a split stream: its first bytes (magic, header length, header
/// JSON) and the encoder of the chunks that follow them.
pub fn begin(header: &SplitHeader, version: Version) -> (Vec<u8>, ChunkEncoder) {
    let json = serde_json::to_vec(header).expect("a split header always serialises");
    let mut head = Vec::with_capacity(12 + json.len());
    head.extend_from_slice(version.magic());
    head.extend_from_slice(&(json.len() as u32).to_le_bytes());
    head.extend_from_slice(&json);
    let mut whole = Sha256::new();
    if version != Version::V1 {
        whole.update(&head);
    }
    (head, ChunkEncoder { whole, version })
}

/// Records per chunk for images of `pixels` bytes.
pub fn records_per_chunk(pixels: usize) -> usize {
    (TARGET_CHUNK_BYTES / (5 + pixels)).max(1)
}

/// Exact length in bytes of the stream of a split with `examples` images
/// of `pixels` bytes and a header of `header_len` bytes (so the server can
/// send a `Content-Length`).
pub fn encoded_len(header_len: usize, examples: usize, pixels: usize) -> u64 {
    let per_chunk = records_per_chunk(pixels);
    let chunks = examples.div_ceil(per_chunk) as u64;
    header_len as u64 + chunks * (4 + 32) + examples as u64 * (5 + pixels) as u64 + 4 + 32
}

/// Builds a split stream chunk by chunk, keeping the running digest
/// (made by [`begin`]).
pub struct ChunkEncoder {
    whole: Sha256,
    version: Version,
}

impl ChunkEncoder {
    /// The version of the stream it encodes.
    pub fn version(&self) -> Version {
        self.version
    }

    /// One chunk: record count, records (`u32` index, label, pixels unless
    /// indices only), SHA-256.
    pub fn chunk<'a>(
        &mut self,
        records: impl ExactSizeIterator<Item = (u32, u8, &'a [u8])>,
    ) -> Vec<u8> {
        let count = records.len() as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&count.to_le_bytes());
        let start = out.len();
        for (index, label, pixels) in records {
            out.extend_from_slice(&index.to_le_bytes());
            out.push(label);
            if self.version.carries_pixels() {
                out.extend_from_slice(pixels);
            }
        }
        let digest: [u8; 32] = Sha256::digest(&out[start..]).into();
        self.whole.update(digest);
        out.extend_from_slice(&digest);
        out
    }

    /// The trailer: a zero count, then the split checksum.
    pub fn finish(self) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(&self.whole.finalize());
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
    /// A chunk's SHA-256 does not match its records.
    #[error(
        "checksum mismatch in chunk {chunk}: the data was corrupted in transit; fetch it again"
    )]
    ChunkChecksum {
        /// Chunk number, from 0.
        chunk: usize,
    },
    /// The whole-split SHA-256 does not match.
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

/// A stream whose every checksum held, not yet resolved into a split: an
/// indices-only one needs its data set ([`VerifiedStream::over`]), which a
/// client picks by the header's digest only now that the header is known
/// to be the server's.
#[derive(Debug)]
pub struct VerifiedStream {
    header: SplitHeader,
    version: Version,
    records: Vec<u8>,
}

impl VerifiedStream {
    /// Reads and verifies a whole stream of any version.
    pub fn read(reader: &mut impl Read) -> Result<Self, WireError> {
        let (header, version, records) = read_stream(reader)?;
        Ok(Self {
            header,
            version,
            records,
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
        check_labels(DecodedSplit {
            header: self.header,
            version: self.version,
            records: Records::Inline(self.records),
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
fn read_stream(reader: &mut impl Read) -> Result<(SplitHeader, Version, Vec<u8>), WireError> {
    fn read(reader: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), WireError> {
        reader
            .read_exact(buf)
            .map_err(|e| WireError::Malformed(format!("stream ends inside the {what} ({e})")))
    }
    let mut word = [0u8; 4];
    let mut magic = [0u8; 8];
    read(reader, &mut magic, "magic")?;
    let version = Version::from_magic(&magic).ok_or(WireError::BadMagic)?;
    read(reader, &mut word, "header length")?;
    let len = u32::from_le_bytes(word);
    if len > MAX_HEADER_BYTES {
        return Err(WireError::BadHeader(format!(
            "{len} bytes is longer than {MAX_HEADER_BYTES}"
        )));
    }
    let mut json = vec![0u8; len as usize];
    read(reader, &mut json, "header")?;
    let mut whole = Sha256::new();
    if version != Version::V1 {
        whole.update(magic);
        whole.update(word);
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
        .is_none_or(|total| total > 8 << 30)
    {
        return Err(WireError::BadHeader(format!(
            "{examples} records of {record_size} bytes is implausibly large"
        )));
    }
    let mut records = Vec::with_capacity(examples * record_size);
    let mut expected = [0u8; 32];
    for chunk in 0.. {
        read(reader, &mut word, "chunk length")?;
        let count = u32::from_le_bytes(word) as usize;
        if count == 0 {
            break;
        }
        let start = records.len();
        if start / record_size + count > examples {
            return Err(WireError::Malformed(format!(
                "more records than the {examples} announced"
            )));
        }
        // Read straight into place and hash there.
        let want = (count * record_size) as u64;
        let got = reader
            .by_ref()
            .take(want)
            .read_to_end(&mut records)
            .map_err(|e| WireError::Malformed(format!("stream ends inside chunk {chunk} ({e})")))?;
        if got as u64 != want {
            return Err(WireError::Malformed(format!(
                "stream ends inside chunk {chunk}"
            )));
        }
        read(reader, &mut expected, "chunk checksum")?;
        let digest: [u8; 32] = Sha256::digest(&records[start..]).into();
        if digest != expected {
            return Err(WireError::ChunkChecksum { chunk });
        }
        whole.update(digest);
    }
    read(reader, &mut expected, "split checksum")?;
    if whole.finalize().as_slice() != expected {
        return Err(WireError::SplitChecksum);
    }
    if records.len() != examples * record_size {
        return Err(WireError::Malformed(format!(
            "{} records, {examples} announced",
            records.len() / record_size
        )));
    }
    Ok((header, version, records))
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

    #[test]
    fn round_trip_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 100] {
            let split = decode(&stream(&sample(), chunk)).unwrap();
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
        let bytes = stream(&sample(), records_per_chunk(2));
        assert_eq!(encoded_len(header_len, 7, 2), bytes.len() as u64);
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
    fn version_1_stays_readable_and_version_2_is_sent_unless_asked() {
        let v1 = decode(&stream_in(Version::V1, &sample(), 3)).unwrap();
        let v2 = decode(&stream(&sample(), 3)).unwrap();
        assert_eq!((v1.version, v2.version), (Version::V1, Version::V2));
        assert_eq!((v1.header, v1.records), (v2.header, v2.records));
        let v1_type = Version::V1.media_type();
        assert_eq!(Version::for_accept(Some(v1_type)), Version::V1);
        assert_eq!(Version::for_accept(None), Version::V2);
        assert_eq!(Version::for_accept(Some("*/*")), Version::V2);
        let both = format!("{}, {v1_type}", Version::V2.media_type());
        assert_eq!(Version::for_accept(Some(&both)), Version::V2);
    }

    #[test]
    fn every_corruption_is_detected() {
        // Version 2 protects every byte, the header's included, against
        // any change of one byte (all 255 of them at every offset).
        let good = stream(&sample(), 3);
        for i in 0..good.len() {
            for flip in 1..=255u8 {
                let mut bad = good.clone();
                bad[i] ^= flip;
                assert!(
                    decode(&bad).is_err(),
                    "changing byte {i} by {flip:#04x} went unnoticed"
                );
            }
        }
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
