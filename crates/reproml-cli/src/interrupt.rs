//! Ctrl-C while runs are trained: the process stops at once (a run in
//! training is lost, every recorded run is on the server), but first says
//! how many of the command's runs are recorded and that the same command
//! resumes, because recorded runs are never trained again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use reproml_client::Client;
use reproml_core::selection::RunSelection;
use reproml_core::{ExperimentId, VariantLabel};

/// The runs a command trains: per experiment and variant, the selection.
pub type Wanted = Vec<(ExperimentId, VariantLabel, RunSelection)>;

/// How long the count may take before the message goes without it: a
/// server that does not answer must not keep Ctrl-C from working.
const COUNT_TIMEOUT: Duration = Duration::from_secs(3);

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// On Ctrl-C (SIGINT), prints `interrupted: 23/40 runs
/// recorded; run the same command again to resume` (counted by the
/// server) and exits with status 130. Installed once per process; a
/// later call is ignored.
pub fn on_interrupt(client: &Client, wanted: Wanted) {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let client = client.clone();
    let result = ctrlc::set_handler(move || {
        let (sender, receiver) = mpsc::channel();
        let (client, wanted) = (client.clone(), wanted.clone());
        std::thread::spawn(move || {
            let _ = sender.send(count(&client, &wanted));
        });
        let message = match receiver.recv_timeout(COUNT_TIMEOUT) {
            Ok(Some((recorded, total))) => format!(
                "interrupted: {recorded}/{total} runs recorded; run the same command again to resume"
            ),
            _ => "interrupted; run the same command again to resume (recorded runs are kept)"
                .to_owned(),
        };
        // On a terminal, a line of its own below the bar being drawn.
        if crate::progress::Mode::detect() == crate::progress::Mode::Bars {
            eprintln!();
        }
        eprintln!("{message}");
        std::process::exit(i32::from(crate::output::EXIT_INTERRUPTED));
    });
    if let Err(e) = result {
        eprintln!("warning: cannot catch Ctrl-C ({e}); it will stop reproml without a summary");
    }
}

/// Recorded runs among `wanted`, and how many are wanted; `None` when the
/// server cannot say.
fn count(client: &Client, wanted: &Wanted) -> Option<(usize, usize)> {
    let (mut recorded, mut total) = (0, 0);
    for (experiment, variant, runs) in wanted {
        total += runs.len();
        let done = match client.runs(experiment, Some(variant)) {
            Ok(done) => done,
            // An experiment the command had not created yet.
            Err(e) if e.code() == Some(reproml_api::ProblemCode::ExperimentNotFound) => continue,
            Err(_) => return None,
        };
        recorded += done.iter().filter(|r| runs.contains(r.run.get())).count();
    }
    Some((recorded, total))
}
