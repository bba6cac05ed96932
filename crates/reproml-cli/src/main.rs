//! `reproml`: reproducible ML experiments and the statistics of whether a
//! framework change changes the models it trains.

mod commands;
mod connect;
mod files;
mod interrupt;
mod output;
mod progress;
mod studies;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    #[command(
        after_long_help = "Examples:\n  reproml demo\n  reproml demo --count 10 --epochs 10 --dir /tmp/quick-demo\n  reproml demo --data fashion-mnist"
    )]
    Demo(commands::demo::DemoArgs),
    /// Run the server: experiments, seeds, data and results over HTTP.
    #[command(
        after_long_help = "Examples:\n  reproml server\n  reproml server --db study.db --listen 127.0.0.1:9000\n  reproml server --listen 0.0.0.0:7878 --token-file token.txt \\\n      --tls-cert server.pem --tls-key server.key"
    )]
    Server(commands::server::ServerArgs),
    /// Train an experiment's runs for one variant and record the results.
    #[command(
        after_long_help = "Examples:\n  reproml run --embedded --experiment lenet --spec examples/digits-lenet5.toml \\\n      --variant corrected\n  reproml run --server http://127.0.0.1:7878 --experiment lenet --variant buggy \\\n      --runs 0..10 --jobs 2\n  REPROML_SERVER=http://127.0.0.1:7878 reproml run --experiment lenet --variant buggy \\\n      --json > runs.jsonl"
    )]
    Run(commands::run::RunArgs),
    /// Create, list, show and delete experiments (and variants) on a server.
    #[command(subcommand)]
    Experiment(commands::experiment::ExperimentCommand),
    /// Train one run twice and check that every parameter is bit-identical after every epoch.
    #[command(
        after_long_help = "Examples:\n  reproml verify --embedded --experiment lenet --spec examples/digits-lenet5.toml\n  reproml verify --server http://127.0.0.1:7878 --experiment lenet --run 3 --json"
    )]
    Verify(commands::verify::VerifyArgs),
    /// Compare the variants of experiments: tests, effect sizes, corrections, verdicts.
    #[command(
        after_long_help = "Examples:\n  reproml compare --embedded --db study.db conv-bug\n  reproml compare --server http://127.0.0.1:7878 --prefix calibration- --json\n  reproml compare --csv-in runs.csv --variants torch-1.13,torch-2.15,burn --all-pairs\n  reproml compare --db study.db conv-bug --fail-on-difference  # status 3 on a difference"
    )]
    Compare(commands::compare::CompareArgs),
    /// Write an HTML report (table, figures, exports) comparing the variants of experiments.
    #[command(
        after_long_help = "Examples:\n  reproml report --embedded --db study.db --prefix calibration- --out calibration-report\n  reproml report --csv-in runs.csv --title \"conv2d gradient fix\" --json"
    )]
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
    /// Replication packages: export a study's records, verify one (re-deriving its report,
    /// re-training runs), import one to browse.
    #[command(subcommand)]
    Bundle(commands::bundle::BundleCommand),
    /// Check and print experiment specs (TOML files describing an experiment).
    #[command(subcommand)]
    Spec(commands::spec::SpecCommand),
    /// Show the seeds an experiment's runs get from a master seed.
    #[command(
        after_long_help = "Examples:\n  reproml seeds --experiment lenet --master-seed 2026 --count 5\n  reproml seeds --experiment lenet --master-seed 2026 --count 30 --policy fixed --json"
    )]
    Seeds(commands::seeds::SeedsArgs),
    /// Plan a study: the runs per side needed to detect an effect, by
    /// simulating the study's own test on pilot runs or a given spread.
    Plan(commands::plan::PlanArgs),
    /// Run a statistical test on two samples (results agree with SciPy).
    #[command(subcommand)]
    Stats(commands::stats::StatsCommand),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::conventions::CompletionsArgs),
    /// Print the man page, or write one per command into a folder.
    Man(commands::conventions::ManArgs),
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

/// Output piped into a program that stopped reading (`reproml … | head`)
/// ends the process quietly, as it does other Unix tools, instead of a
/// panic about a broken pipe from `println!`.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The message is formatted lazily: its Display, not its payload.
        let text = info.to_string();
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            // 128 + SIGPIPE, what a shell reports for a process the signal ended.
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    // A long-lived server gives memory back; everything else may train, and
    // a training step reuses what the last one freed (allocator.rs).
    if !matches!(cli.command, Command::Server(_)) {
        // SAFETY: nothing before this line starts a thread (a panic hook
        // and argument parsing), so no other thread exists yet.
        #[allow(unsafe_code)]
        unsafe {
            reproml_train::allocator::keep_freed_memory();
        }
    }
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
        Command::Bundle(cmd) => commands::bundle::run(cmd),
        Command::Artifact(cmd) => commands::artifact::run(cmd),
        Command::Spec(cmd) => commands::spec::run(cmd),
        Command::Seeds(args) => commands::seeds::run(&args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Stats(cmd) => commands::stats::run(cmd),
        Command::Completions(args) => {
            commands::conventions::completions(&args, Cli::command());
            Ok(())
        }
        Command::Man(args) => commands::conventions::man(&args, Cli::command()),
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

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command the user can run, as its words after `reproml`.
    fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push(path);
            return;
        }
        for sub in subs {
            let mut next = path.clone();
            next.push(sub.get_name().to_owned());
            leaves(sub, next, out);
        }
    }

    /// The words of an example's command line: environment assignments
    /// dropped, cut at a pipe, redirection, `&&` or comment; double quotes
    /// group words.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let (mut word, mut quoted) = (String::new(), false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                _ => word.push(c),
            }
        }
        words.push(word);
        let end = words
            .iter()
            .position(|w| ["|", ">", "&&", "#"].contains(&w.as_str()))
            .unwrap_or(words.len());
        words.truncate(end);
        words.retain(|w| !w.is_empty());
        let start = words.iter().position(|w| w == "reproml").unwrap_or(0);
        words.split_off(start)
    }

    #[test]
    fn every_command_shows_examples_and_every_example_parses() {
        let mut all = Vec::new();
        leaves(&Cli::command(), Vec::new(), &mut all);
        assert!(all.len() > 25, "{all:?}");
        let mut without = Vec::new();
        for path in all {
            let mut args = vec!["reproml".to_owned()];
            args.extend(path.iter().cloned());
            args.push("--help".into());
            let err = Cli::try_parse_from(&args).unwrap_err();
            // An example continued on the next line (` \\`) is one line.
            let help = err.to_string().replace(" \\\n", " ");
            let examples: Vec<Vec<String>> = help
                .lines()
                .map(str::trim)
                .map(|l| l.strip_prefix("Example: ").unwrap_or(l))
                .filter(|l| {
                    l.starts_with("reproml ")
                        || l.split_once(" reproml ").is_some_and(|(env, _)| {
                            env.split(' ').all(|w| w.contains('=') && !w.contains('-'))
                        })
                })
                .map(words)
                .collect();
            if examples.is_empty() {
                without.push(path.join(" "));
            }
            for example in examples {
                // `reproml man | man -l -` and the like: the words after
                // `reproml` up to the pipe.
                if let Err(e) = Cli::try_parse_from(&example) {
                    panic!("the example `{}` does not parse: {e}", example.join(" "));
                }
            }
        }
        assert!(
            without.is_empty(),
            "commands without an example: {without:?}"
        );
    }
}
