//! `reproml experiment`: create, list, show and delete experiments on a
//! server, whatever engine trains them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use reproml_core::{ExperimentId, VariantLabel};

use crate::connect::ServerArgs;

/// What `reproml experiment` can do.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Register an experiment from its spec, without training anything.
    ///
    /// For studies whose runs another client trains (the Python client,
    /// `python -m reproml.run`). Creating the same spec again is fine; a
    /// different spec under the same identifier is refused.
    ///
    /// Example: reproml experiment create --server http://127.0.0.1:7878 --spec a.toml
    Create {
        #[command(flatten)]
        server: ServerArgs,
        /// The spec file (TOML, see `reproml spec example`).
        #[arg(long)]
        spec: PathBuf,
        /// Print the stored experiment as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the experiments: identifier, model, data set, runs per variant
    /// recorded and planned.
    ///
    /// Example: reproml experiment list --server http://127.0.0.1:7878 --json
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one experiment: its spec and its variants' runs and artifacts.
    ///
    /// Example: reproml experiment show --embedded --db study.db conv-bug
    Show {
        #[command(flatten)]
        server: ServerArgs,
        /// The experiment.
        id: ExperimentId,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print an experiment's recorded runs as CSV (the server's export,
    /// which `compare --csv-in` reads) or JSON.
    ///
    /// Example: reproml experiment runs --embedded --db study.db conv-bug > runs.csv
    Runs {
        #[command(flatten)]
        server: ServerArgs,
        /// The experiment.
        id: ExperimentId,
        /// Print JSON (every run's full result) instead of CSV.
        #[arg(long)]
        json: bool,
    },
    /// Delete an experiment with all its runs, or one variant's runs.
    ///
    /// A server with a token lets whoever holds it delete; one without a
    /// token only when started with --allow-delete (an embedded server
    /// always: you named its database). Deleting cannot be undone.
    ///
    /// Example: reproml experiment delete --db study.db --embedded conv-bug --variant v --yes
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        /// The experiment.
        id: ExperimentId,
        /// Delete only this variant's runs (its name can then be used again).
        #[arg(long)]
        variant: Option<VariantLabel>,
        /// Really delete (without it, nothing is deleted and the command
        /// says what would be).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `reproml experiment` subcommand.
pub fn run(cmd: ExperimentCommand) -> Result<()> {
    match cmd {
        ExperimentCommand::Create { server, spec, json } => {
            let spec = crate::files::load_spec(&spec)?;
            // The connection keeps an embedded server alive.
            let connection = server.connect()?;
            let client = &connection.client;
            let (e, created) = client.create_experiment(&spec)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                println!(
                    "{} experiment {} ({} on {}, {} runs, {} epochs)",
                    if created { "created" } else { "already there:" },
                    e.spec.id,
                    e.spec.model,
                    e.spec.challenge,
                    e.spec.runs,
                    e.spec.epochs
                );
            }
            Ok(())
        }
        ExperimentCommand::Runs { server, id, json } => {
            let connection = server.connect_existing()?;
            let client = &connection.client;
            if json {
                crate::output::print_json(&client.runs(&id, None)?)?;
            } else {
                print!("{}", client.runs_csv(&id)?);
            }
            Ok(())
        }
        ExperimentCommand::List { server, json } => {
            // The connection keeps an embedded server alive.
            let connection = server.connect_existing()?;
            let client = &connection.client;
            let all = client.experiments()?;
            let mut rows = Vec::new();
            for e in &all {
                let runs = client.runs(&e.spec.id, None)?;
                let mut per_variant: BTreeMap<String, usize> = BTreeMap::new();
                for r in &runs {
                    *per_variant.entry(r.variant.to_string()).or_default() += 1;
                }
                rows.push((e, per_variant));
            }
            if json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|(e, v)| {
                        serde_json::json!({
                            "id": e.spec.id, "model": e.spec.model, "challenge": e.spec.challenge,
                            "runs": e.spec.runs, "epochs": e.spec.epochs,
                            "created_at": e.created_at, "recorded": v,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if rows.is_empty() {
                println!(
                    "no experiments yet (create one with `reproml experiment create --spec FILE`)"
                );
            } else {
                println!(
                    "{:<32} {:<12} {:<16} variants (runs recorded / planned)",
                    "experiment", "model", "data set"
                );
                for (e, v) in rows {
                    let variants = if v.is_empty() {
                        "none yet".to_owned()
                    } else {
                        v.iter()
                            .map(|(name, n)| format!("{name} {n}/{}", e.spec.runs))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    println!(
                        "{:<32} {:<12} {:<16} {variants}",
                        e.spec.id.as_str(),
                        e.spec.model.as_str(),
                        e.spec.challenge.as_str()
                    );
                }
            }
            Ok(())
        }
        ExperimentCommand::Show { server, id, json } => {
            // The connection keeps an embedded server alive.
            let connection = server.connect_existing()?;
            let client = &connection.client;
            let e = client.experiment(&id)?;
            let runs = client.runs(&id, None)?;
            let mut variants: BTreeMap<String, (usize, String)> = BTreeMap::new();
            for r in &runs {
                let entry = variants.entry(r.variant.to_string()).or_insert_with(|| {
                    (
                        0,
                        format!(
                            "{} ({})",
                            r.result.artifact.name,
                            r.result.artifact.describe()
                        ),
                    )
                });
                entry.0 += 1;
            }
            if json {
                let v: BTreeMap<_, _> = variants
                    .iter()
                    .map(|(k, (n, a))| {
                        (k.clone(), serde_json::json!({"recorded": n, "artifact": a}))
                    })
                    .collect();
                let out = serde_json::json!({ "experiment": e, "variants": v });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("experiment {} (created {})", e.spec.id, e.created_at);
                print!("{}", e.spec.to_toml());
                if variants.is_empty() {
                    println!("\nno runs recorded yet");
                } else {
                    println!("\nvariants:");
                    for (name, (n, artifact)) in variants {
                        println!("  {name}: {n}/{} runs, artifact {artifact}", e.spec.runs);
                    }
                }
            }
            Ok(())
        }
        ExperimentCommand::Delete {
            server,
            id,
            variant,
            yes,
        } => {
            // The connection keeps an embedded server alive.
            let connection = server.connect_to_delete()?;
            let client = &connection.client;
            let runs = client.runs(&id, variant.as_ref())?;
            let what = match &variant {
                Some(v) => format!("variant {v} of experiment {id} ({} runs)", runs.len()),
                None => format!("experiment {id} with its seeds and {} runs", runs.len()),
            };
            if !yes {
                bail!("would delete {what}; nothing was deleted. Add --yes to delete it");
            }
            let deleted = match &variant {
                Some(v) => client.delete_variant(&id, v)?,
                None => client.delete_experiment(&id)?,
            };
            match &variant {
                Some(v) => println!("deleted variant {v} of experiment {id} ({deleted} runs)"),
                None => println!("deleted experiment {id} with its seeds and {deleted} runs"),
            }
            Ok(())
        }
    }
}
