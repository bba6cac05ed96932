//! `reproml data`: register data sets so that experiments can name them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use reproml_core::Name;
use reproml_data::DataFormat;
use reproml_store::{DatasetRecord, Store};

/// What `reproml data` can do.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read a data set, record its content digest and class count, and
    /// register it under NAME (the `challenge` of specs).
    ///
    /// Formats: `idx` (a folder with MNIST-style train-/t10k- files, plain or
    /// .gz), `cifar10` (a folder with data_batch_1..5.bin and
    /// test_batch.bin), `digits-csv` (a CSV file, plain or .gz).
    #[command(
        after_long_help = "Examples:\n  reproml data import fashion-mnist --format idx /usr/share/datasets/fashion-mnist\n  reproml data import cifar10 --format cifar10 ~/data/cifar-10-batches-bin --db study.db"
    )]
    Import {
        /// Name to register (e.g. mnist, cifar10).
        name: Name,
        /// File format.
        #[arg(long)]
        format: DataFormat,
        /// The folder or file holding the data.
        path: PathBuf,
        /// The server's database.
        #[arg(long, default_value = "reproml.db")]
        db: PathBuf,
    },
    /// List the data sets experiments can name: the built-in ones
    /// (`digits`, and `fashion-mnist` when Debian's package is installed)
    /// and those registered in a database.
    ///
    /// Example: reproml data list --db study.db --json
    List {
        /// The server's database (when it does not exist, only the built-in
        /// data sets are listed).
        #[arg(long, default_value = "reproml.db")]
        db: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A data set experiments can name, and where it comes from.
#[derive(serde::Serialize)]
struct Listed {
    /// `built-in` or `registered`.
    source: &'static str,
    #[serde(flatten)]
    record: DatasetRecord,
}

/// Runs a `reproml data` subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Import {
            name,
            format,
            path,
            db,
        } => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find {}", path.display()))?;
            let dataset = reproml_data::load(format, &path)?;
            let digest = reproml_core::hex(&dataset.digest());
            let record = DatasetRecord {
                name: name.to_string(),
                format,
                path: path.display().to_string(),
                digest: digest.clone(),
                classes: dataset.classes,
                examples: dataset.len() as u32,
            };
            let mut store = Store::open(&db, None)?;
            store.register_dataset(&record)?;
            let shape = dataset.shape;
            println!(
                "registered {name}: {} examples of {}×{}×{}, {} classes{}, digest {digest}",
                dataset.len(),
                shape.channels,
                shape.height,
                shape.width,
                dataset.classes,
                dataset
                    .official
                    .map(|o| format!(", official split {}/{}", o.train, o.test))
                    .unwrap_or_default()
            );
            Ok(())
        }
        DataCommand::List { db, json } => {
            let mut listed = Vec::new();
            if db.exists() {
                let store = Store::open(&db, None)?;
                listed.extend(store.datasets()?.into_iter().map(|d| Listed {
                    source: "registered",
                    record: d,
                }));
            } else if !crate::output::quiet() {
                eprintln!(
                    "no database at {}: only the built-in data sets",
                    db.display()
                );
            }
            for name in ["digits", "fashion-mnist"] {
                if listed.iter().any(|l| l.record.name == name) {
                    continue;
                }
                // fashion-mnist is listed only when its package is installed.
                let Ok(dataset) = reproml_data::builtin(name) else {
                    continue;
                };
                listed.push(Listed {
                    source: "built-in",
                    record: DatasetRecord {
                        name: name.into(),
                        format: if name == "digits" {
                            DataFormat::DigitsCsv
                        } else {
                            DataFormat::Idx
                        },
                        path: if name == "digits" {
                            "(inside reproml)".into()
                        } else {
                            reproml_data::FASHION_MNIST_DIR.into()
                        },
                        digest: reproml_core::hex(&dataset.digest()),
                        classes: dataset.classes,
                        examples: dataset.len() as u32,
                    },
                });
            }
            if json {
                return crate::output::print_json(&listed);
            }
            println!(
                "{:<16} {:<10} {:<10} {:>8} {:>7}  {:<16} path",
                "name", "source", "format", "examples", "classes", "digest"
            );
            for l in &listed {
                let d = &l.record;
                println!(
                    "{:<16} {:<10} {:<10} {:>8} {:>7}  {:<16} {}",
                    d.name,
                    l.source,
                    d.format.as_str(),
                    d.examples,
                    d.classes,
                    &d.digest[..d.digest.len().min(16)],
                    d.path
                );
            }
            Ok(())
        }
    }
}
