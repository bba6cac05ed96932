//! The in-memory data set and what is derived from it.

use bytes::Bytes;
use reproml_api::{ImageShape, Normalization};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a data set's content starts with (see [`Dataset::content_head`]).
const CONTENT_MAGIC: &[u8] = b"reproml/dataset/v1";
/// The media type in which a server sends a data set's content.
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.reproml.dataset.v1";
/// Length of the content's head: the magic and eight `u32`s.
pub const CONTENT_HEAD_BYTES: usize = 18 + 8 * 4;

/// The published split of a data set: its first `train` examples come from
/// the training file(s), the next `test` from the test file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficialSplit {
    /// Examples in the training file(s).
    pub train: u32,
    /// Examples in the test file.
    pub test: u32,
}

/// A labelled image data set held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Shape of every image.
    pub shape: ImageShape,
    /// Number of classes; labels are `0..classes`.
    pub classes: u32,
    /// Largest pixel value the format allows.
    pub max_value: u8,
    /// Pixels of every example, example-major, then channel, row, column.
    /// Shared rather than owned: a client's cache hands out the pixels of a
    /// mapped file, and every run of a process reads the same buffer.
    pub pixels: Bytes,
    /// Label of every example.
    pub labels: Vec<u8>,
    /// The published train/test split, where the data set has one.
    pub official: Option<OfficialSplit>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of example `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.shape.pixels();
        &self.pixels[index * size..(index + 1) * size]
    }

    /// SHA-256 of the content (see [`Dataset::content_head`]): any change
    /// to the data changes it. It names the data set everywhere: in split
    /// headers, fingerprints and the clients' caches.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.content_head());
        h.update(&self.labels);
        h.update(&self.pixels);
        h.finalize().into()
    }

    /// The first bytes of the content, whose SHA-256 is the digest:
    /// `"reproml/dataset/v1"`, then as little-endian `u32`s channels,
    /// height, width, classes, max value, official train and test counts
    /// (0, 0 when none) and the number of examples. Every label byte and
    /// then every pixel byte follow; a server sends the three parts as the
    /// data set's content (`docs/protocol.md` §8, "Indices only, and a data set's content").
    pub fn content_head(&self) -> Vec<u8> {
        let official = self.official.map_or((0, 0), |o| (o.train, o.test));
        let mut head = Vec::with_capacity(CONTENT_HEAD_BYTES);
        head.extend_from_slice(CONTENT_MAGIC);
        for v in [
            self.shape.channels,
            self.shape.height,
            self.shape.width,
            self.classes,
            u32::from(self.max_value),
            official.0,
            official.1,
            self.labels.len() as u32,
        ] {
            head.extend_from_slice(&v.to_le_bytes());
        }
        head
    }

    /// Length in bytes of the whole content.
    pub fn content_len(&self) -> u64 {
        (CONTENT_HEAD_BYTES + self.labels.len() + self.pixels.len()) as u64
    }

    /// The data set whose content is `bytes` (the head, the labels, the
    /// pixels), with every invariant checked. The pixels stay in `bytes`
    /// (a slice of it, no copy), so content read into a `Vec` or mapped
    /// from a file is used where it lies. The digest is not checked here:
    /// a cache compares it with the name it stored the content under.
    pub fn from_content(bytes: impl Into<Bytes>) -> Result<Self, crate::DataError> {
        let bytes: Bytes = bytes.into();
        let fail = |problem: String| crate::DataError::format("data set content", problem);
        if bytes.len() < CONTENT_HEAD_BYTES || !bytes.starts_with(CONTENT_MAGIC) {
            return Err(fail("it does not start with \"reproml/dataset/v1\"".into()));
        }
        let word = |k: usize| {
            let at = CONTENT_MAGIC.len() + 4 * k;
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let shape = ImageShape {
            channels: word(0),
            height: word(1),
            width: word(2),
        };
        let (classes, max_value, examples) = (word(3), word(4), word(7) as usize);
        let official = (word(5), word(6));
        let max_value = u8::try_from(max_value)
            .map_err(|_| fail(format!("a maximum pixel value of {max_value}")))?;
        let expected = (shape.channels as usize)
            .checked_mul(shape.height as usize)
            .and_then(|p| p.checked_mul(shape.width as usize))
            .and_then(|p| p.checked_add(1))
            .and_then(|record| record.checked_mul(examples))
            .and_then(|body| body.checked_add(CONTENT_HEAD_BYTES));
        if expected != Some(bytes.len()) {
            return Err(fail(format!(
                "{} bytes, but its head announces {examples} examples of {}×{}×{}",
                bytes.len(),
                shape.channels,
                shape.height,
                shape.width
            )));
        }
        let labels = bytes[CONTENT_HEAD_BYTES..CONTENT_HEAD_BYTES + examples].to_vec();
        Self {
            shape,
            classes,
            max_value,
            pixels: bytes.slice(CONTENT_HEAD_BYTES + examples..),
            labels,
            official: (official != (0, 0)).then_some(OfficialSplit {
                train: official.0,
                test: official.1,
            }),
        }
        .checked("data set content")
    }

    /// The data set's own normalisation statistics.
    pub fn normalization(&self) -> Normalization {
        let channels = self.shape.channels as usize;
        let plane = (self.shape.height * self.shape.width) as usize;
        // Exact integer sums, so the statistics do not depend on order.
        let mut sums = vec![0u64; channels];
        let mut squares = vec![0u64; channels];
        for image in self.pixels.chunks_exact(self.shape.pixels()) {
            for (c, channel) in image.chunks_exact(plane).enumerate() {
                for &p in channel {
                    sums[c] += u64::from(p);
                    squares[c] += u64::from(p) * u64::from(p);
                }
            }
        }
        let count = (self.len() * plane) as f64;
        let scale = f64::from(self.max_value);
        let mean: Vec<f64> = sums.iter().map(|&s| s as f64 / count / scale).collect();
        let std = squares
            .iter()
            .zip(&mean)
            .map(|(&q, &m)| {
                let var = q as f64 / count / (scale * scale) - m * m;
                if var > 0.0 { var.sqrt() } else { 1.0 }
            })
            .collect();
        Normalization {
            max_value: self.max_value,
            mean,
            std,
        }
    }

    /// Checks the invariants every reader must establish.
    pub(crate) fn checked(self, path: &str) -> Result<Self, crate::DataError> {
        let fail = |problem: String| Err(crate::DataError::format(path, problem));
        if self.labels.is_empty() {
            return fail("the data set has no examples".into());
        }
        let shape = self.shape;
        if shape.channels == 0 || shape.height == 0 || shape.width == 0 {
            return fail(format!(
                "its images are {}×{}×{}: an image needs at least one pixel; is this the right file?",
                shape.channels, shape.height, shape.width
            ));
        }
        if self.pixels.len() != self.labels.len() * self.shape.pixels() {
            return fail(format!(
                "{} pixel bytes for {} examples of {} bytes each",
                self.pixels.len(),
                self.labels.len(),
                self.shape.pixels()
            ));
        }
        if let Some((i, &label)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, l)| u32::from(**l) >= self.classes)
        {
            return fail(format!(
                "example {i} has label {label}, but there are {} classes",
                self.classes
            ));
        }
        if let Some(o) = self.official
            && (o.train + o.test) as usize != self.labels.len()
        {
            return fail("official split sizes do not add up to the number of examples".into());
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            shape: ImageShape {
                channels: 1,
                height: 1,
                width: 2,
            },
            classes: 2,
            max_value: 255,
            pixels: vec![0, 255, 255, 0].into(),
            labels: vec![0, 1],
            official: None,
        }
    }

    #[test]
    fn normalization_uses_the_data_set_s_own_statistics() {
        let n = tiny().normalization();
        assert_eq!(n.mean, [0.5]);
        assert_eq!(n.std, [0.5]);
    }

    #[test]
    fn any_change_changes_the_digest() {
        let a = tiny();
        let mut b = tiny();
        b.pixels = vec![1, 255, 255, 0].into();
        let mut c = tiny();
        c.labels.swap(0, 1);
        assert_ne!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest(), tiny().digest());
    }

    #[test]
    fn the_content_is_the_digest_s_preimage_and_reads_back() {
        let mut data = tiny();
        data.official = Some(OfficialSplit { train: 1, test: 1 });
        let mut content = data.content_head();
        content.extend_from_slice(&data.labels);
        content.extend_from_slice(&data.pixels);
        assert_eq!(content.len() as u64, data.content_len());
        let digest: [u8; 32] = Sha256::digest(&content).into();
        assert_eq!(digest, data.digest());
        assert_eq!(Dataset::from_content(content.clone()).unwrap(), data);
        // Truncated, lengthened, another magic, a label out of range.
        for bad in [
            content[..content.len() - 1].to_vec(),
            [content.as_slice(), &[0]].concat(),
            [b"x".as_slice(), &content[1..]].concat(),
            {
                let mut c = content.clone();
                c[CONTENT_HEAD_BYTES] = 200;
                c
            },
        ] {
            assert!(Dataset::from_content(bad).is_err());
        }
    }

    #[test]
    fn invariants_are_checked() {
        let mut bad = tiny();
        bad.labels[1] = 2;
        assert!(bad.checked("x").is_err());
        let mut short = tiny();
        short.pixels.truncate(3);
        assert!(short.checked("x").is_err());
        let mut empty_images = tiny();
        empty_images.shape.width = 0;
        empty_images.pixels = Bytes::new();
        let err = empty_images.checked("x").unwrap_err().to_string();
        assert!(err.contains("at least one pixel"), "{err}");
    }
}
