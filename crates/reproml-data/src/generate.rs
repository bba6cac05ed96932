//! Generated data sets, for tests and benchmarks that must not depend on
//! downloads: each class is a noisy variant of its own random template, so
//! models can learn them and metrics mean something.

use reproml_core::stream::{Purpose, RandomStream};

use crate::{Dataset, ImageShape, OfficialSplit};

/// `examples` images of `shape` in `classes` classes, a pure function of
/// `seed`. With `official_test > 0`, the last `official_test` examples form
/// an official test split.
pub fn generate(
    shape: ImageShape,
    classes: u32,
    examples: u32,
    official_test: u32,
    seed: u64,
) -> Dataset {
    let size = shape.pixels();
    let mut stream = RandomStream::new(seed, &Purpose::Other("generated-data".into()), 0, 0);
    let templates: Vec<Vec<u8>> = (0..classes)
        .map(|_| (0..size).map(|_| stream.below(256) as u8).collect())
        .collect();
    let mut pixels = Vec::with_capacity(size * examples as usize);
    let mut labels = Vec::with_capacity(examples as usize);
    for _ in 0..examples {
        let label = stream.below(u64::from(classes)) as u8;
        labels.push(label);
        for &t in &templates[label as usize] {
            // Template plus noise of ±64, clamped.
            let noise = stream.below(129) as i32 - 64;
            pixels.push((i32::from(t) + noise).clamp(0, 255) as u8);
        }
    }
    let official = (official_test > 0 && official_test < examples).then_some(OfficialSplit {
        train: examples - official_test,
        test: official_test,
    });
    Dataset {
        shape,
        classes,
        max_value: 255,
        pixels: pixels.into(),
        labels,
        official,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_seeded() {
        let shape = ImageShape {
            channels: 3,
            height: 4,
            width: 4,
        };
        let a = generate(shape, 5, 100, 20, 1);
        assert_eq!(a, generate(shape, 5, 100, 20, 1));
        assert_ne!(a.digest(), generate(shape, 5, 100, 20, 2).digest());
        assert_eq!(a.pixels.len(), 100 * 48);
        assert_eq!(
            a.official,
            Some(OfficialSplit {
                train: 80,
                test: 20
            })
        );
        assert!(a.labels.iter().all(|&l| l < 5));
    }
}
