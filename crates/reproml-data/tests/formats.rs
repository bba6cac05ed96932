//! The readers on small files in each standard format, made here.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use reproml_data::{DataFormat, ImageShape, OfficialSplit, load, read_cifar10_dir};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn write(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        std::fs::write(path.with_extension("gz"), e.finish().unwrap()).unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

fn write_idx_set(dir: &Path, gz: bool, train: u32, test: u32) {
    let image = |n: u32, base: u8| -> Vec<u8> {
        (0..n * 4 * 3).map(|i| base.wrapping_add(i as u8)).collect()
    };
    let labels = |n: u32| -> Vec<u8> { (0..n).map(|i| (i % 10) as u8).collect() };
    write(
        &dir.join("train-images-idx3-ubyte"),
        &idx_bytes(&[train, 4, 3], &image(train, 0)),
        gz,
    );
    write(
        &dir.join("train-labels-idx1-ubyte"),
        &idx_bytes(&[train], &labels(train)),
        gz,
    );
    write(
        &dir.join("t10k-images-idx3-ubyte"),
        &idx_bytes(&[test, 4, 3], &image(test, 100)),
        gz,
    );
    write(
        &dir.join("t10k-labels-idx1-ubyte"),
        &idx_bytes(&[test], &labels(test)),
        gz,
    );
}

#[test]
fn idx_folders_read_plain_and_gzipped_alike() {
    let plain = temp_dir("idx-plain");
    let gz = temp_dir("idx-gz");
    write_idx_set(&plain, false, 12, 5);
    write_idx_set(&gz, true, 12, 5);
    let a = load(DataFormat::Idx, &plain).unwrap();
    let b = load(DataFormat::Idx, &gz).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.shape,
        ImageShape {
            channels: 1,
            height: 4,
            width: 3
        }
    );
    assert_eq!(a.official, Some(OfficialSplit { train: 12, test: 5 }));
    assert_eq!(a.len(), 17);
    assert_eq!(a.image(12)[0], 100, "test images follow training images");
    assert_eq!(a.labels[13], 1);
    for dir in [plain, gz] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn truncated_and_mismatched_idx_files_are_reported() {
    let dir = temp_dir("idx-bad");
    write_idx_set(&dir, false, 12, 5);
    let images = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 1]).unwrap();
    let err = load(DataFormat::Idx, &dir).unwrap_err().to_string();
    assert!(
        err.contains("need 144 bytes of data, the file holds 143"),
        "{err}"
    );

    write_idx_set(&dir, false, 12, 5);
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[4], &[0, 1, 2, 3]),
    )
    .unwrap();
    let err = load(DataFormat::Idx, &dir).unwrap_err().to_string();
    assert!(err.contains("4 labels for 5 images"), "{err}");

    std::fs::write(&images, b"not an idx file").unwrap();
    let err = load(DataFormat::Idx, &dir).unwrap_err().to_string();
    assert!(err.contains("not an IDX file"), "{err}");

    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte")).unwrap();
    let err = load(DataFormat::Idx, &dir).unwrap_err().to_string();
    assert!(
        err.contains("train-images") || err.contains("t10k-images"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cifar10_batches_read_in_order() {
    let dir = temp_dir("cifar");
    const RECORD: usize = 1 + 3072;
    for (i, name) in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    .iter()
    .enumerate()
    {
        let mut bytes = Vec::new();
        for r in 0..3 {
            bytes.push(((i + r) % 10) as u8);
            bytes.extend(std::iter::repeat_n(i as u8 * 10 + r as u8, 3072));
        }
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
    }
    let d = read_cifar10_dir(&dir).unwrap();
    assert_eq!(d.len(), 18);
    assert_eq!(d.official, Some(OfficialSplit { train: 15, test: 3 }));
    assert_eq!(
        d.shape,
        ImageShape {
            channels: 3,
            height: 32,
            width: 32
        }
    );
    assert_eq!(d.image(16)[0], 51, "test batch last, record 1");
    assert_eq!(d.labels[16], 6);

    std::fs::write(dir.join("test_batch.bin"), vec![0u8; RECORD + 1]).unwrap();
    let err = read_cifar10_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("not a whole number"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
