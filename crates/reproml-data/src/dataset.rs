//! The in-memory data set and what is derived from it.

use reproml_api::{ImageShape, Normalization};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    pub pixels: Vec<u8>,
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

    /// SHA-256 of the content: `"reproml/dataset/v1"`, then as little-endian
    /// `u32`s channels, height, width, classes, max value, official train and
    /// test counts (0, 0 when none) and the number of examples, then every
    /// label byte, then every pixel byte. Any change to the data changes it.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"reproml/dataset/v1");
        let official = self.official.map_or((0, 0), |o| (o.train, o.test));
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
            h.update(v.to_le_bytes());
        }
        h.update(&self.labels);
        h.update(&self.pixels);
        h.finalize().into()
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
            pixels: vec![0, 255, 255, 0],
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
        b.pixels[0] = 1;
        let mut c = tiny();
        c.labels.swap(0, 1);
        assert_ne!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest(), tiny().digest());
    }

    #[test]
    fn invariants_are_checked() {
        let mut bad = tiny();
        bad.labels[1] = 2;
        assert!(bad.checked("x").is_err());
        let mut short = tiny();
        short.pixels.pop();
        assert!(short.checked("x").is_err());
        let mut empty_images = tiny();
        empty_images.shape.width = 0;
        empty_images.pixels.clear();
        let err = empty_images.checked("x").unwrap_err().to_string();
        assert!(err.contains("at least one pixel"), "{err}");
    }
}
