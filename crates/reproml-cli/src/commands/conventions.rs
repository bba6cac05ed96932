//! `reproml completions` and `reproml man`: what a packaged command line
//! tool ships, generated from the same clap definitions as `--help`, so
//! they cannot drift from it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

/// Arguments of `reproml completions`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  reproml completions bash > ~/.local/share/bash-completion/completions/reproml
  reproml completions zsh > ~/.zfunc/_reproml
  reproml completions fish > ~/.config/fish/completions/reproml.fish")]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

/// Arguments of `reproml man`.
#[derive(Debug, Args)]
#[command(after_long_help = "Examples:
  reproml man | man -l -
  reproml man --dir ~/.local/share/man/man1 && man reproml-study")]
pub struct ManArgs {
    /// Write `reproml.1` and one page per command (`reproml-run.1`, …) into
    /// this folder instead of printing `reproml.1`.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs, mut cli: clap::Command) {
    let name = cli.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cli, name, &mut std::io::stdout());
}

/// Prints or writes the man pages.
pub fn man(args: &ManArgs, cli: clap::Command) -> Result<()> {
    let Some(dir) = &args.dir else {
        clap_mangen::Man::new(cli).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pages = pages(cli);
    for (name, page) in &pages {
        let path = dir.join(format!("{name}.1"));
        let mut bytes = Vec::new();
        page.render(&mut bytes)?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{} man pages written to {}", pages.len(), dir.display());
    Ok(())
}

/// `reproml` and every command under it, named `reproml-run`,
/// `reproml-study-run`, … as git names its pages.
fn pages(cli: clap::Command) -> Vec<(String, clap_mangen::Man)> {
    let mut cli = cli;
    cli.build();
    let mut out = Vec::new();
    collect(&cli, cli.get_name(), &mut out);
    out
}

fn collect(cmd: &clap::Command, name: &str, out: &mut Vec<(String, clap_mangen::Man)>) {
    let page = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    out.push((name.to_owned(), clap_mangen::Man::new(page)));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        collect(sub, &format!("{name}-{}", sub.get_name()), out);
    }
}
