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
    /// List the data sets registered in a database.
    List {
        /// The server's database.
        #[arg(long, default_value = "reproml.db")]
        db: PathBuf,
    },
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
        DataCommand::List { db } => {
            crate::files::existing_database(&db)?;
            let store = Store::open(&db, None)?;
            for d in store.datasets()? {
                println!(
                    "{}\t{}\t{}\t{} examples\t{} classes\t{}",
                    d.name,
                    d.format.as_str(),
                    d.path,
                    d.examples,
                    d.classes,
                    d.digest
                );
            }
            Ok(())
        }
    }
}
