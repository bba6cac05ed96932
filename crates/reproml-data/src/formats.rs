//! Readers for the standard files of each challenge.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};

use crate::{DataError, Dataset, ImageShape, OfficialSplit};

/// Where Debian's `dataset-fashion-mnist` package puts its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Largest data set accepted, in bytes of pixels: CIFAR-10 is 184 MB, so
/// anything past this is a wrong file, not a data set to load into memory.
const MAX_PIXEL_BYTES: usize = 4 << 30;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The file formats `reproml data import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// The digits CSV: 64 pixel values (0–16), then the label, per line.
    DigitsCsv,
    /// A folder with MNIST-style IDX files (plain or `.gz`):
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
    Idx,
    /// A folder with CIFAR-10's binary version: `data_batch_1.bin` …
    /// `data_batch_5.bin` and `test_batch.bin`.
    Cifar10,
}

impl DataFormat {
    /// The format's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DigitsCsv => "digits-csv",
            Self::Idx => "idx",
            Self::Cifar10 => "cifar10",
        }
    }
}

impl std::str::FromStr for DataFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "digits-csv" => Ok(Self::DigitsCsv),
            "idx" => Ok(Self::Idx),
            "cifar10" => Ok(Self::Cifar10),
            _ => Err(format!(
                "unknown data format {s:?}; use digits-csv, idx or cifar10"
            )),
        }
    }
}

/// Reads a data set of `format` at `path`.
pub fn load(format: DataFormat, path: &Path) -> Result<Dataset, DataError> {
    match format {
        DataFormat::DigitsCsv => {
            let reader = open_maybe_gz(path)?;
            read_digits_csv(reader, &path.display().to_string())
        }
        DataFormat::Idx => read_idx_dir(path),
        DataFormat::Cifar10 => read_cifar10_dir(path),
    }
}

/// A built-in challenge: `digits` (embedded in the binary), or
/// `fashion-mnist` from Debian's package when it is installed.
pub fn builtin(name: &str) -> Result<Dataset, DataError> {
    match name {
        "digits" => read_digits_csv(BufReader::new(GzDecoder::new(DIGITS_CSV_GZ)), "built-in digits"),
        "fashion-mnist" if Path::new(FASHION_MNIST_DIR).is_dir() => read_idx_dir(Path::new(FASHION_MNIST_DIR)),
        "fashion-mnist" => Err(DataError::Unknown {
            name: name.into(),
            hint: format!(
                "{FASHION_MNIST_DIR} does not exist; install it with `apt-get install dataset-fashion-mnist`, \
                 or import the IDX files with `reproml data import fashion-mnist --format idx DIR`"
            ),
        }),
        _ => Err(DataError::Unknown {
            name: name.into(),
            hint: "only `digits` (and `fashion-mnist` when installed) are built in; \
                   import others with `reproml data import NAME --format idx|cifar10|digits-csv PATH`"
                .into(),
        }),
    }
}

fn open_maybe_gz(path: &Path) -> Result<Box<dyn BufRead>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path.display(), e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(GzDecoder::new(file))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// Reads the digits CSV: per line 64 integers 0–16, then the label 0–9.
pub fn read_digits_csv(reader: impl BufRead, origin: &str) -> Result<Dataset, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| DataError::io(origin, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |problem: String| DataError::format(format!("{origin}:{}", i + 1), problem);
        let values: Vec<u8> = line
            .split(',')
            .map(|v| v.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|e| at(format!("not a list of small integers: {e}")))?;
        if values.len() != 65 {
            return Err(at(format!(
                "{} values; expected 64 pixels and a label",
                values.len()
            )));
        }
        if let Some(p) = values[..64].iter().find(|&&p| p > 16) {
            return Err(at(format!("pixel value {p} is above 16")));
        }
        pixels.extend_from_slice(&values[..64]);
        labels.push(values[64]);
        if pixels.len() > MAX_PIXEL_BYTES {
            return Err(at(
                "the file is larger than any data set this format holds".into()
            ));
        }
    }
    Dataset {
        shape: ImageShape {
            channels: 1,
            height: 8,
            width: 8,
        },
        classes: 10,
        max_value: 16,
        pixels: pixels.into(),
        labels,
        official: None,
    }
    .checked(origin)
}

fn idx_file(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        Err(DataError::format(
            dir.display(),
            format!(
                "neither {stem} nor {stem}.gz is there; an IDX folder holds the four MNIST-style files"
            ),
        ))
    }
}

/// Reads an IDX folder (MNIST, Fashion-MNIST) with its official split.
pub fn read_idx_dir(dir: &Path) -> Result<Dataset, DataError> {
    let train = read_idx_pair(
        &idx_file(dir, "train-images-idx3-ubyte")?,
        &idx_file(dir, "train-labels-idx1-ubyte")?,
    )?;
    let test = read_idx_pair(
        &idx_file(dir, "t10k-images-idx3-ubyte")?,
        &idx_file(dir, "t10k-labels-idx1-ubyte")?,
    )?;
    if train.shape != test.shape {
        return Err(DataError::format(
            dir.display(),
            "train and test images differ in size",
        ));
    }
    let official = OfficialSplit {
        train: train.len() as u32,
        test: test.len() as u32,
    };
    let mut all = train;
    all.pixels = [all.pixels, test.pixels].concat().into();
    all.labels.extend_from_slice(&test.labels);
    all.classes = all.classes.max(test.classes);
    all.official = Some(official);
    all.checked(&dir.display().to_string())
}

fn read_idx(path: &Path, expected_dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut reader = open_maybe_gz(path)?;
    let name = path.display().to_string();
    let mut header = [0u8; 4];
    reader
        .read_exact(&mut header)
        .map_err(|e| DataError::io(&name, e))?;
    // Magic: two zero bytes, type 0x08 (unsigned byte), number of dimensions.
    if header[..3] != [0, 0, 8] || header[3] as usize != expected_dims {
        return Err(DataError::format(
            &name,
            format!(
                "not an IDX file of unsigned bytes with {expected_dims} dimension(s) (header {header:02x?})"
            ),
        ));
    }
    let mut dims = Vec::with_capacity(expected_dims);
    for _ in 0..expected_dims {
        let mut d = [0u8; 4];
        reader
            .read_exact(&mut d)
            .map_err(|e| DataError::io(&name, e))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let size = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&s| s <= MAX_PIXEL_BYTES)
        .ok_or_else(|| DataError::format(&name, format!("dimensions {dims:?} are too large")))?;
    let mut data = Vec::with_capacity(size);
    reader
        .take(size as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| DataError::io(&name, e))?;
    if data.len() != size {
        return Err(DataError::format(
            &name,
            format!(
                "dimensions {dims:?} need {size} bytes of data, the file holds {}{}",
                data.len().min(size),
                if data.len() > size { " and more" } else { "" }
            ),
        ));
    }
    Ok((dims, data))
}

/// Reads one IDX images file (3 dimensions) and its labels file.
pub fn read_idx_pair(images: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
    let (dims, pixels) = read_idx(images, 3)?;
    let (label_dims, labels) = read_idx(labels_path, 1)?;
    if label_dims[0] != dims[0] {
        return Err(DataError::format(
            labels_path.display(),
            format!(
                "{} labels for {} images in {}",
                label_dims[0],
                dims[0],
                images.display()
            ),
        ));
    }
    let classes = labels.iter().max().map_or(0, |&m| u32::from(m) + 1).max(10);
    Dataset {
        shape: ImageShape {
            channels: 1,
            height: dims[1] as u32,
            width: dims[2] as u32,
        },
        classes,
        max_value: 255,
        pixels: pixels.into(),
        labels,
        official: None,
    }
    .checked(&images.display().to_string())
}

/// Reads CIFAR-10's binary version: records of one label byte and
/// 3×32×32 pixel bytes; five training batches, then the test batch.
pub fn read_cifar10_dir(dir: &Path) -> Result<Dataset, DataError> {
    const RECORD: usize = 1 + 3 * 32 * 32;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut train = 0;
    let names = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .chain(["test_batch.bin".to_string()]);
    for (batch, name) in names.enumerate() {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(path.display(), e))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(DataError::format(
                path.display(),
                format!(
                    "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                    bytes.len()
                ),
            ));
        }
        for record in bytes.chunks_exact(RECORD) {
            labels.push(record[0]);
            pixels.extend_from_slice(&record[1..]);
        }
        if batch == 4 {
            train = labels.len() as u32;
        }
    }
    let test = labels.len() as u32 - train;
    Dataset {
        shape: ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        },
        classes: 10,
        max_value: 255,
        pixels: pixels.into(),
        labels,
        official: Some(OfficialSplit { train, test }),
    }
    .checked(&dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_digits_has_1797_examples_of_ten_classes() {
        let d = builtin("digits").unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.classes, 10);
        assert_eq!(
            d.shape,
            ImageShape {
                channels: 1,
                height: 8,
                width: 8
            }
        );
        // First row of the file: label 0, first pixels 0, 0, 5, 13.
        assert_eq!(d.labels[0], 0);
        assert_eq!(&d.image(0)[..4], &[0, 0, 5, 13]);
        let n = d.normalization();
        assert!(n.mean[0] > 0.2 && n.mean[0] < 0.4, "{n:?}");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let bad = "0,".repeat(64) + "1\n" + &"0,".repeat(10) + "1\n";
        let err = read_digits_csv(bad.as_bytes(), "d.csv").unwrap_err();
        assert!(err.to_string().starts_with("d.csv:2: 11 values"), "{err}");
        let big = "17,".repeat(64) + "1\n";
        assert!(
            read_digits_csv(big.as_bytes(), "d.csv")
                .unwrap_err()
                .to_string()
                .contains("above 16")
        );
    }

    #[test]
    fn unknown_names_say_how_to_import() {
        let err = builtin("cifar10").unwrap_err().to_string();
        assert!(err.contains("reproml data import"), "{err}");
    }
}
