//! `reproml`: reproducible ML experiments and the statistics of whether a
//! framework change changes the models it trains.

mod commands;
mod connect;
mod files;
mod interrupt;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ReproduceML: reproducible ML experiments, and sound statistics on whether
/// a change in an ML framework (a bug and its fix, a release, a backend)
/// changes the models it trains.
#[derive(Debug, Parser)]
#[command(
    name = "reproml",
    version,
    long_version = long_version(),
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// No progress bars, progress lines or notes on standard error; results
    /// and errors are still printed.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// `reproml --version`: the version, the source commit and the engine's
/// build identity (what a run's artifact records).
fn long_version() -> &'static str {
    use reproml_train::fingerprint::{COMMIT, SOURCE, STACK};
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{}\ncommit {COMMIT}\nengine source {SOURCE}\nengine crates {STACK}",
            env!("CARGO_PKG_VERSION")
        )
    });
    TEXT.as_str()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole methodology in a few minutes: three comparisons on built-in data, with a report.
    Demo(commands::demo::DemoArgs),
    /// Run the server: experiments, seeds, data and results over HTTP.
    Server(commands::server::ServerArgs),
    /// Train an experiment's runs for one variant and record the results.
    Run(commands::run::RunArgs),
    /// Create, list, show and delete experiments (and variants) on a server.
    #[command(subcommand)]
    Experiment(commands::experiment::ExperimentCommand),
    /// Train one run twice and check that every parameter is bit-identical after every epoch.
    Verify(commands::verify::VerifyArgs),
    /// Compare the variants of experiments: tests, effect sizes, corrections, verdicts.
    Compare(commands::compare::CompareArgs),
    /// Write an HTML report (table, figures, exports) comparing the variants of experiments.
    Report(commands::compare::ReportArgs),
    /// Register data sets with a server's database.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Build a bug corpus from release notes (the study's data collection).
    #[command(subcommand)]
    Bugs(commands::bugs::BugsCommand),
    /// Build a bug's buggy and corrected revisions from source, with provenance.
    #[command(subcommand)]
    Artifact(commands::artifact::ArtifactCommand),
    /// Run a study: every bug's buggy and corrected variants, then the report.
    #[command(subcommand)]
    Study(commands::study::StudyCommand),
    /// Check and print experiment specs (TOML files describing an experiment).
    #[command(subcommand)]
    Spec(commands::spec::SpecCommand),
    /// Show the seeds an experiment's runs get from a master seed.
    Seeds(commands::seeds::SeedsArgs),
    /// Plan a study: the runs per side needed to detect an effect, by
    /// simulating the study's own test on pilot runs or a given spread.
    Plan(commands::plan::PlanArgs),
    /// Run a statistical test on two samples (results agree with SciPy).
    #[command(subcommand)]
    Stats(commands::stats::StatsCommand),
}

/// Logs go to standard error: the server logs every request (`info`);
/// other commands only what went wrong inside an embedded server (`warn`).
/// `REPROML_LOG` (e.g. `debug`, `reproml_server=info`) overrides.
fn init_logging(command: &Command) {
    let default = match command {
        Command::Server(_) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPROML_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_ansi(output::colour_on_stderr())
        .try_init();
}

/// Standard error that drops what it cannot write: a server whose
/// terminal or log pipe went away must go on serving, not fail a request
/// because its log line had nowhere to go.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_quiet(cli.quiet);
    init_logging(&cli.command);
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Server(args) => commands::server::run(args),
        Command::Data(cmd) => commands::data::run(cmd),
        Command::Run(args) => commands::run::run(args),
        Command::Experiment(cmd) => commands::experiment::run(cmd),
        Command::Compare(args) => commands::compare::run_compare(args),
        Command::Report(args) => commands::compare::run_report(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Bugs(cmd) => commands::bugs::run(cmd),
        Command::Study(cmd) => commands::study::run(cmd),
        Command::Artifact(cmd) => commands::artifact::run(cmd),
        Command::Spec(cmd) => commands::spec::run(cmd),
        Command::Seeds(args) => commands::seeds::run(&args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Stats(cmd) => commands::stats::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<output::Exit>() {
            Some(exit) => {
                eprintln!("{}", exit.message);
                ExitCode::from(exit.code)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
