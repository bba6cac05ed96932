//! `reproml spec`: validate and normalise experiment specs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

/// What `reproml spec` can do.
#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Validate a spec and print it with every default written out.
    ///
    /// Exits with status 1 and one line per problem (file:line:column, the
    /// key, what is wrong and what is allowed) when the spec is invalid.
    #[command(
        after_long_help = "Examples:\n  reproml spec check examples/digits-lenet5.toml\n  reproml spec check my-spec.toml --json"
    )]
    Check {
        /// The spec file (TOML).
        file: PathBuf,
        /// Print the normalised spec as JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Print a commented example spec with every key and its default.
    #[command(after_long_help = "Examples:\n  reproml spec example > my-spec.toml")]
    Example,
}

/// Runs a `reproml spec` subcommand.
pub fn run(cmd: SpecCommand) -> Result<()> {
    match cmd {
        SpecCommand::Check { file, json } => {
            let spec = crate::files::load_spec(&file)?;
            // Data sets imported into a server are not known here: only
            // the model is checked, the challenge is left to the server.
            if let Err(problems) = spec.check_names(&[spec.challenge.as_str()]) {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {p}", file.display()))
                    .collect();
                anyhow::bail!("{}", lines.join("\n"));
            }
            if !reproml_core::spec::BUILTIN_CHALLENGES.contains(&spec.challenge.as_str()) {
                eprintln!(
                    "note: challenge {:?} is not built in; the server must have it imported (`reproml data import`)",
                    spec.challenge.as_str()
                );
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&spec)?);
            } else {
                print!("{}", spec.to_toml());
            }
            Ok(())
        }
        SpecCommand::Example => {
            print!("{EXAMPLE}");
            Ok(())
        }
    }
}

const EXAMPLE: &str = include_str!("../../../../examples/annotated.toml");

#[cfg(test)]
mod tests {
    use super::*;
    use reproml_core::ExperimentSpec;

    #[test]
    fn the_annotated_example_is_a_valid_spec() {
        ExperimentSpec::from_toml(EXAMPLE, "annotated.toml").unwrap();
    }
}
