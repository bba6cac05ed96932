//! The binary stream in which the server serves a split (documented in
//! `docs/protocol.md`, "Split stream"): a JSON header, then chunks of
//! records each followed by its SHA-256, then a trailer with the SHA-256 of
//! the whole split. The reader verifies every checksum and fails loudly.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ImageShape, Normalization};

/// The 8 bytes every split stream starts with.
pub const MAGIC: &[u8; 8] = b"RPMLSPL1";
/// Media type of a split stream.
pub const MEDIA_TYPE: &str = "application/vnd.reproml.split.v1";
/// Largest header accepted by a reader.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Records are grouped into chunks of about this many bytes.
pub const TARGET_CHUNK_BYTES: usize = 1 << 20;

/// What a split stream says about itself before its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitHeader {
    /// Experiment identifier.
    pub experiment: String,
    /// Run index.
    pub run: u32,
    /// `train`, `test` or `validation`.
    pub split: String,
    /// The run's seed.
    pub seed: u64,
    /// Number of records that follow.
    pub examples: u32,
    /// Shape of every image.
    pub shape: ImageShape,
    /// Number of classes.
    pub classes: u32,
    /// The data set's own normalisation.
    pub normalization: Normalization,
    /// SHA-256 of the data set's content, hex.
    pub dataset_digest: String,
    /// `epoch-0` (train: the run's first-epoch order) or `index` (ascending).
    pub order: String,
}

/// One example of a split as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Index of the example in the data set.
    pub index: u32,
    /// Its label.
    pub label: u8,
    /// Its pixels (channel, row, column).
    pub pixels: Vec<u8>,
}

/// The header bytes: magic, header length, header JSON.
pub fn encode_header(header: &SplitHeader) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a split header always serialises");
    let mut out = Vec::with_capacity(12 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Records per chunk for images of `pixels` bytes.
pub fn records_per_chunk(pixels: usize) -> usize {
    (TARGET_CHUNK_BYTES / (5 + pixels)).max(1)
}

/// Builds a split stream chunk by chunk, keeping the running digest.
#[derive(Default)]
pub struct ChunkEncoder {
    whole: Sha256,
}

impl ChunkEncoder {
    /// A new encoder for one split.
    pub fn new() -> Self {
        Self::default()
    }

    /// One chunk: record count, records (`u32` index, label, pixels), SHA-256.
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
            out.extend_from_slice(pixels);
        }
        let digest: [u8; 32] = Sha256::digest(&out[start..]).into();
        self.whole.update(&out[start..]);
        out.extend_from_slice(&digest);
        out
    }

    /// The trailer: a zero count, then the SHA-256 of every record byte.
    pub fn finish(self) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(&self.whole.finalize());
        out
    }
}

/// Why a split stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The stream does not start with [`MAGIC`].
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
    /// The stream ended early or holds more or fewer records than announced.
    #[error("truncated or malformed split stream: {0}")]
    Malformed(String),
}

/// Decodes and verifies a whole split stream.
pub fn decode(bytes: &[u8]) -> Result<(SplitHeader, Vec<Record>), WireError> {
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<&[u8], WireError> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| WireError::Malformed(format!("stream ends inside the {what}")))?;
        let slice = &bytes[at..end];
        at = end;
        Ok(slice)
    };
    if take(8, "magic")? != MAGIC {
        return Err(WireError::BadMagic);
    }
    let len = u32_le(take(4, "header length")?);
    if len > MAX_HEADER_BYTES {
        return Err(WireError::BadHeader(format!(
            "{len} bytes is longer than {MAX_HEADER_BYTES}"
        )));
    }
    let header: SplitHeader = serde_json::from_slice(take(len as usize, "header")?)
        .map_err(|e| WireError::BadHeader(e.to_string()))?;
    let record_size = 5 + header.shape.pixels();
    let mut records = Vec::with_capacity(header.examples as usize);
    let mut whole = Sha256::new();
    for chunk in 0.. {
        let count = u32_le(take(4, "chunk length")?) as usize;
        if count == 0 {
            break;
        }
        if records.len() + count > header.examples as usize {
            return Err(WireError::Malformed(format!(
                "more records than the {} announced",
                header.examples
            )));
        }
        let body = take(count * record_size, "chunk")?;
        let expected = take(32, "chunk checksum")?;
        if Sha256::digest(body).as_slice() != expected {
            return Err(WireError::ChunkChecksum { chunk });
        }
        whole.update(body);
        for r in body.chunks_exact(record_size) {
            records.push(Record {
                index: u32_le(&r[..4]),
                label: r[4],
                pixels: r[5..].to_vec(),
            });
        }
    }
    if whole.finalize().as_slice() != take(32, "split checksum")? {
        return Err(WireError::SplitChecksum);
    }
    if records.len() != header.examples as usize {
        return Err(WireError::Malformed(format!(
            "{} records, {} announced",
            records.len(),
            header.examples
        )));
    }
    if at != bytes.len() {
        return Err(WireError::Malformed("bytes after the trailer".into()));
    }
    Ok((header, records))
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(records: &[(u32, u8, Vec<u8>)], chunk: usize) -> Vec<u8> {
        let header = SplitHeader {
            experiment: "e".into(),
            run: 0,
            split: "train".into(),
            seed: 1,
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
            order: "index".into(),
        };
        let mut out = encode_header(&header);
        let mut enc = ChunkEncoder::new();
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
            let (header, records) = decode(&stream(&sample(), chunk)).unwrap();
            assert_eq!(header.examples, 7);
            assert_eq!(records.len(), 7);
            assert_eq!(
                records[2],
                Record {
                    index: 6,
                    label: 0,
                    pixels: vec![2, 253]
                }
            );
        }
    }

    #[test]
    fn every_corruption_is_detected() {
        let good = stream(&sample(), 3);
        let header_len = 12 + u32_le(&good[8..12]) as usize;
        for i in header_len..good.len() {
            let mut bad = good.clone();
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
