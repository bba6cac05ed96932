//! `reproml artifact`: build a bug's buggy and corrected revisions.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use reproml_study::artifact::{Recipe, build};

/// What `reproml artifact` can do.
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Build the buggy and the corrected revision of a recipe, each in its
    /// own git worktree with the same command and environment, and record
    /// their provenance. A failed build is recorded and skipped.
    #[command(
        after_long_help = "Examples:\n  reproml artifact build recipes/B0001.toml --dir artifacts\n  reproml bugs status --corpus corpus.json --artifacts artifacts"
    )]
    Build {
        /// The recipe (TOML: name, repository, buggy, corrected, command, [env]).
        recipe: PathBuf,
        /// Folder for worktrees, outputs, logs and provenance.
        #[arg(long, default_value = "artifacts")]
        dir: PathBuf,
        /// Print both sides' provenance as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `reproml artifact` subcommand.
pub fn run(cmd: ArtifactCommand) -> Result<()> {
    let ArtifactCommand::Build { recipe, dir, json } = cmd;
    let text = crate::files::read_text_file(&recipe, 1 << 20, "recipe file")?;
    let recipe = Recipe::from_toml(&text, &recipe.display().to_string())?;
    let built = build(&recipe, &dir)?;
    if json {
        return crate::output::print_json(&built);
    }
    for p in built {
        if p.succeeded {
            println!(
                "{:<10} {} built: {} (digest {})",
                p.side,
                &p.commit[..p.commit.len().min(12)],
                p.out.display(),
                p.output_digest
            );
        } else {
            println!(
                "{:<10} {} FAILED ({}); skipped — see {}",
                p.side,
                &p.commit[..p.commit.len().min(12)],
                p.status,
                p.log.display()
            );
        }
    }
    Ok(())
}
