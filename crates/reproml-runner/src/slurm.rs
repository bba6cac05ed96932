//! Studies on a Slurm cluster: each side's missing runs become one job
//! array whose tasks train their share of the runs against the study's
//! server, then the driver waits, resubmits what is still missing (up to
//! the study's retries) and leaves the comparison to the caller, as the
//! local driver does.
//!
//! Nothing here keeps state of its own: what is missing is always asked
//! of the server, so a cancelled array, a node that died or a second
//! `study run` only ever leads to the missing runs being trained; and a
//! run trained twice (two arrays at once) is recorded once, the server
//! answering the identical result as already there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reproml_client::{Client, Experiment};
use reproml_core::fault::Fault;
use reproml_core::selection::RunSelection;
use reproml_core::{ExperimentId, RunIndex, VariantLabel};
use reproml_study::{ArtifactSpec, SlurmSettings, Study};
use reproml_train::device::ComputeDevice;

use crate::pool::missing_runs;
use crate::study::{StudyOutcome, command_line, study_sides};
use crate::{Event, Observer, RunnerError};

/// How a study is put on Slurm.
#[derive(Debug, Clone)]
pub struct SlurmRun {
    /// What every job asks for (the study's `[slurm]`, flags applied).
    pub settings: SlurmSettings,
    /// Where job scripts and task logs go (a folder every node can write,
    /// on a shared file system).
    pub dir: PathBuf,
    /// The `reproml` binary the tasks of built-in sides run (its path on
    /// the compute nodes).
    pub reproml: PathBuf,
    /// Submit the jobs; `false` writes the scripts only (`--executor
    /// print`).
    pub submit: bool,
    /// How often Slurm and the server are asked how far the jobs are.
    pub poll: Duration,
    /// Variables every task needs whatever the cluster's `--export`
    /// policy: the token file's and CA certificate's paths
    /// (`REPROML_TOKEN_FILE`, `REPROML_CA_CERT`), never the token itself.
    pub env: BTreeMap<String, String>,
    /// Where built-in sides train.
    pub device: ComputeDevice,
}

/// Why a job script cannot be written from these settings: every value
/// goes into a shell script run on the compute nodes.
pub fn check_settings(settings: &SlurmSettings) -> Result<(), RunnerError> {
    for (flag, value) in [
        ("partition", &settings.partition),
        ("time", &settings.time),
        ("gres", &settings.gres),
    ] {
        if let Some(value) = value
            && (value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:,=+/".contains(c)))
        {
            return Err(slurm_error(
                &format!("[slurm] {flag} = {value:?}"),
                "use letters, digits and - _ . : , = + / only (it becomes an #SBATCH line)",
            ));
        }
    }
    if let Some(line) = settings
        .extra
        .iter()
        .find(|l| !l.starts_with("#SBATCH ") || l.contains(['\n', '\r']))
    {
        return Err(slurm_error(
            &format!("[slurm] extra line {line:?}"),
            "each extra line is one `#SBATCH --option` line",
        ));
    }
    Ok(())
}

/// Whether `key` can be a shell variable's name.
fn variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One side's job array: the command each task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideJob {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The side.
    pub variant: VariantLabel,
    /// Per array task, its shell command line.
    pub tasks: Vec<String>,
    /// Environment the side's artifact sets.
    pub env: BTreeMap<String, String>,
}

/// Quotes `text` for `sh`.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What the tasks of every side of a study share, on Slurm or Kubernetes.
#[derive(Debug, Clone, Copy)]
pub struct TaskSettings<'a> {
    /// The server's URL as the compute nodes reach it.
    pub server: &'a str,
    /// The `reproml` binary the tasks of built-in sides run (its path on
    /// the compute nodes).
    pub reproml: &'a Path,
    /// Runs each task trains.
    pub runs_per_task: u32,
    /// Where built-in sides train (`reproml run --device`). Other sides'
    /// clients choose their own device.
    pub device: ComputeDevice,
}

/// The array tasks of one side: `missing` runs in chunks of
/// `runs_per_task`, each chunk a run selection the side's client reads.
pub fn side_job(
    experiment: &Experiment,
    variant: &VariantLabel,
    artifact: &ArtifactSpec,
    missing: &[RunIndex],
    task: &TaskSettings<'_>,
) -> SideJob {
    let TaskSettings {
        server,
        reproml,
        runs_per_task,
        device,
    } = *task;
    let id = &experiment.spec.id;
    let chunks = missing.chunks(runs_per_task.max(1) as usize);
    let (tasks, env) = match artifact {
        ArtifactSpec::Builtin { fault } => {
            let fault = fault.as_ref().unwrap_or(&Fault::None);
            // The CPU is `run`'s default: scripts say only another.
            let device = match device {
                ComputeDevice::Cpu => String::new(),
                other => format!(" --device {}", quote(&other.to_string())),
            };
            let tasks = chunks
                .map(|runs| {
                    let runs = RunSelection::from_indices(runs.iter().map(|r| r.get()));
                    format!(
                        "{} run --server {} --experiment {} --variant {} --fault {} --runs {} --jobs 1{device} --quiet",
                        quote(&reproml.display().to_string()),
                        quote(server),
                        quote(id.as_str()),
                        quote(variant.as_str()),
                        quote(&fault.to_string()),
                        quote(&runs.to_string()),
                    )
                })
                .collect();
            (tasks, BTreeMap::new())
        }
        ArtifactSpec::Command { command, env } => (
            chunks
                .map(|runs| command_line(command, server, id, variant, runs))
                .collect(),
            env.clone(),
        ),
        ArtifactSpec::Python { env, .. } => {
            let command = artifact.python_command().unwrap_or_default();
            (
                chunks
                    .map(|runs| command_line(&command, server, id, variant, runs))
                    .collect(),
                env.clone(),
            )
        }
    };
    SideJob {
        experiment: id.clone(),
        variant: variant.clone(),
        tasks,
        env,
    }
}

/// The `sbatch` script of `job`: one array task per entry of its tasks,
/// each running its command; logs under `logs`.
pub fn job_script(job: &SideJob, settings: &SlurmSettings, logs: &Path) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let name = format!("reproml-{}-{}", job.experiment, job.variant);
    s.push_str(&format!("#SBATCH --job-name={name}\n"));
    s.push_str(&format!(
        "#SBATCH --array=0-{}\n",
        job.tasks.len().saturating_sub(1)
    ));
    s.push_str(&format!(
        "#SBATCH --output={}/{name}-%A_%a.log\n",
        logs.display()
    ));
    s.push_str("#SBATCH --ntasks=1\n");
    for (flag, value) in [
        ("partition", &settings.partition),
        ("time", &settings.time),
        ("gres", &settings.gres),
    ] {
        if let Some(value) = value {
            s.push_str(&format!("#SBATCH --{flag}={value}\n"));
        }
    }
    for line in &settings.extra {
        s.push_str(line.trim());
        s.push('\n');
    }
    s.push_str(
        "# Written by `reproml study run --executor slurm`: each task trains its\n\
         # share of the side's missing runs against the study's server. A task\n\
         # whose runs are recorded already skips them, so resubmitting is safe.\n\
         set -euo pipefail\n",
    );
    for (key, value) in &job.env {
        if variable_name(key) {
            s.push_str(&format!("export {key}={}\n", quote(value)));
        }
    }
    s.push_str("case \"${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}\" in\n");
    for (i, task) in job.tasks.iter().enumerate() {
        s.push_str(&format!("  {i}) exec sh -c {} ;;\n", quote(task)));
    }
    s.push_str("  *) echo \"no task $SLURM_ARRAY_TASK_ID in this array\" >&2; exit 2 ;;\nesac\n");
    s
}

fn slurm_error(what: &str, message: impl Into<String>) -> RunnerError {
    RunnerError::Slurm {
        what: what.to_owned(),
        message: message.into(),
    }
}

/// Runs a Slurm command and returns its standard output.
fn slurm(program: &str, args: &[&str]) -> Result<String, RunnerError> {
    let what = format!("{program} {}", args.join(" "));
    let out = Command::new(program).args(args).output().map_err(|e| {
        slurm_error(
            &what,
            format!("{e} (is Slurm installed here, and `{program}` on the PATH?)"),
        )
    })?;
    if !out.status.success() {
        return Err(slurm_error(
            &what,
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits `script`; Slurm's job id.
pub fn submit(script: &Path) -> Result<String, RunnerError> {
    let out = slurm("sbatch", &["--parsable", &script.display().to_string()])?;
    // `--parsable` prints `id` or `id;cluster`.
    let id = out.trim().split(';').next().unwrap_or_default().to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(slurm_error("sbatch", format!("unexpected answer {out:?}")));
    }
    Ok(id)
}

/// Array tasks of `jobs` that Slurm still holds, pending and running (a
/// task that ended, however, no longer counts).
pub fn active_tasks(jobs: &[String]) -> Result<(usize, usize), RunnerError> {
    if jobs.is_empty() {
        return Ok((0, 0));
    }
    let (mut pending, mut running) = (0, 0);
    for job in jobs {
        // `-t all` would list ended tasks while Slurm remembers them; the
        // default lists the pending, running and completing ones. A job
        // Slurm has forgotten (after MinJobAge) is an error: it ended.
        let out = match slurm("squeue", &["-h", "-r", "-j", job, "-o", "%T"]) {
            Ok(out) => out,
            Err(RunnerError::Slurm { message, .. }) if message.contains("Invalid job id") => {
                continue;
            }
            Err(e) => return Err(e),
        };
        for state in out.lines().map(str::trim) {
            match state {
                "PENDING" | "REQUEUED" | "CONFIGURING" => pending += 1,
                "" => {}
                _ => running += 1,
            }
        }
    }
    Ok((pending, running))
}

/// Every environment variable name the study's sides set.
fn sides_env(study: &Study) -> impl Iterator<Item = &String> {
    study
        .bugs
        .iter()
        .flat_map(|bug| study.sides.iter().filter_map(|side| bug.artifact(side)))
        .flat_map(|artifact| match artifact {
            ArtifactSpec::Command { env, .. } | ArtifactSpec::Python { env, .. } => {
                env.keys().collect::<Vec<_>>()
            }
            ArtifactSpec::Builtin { .. } => Vec::new(),
        })
}

/// A job submitted for a side, as `jobs.json` in the study's Slurm folder
/// lists it (for `reproml study status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubmittedJob {
    /// The experiment.
    pub experiment: String,
    /// The side.
    pub variant: String,
    /// Slurm's job id.
    pub job: String,
    /// Array tasks.
    pub tasks: usize,
}

/// The jobs submitted so far from `dir` (none when there is no list).
pub fn submitted_jobs(dir: &Path) -> Vec<SubmittedJob> {
    std::fs::read(dir.join("jobs.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn record_job(
    dir: &Path,
    experiment: &Experiment,
    variant: &VariantLabel,
    job: &str,
    tasks: usize,
) -> Result<(), RunnerError> {
    let mut all = submitted_jobs(dir);
    all.push(SubmittedJob {
        experiment: experiment.spec.id.to_string(),
        variant: variant.to_string(),
        job: job.to_owned(),
        tasks,
    });
    let path = dir.join("jobs.json");
    let text = serde_json::to_vec_pretty(&all).unwrap_or_default();
    std::fs::write(&path, text)
        .map_err(|e| slurm_error(&format!("writing {}", path.display()), e.to_string()))
}

/// Puts the study's missing runs on Slurm, waits for them, resubmits what
/// is still missing up to the study's retries, and says which runs are
/// still missing in the end. With `plan.submit` false it writes the job
/// scripts and returns at once.
pub fn run_study(
    client: &Client,
    study: &Study,
    origin: &str,
    plan: &SlurmRun,
    observer: &dyn Observer,
) -> Result<StudyOutcome, RunnerError> {
    check_settings(&plan.settings)?;
    if let Some(key) = sides_env(study).find(|k| !variable_name(k)) {
        return Err(slurm_error(
            &format!("the environment variable {key:?} of a side"),
            "not a variable name (letters, digits and _, not starting with a digit)",
        ));
    }
    let logs = plan.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| {
        slurm_error(
            &format!("creating {}", logs.display()),
            format!("{e} (the folder must be writable from every node)"),
        )
    })?;
    let sides = study_sides(client, study, origin)?;
    let all = RunSelection::first(study.runs);
    for attempt in 0..=study.retries {
        let mut jobs = Vec::new();
        let mut submitted = Vec::new();
        let mut wanted = 0;
        for (experiment, variant, artifact) in &sides {
            let missing = missing_runs(client, experiment, variant, &all)?;
            if missing.is_empty() {
                continue;
            }
            if attempt > 0 {
                observer.event(Event::Retrying {
                    experiment: experiment.spec.id.clone(),
                    variant: variant.clone(),
                    attempt,
                    runs: missing.len(),
                });
            }
            wanted += study.runs as usize;
            let mut job = side_job(
                experiment,
                variant,
                artifact,
                &missing,
                &TaskSettings {
                    server: client.base(),
                    reproml: &plan.reproml,
                    runs_per_task: plan.settings.runs_per_task.unwrap_or(1),
                    device: plan.device,
                },
            );
            for (key, value) in &plan.env {
                job.env.entry(key.clone()).or_insert_with(|| value.clone());
            }
            submitted.push((experiment.clone(), variant.clone()));
            let script = plan.dir.join(format!(
                "{}-{}-{attempt}.sbatch",
                experiment.spec.id, variant
            ));
            std::fs::write(&script, job_script(&job, &plan.settings, &logs)).map_err(|e| {
                slurm_error(&format!("writing {}", script.display()), e.to_string())
            })?;
            let id = plan.submit.then(|| submit(&script)).transpose()?;
            observer.event(Event::JobSubmitted {
                experiment: experiment.spec.id.clone(),
                variant: variant.clone(),
                job: id.clone(),
                tasks: job.tasks.len(),
                script,
            });
            if let Some(id) = &id {
                record_job(&plan.dir, experiment, variant, id, job.tasks.len())?;
            }
            jobs.extend(id);
        }
        if !plan.submit || jobs.is_empty() {
            break;
        }
        wait(
            client, &submitted, study.runs, &jobs, wanted, plan.poll, observer,
        )?;
    }
    let mut outcome = StudyOutcome::default();
    for (experiment, variant, _) in &sides {
        let missing = missing_runs(client, experiment, variant, &all)?;
        if !missing.is_empty() && plan.submit {
            outcome.unfinished.push(format!(
                "{} / {variant}: runs {missing:?}",
                experiment.spec.id
            ));
        }
    }
    Ok(outcome)
}

/// Waits until Slurm holds no task of `jobs`, saying how far they are
/// whenever that changes.
fn wait(
    client: &Client,
    sides: &[(Experiment, VariantLabel)],
    runs: u32,
    jobs: &[String],
    wanted: usize,
    poll: Duration,
    observer: &dyn Observer,
) -> Result<(), RunnerError> {
    let mut last = None;
    let mut failures = 0;
    loop {
        // A controller that does not answer once (busy, restarting) is
        // asked again; three times in a row is an error.
        let (pending, running) = match active_tasks(jobs) {
            Ok(active) => {
                failures = 0;
                active
            }
            Err(_) if failures < 2 => {
                failures += 1;
                std::thread::sleep(poll);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut recorded = 0;
        for (experiment, variant) in sides {
            recorded += client
                .runs(&experiment.spec.id, Some(variant))?
                .iter()
                .filter(|r| r.run.get() < runs)
                .count();
        }
        let now = (pending, running, recorded.min(wanted));
        if last != Some(now) {
            observer.event(Event::JobsWaiting {
                pending,
                running,
                recorded: now.2,
                wanted,
            });
            last = Some(now);
        }
        if pending + running == 0 {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment() -> Experiment {
        Experiment {
            spec: reproml_core::ExperimentSpec::from_toml(
                "id = \"s-b1\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 6\n",
                "test",
            )
            .unwrap_or_else(|e| panic!("{e}")),
            seeds: Vec::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn a_builtin_side_s_missing_runs_are_split_into_array_tasks() {
        let missing: Vec<RunIndex> = [0, 1, 2, 4, 5].map(RunIndex::new).to_vec();
        let job = side_job(
            &experiment(),
            &"buggy".parse().unwrap_or_else(|e| panic!("{e}")),
            &ArtifactSpec::Builtin {
                fault: Some(Fault::MomentumIgnored),
            },
            &missing,
            &TaskSettings {
                server: "https://login01:7878",
                reproml: Path::new("/opt/reproml/bin/reproml"),
                runs_per_task: 2,
                device: ComputeDevice::Cpu,
            },
        );
        let settings = SlurmSettings {
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            gres: Some("gpu:1".into()),
            runs_per_task: Some(2),
            extra: vec!["#SBATCH --mem=4G".into()],
        };
        let script = job_script(&job, &settings, Path::new("/scratch/study/logs"));
        let expected = "#!/bin/bash
#SBATCH --job-name=reproml-s-b1-buggy
#SBATCH --array=0-2
#SBATCH --output=/scratch/study/logs/reproml-s-b1-buggy-%A_%a.log
#SBATCH --ntasks=1
#SBATCH --partition=gpu
#SBATCH --time=01:00:00
#SBATCH --gres=gpu:1
#SBATCH --mem=4G
# Written by `reproml study run --executor slurm`: each task trains its
# share of the side's missing runs against the study's server. A task
# whose runs are recorded already skips them, so resubmitting is safe.
set -euo pipefail
case \"${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}\" in
  0) exec sh -c ''\\''/opt/reproml/bin/reproml'\\'' run --server '\\''https://login01:7878'\\'' --experiment '\\''s-b1'\\'' --variant '\\''buggy'\\'' --fault '\\''momentum-ignored'\\'' --runs '\\''0-1'\\'' --jobs 1 --quiet' ;;
  1) exec sh -c ''\\''/opt/reproml/bin/reproml'\\'' run --server '\\''https://login01:7878'\\'' --experiment '\\''s-b1'\\'' --variant '\\''buggy'\\'' --fault '\\''momentum-ignored'\\'' --runs '\\''2,4'\\'' --jobs 1 --quiet' ;;
  2) exec sh -c ''\\''/opt/reproml/bin/reproml'\\'' run --server '\\''https://login01:7878'\\'' --experiment '\\''s-b1'\\'' --variant '\\''buggy'\\'' --fault '\\''momentum-ignored'\\'' --runs '\\''5'\\'' --jobs 1 --quiet' ;;
  *) echo \"no task $SLURM_ARRAY_TASK_ID in this array\" >&2; exit 2 ;;
esac
";
        assert_eq!(script, expected);
    }

    #[test]
    fn a_builtin_side_on_a_gpu_says_so_in_every_task() {
        let job = side_job(
            &experiment(),
            &"fixed".parse().unwrap_or_else(|e| panic!("{e}")),
            &ArtifactSpec::Builtin { fault: None },
            &[0, 1, 2].map(RunIndex::new),
            &TaskSettings {
                server: "http://n:1",
                reproml: Path::new("reproml"),
                runs_per_task: 2,
                device: ComputeDevice::Cuda(1),
            },
        );
        assert_eq!(
            job.tasks,
            [
                "'reproml' run --server 'http://n:1' --experiment 's-b1' --variant 'fixed' --fault 'none' --runs '0-1' --jobs 1 --device 'cuda:1' --quiet",
                "'reproml' run --server 'http://n:1' --experiment 's-b1' --variant 'fixed' --fault 'none' --runs '2' --jobs 1 --device 'cuda:1' --quiet",
            ]
        );
    }

    #[test]
    fn a_command_side_gets_its_runs_and_its_environment() {
        let job = side_job(
            &experiment(),
            &"torch".parse().unwrap_or_else(|e| panic!("{e}")),
            &ArtifactSpec::Command {
                command: "client {server} {experiment} {variant} {runs}".into(),
                env: BTreeMap::from([("OMP_NUM_THREADS".into(), "1".into())]),
            },
            &[RunIndex::new(3)],
            &TaskSettings {
                server: "http://n:1",
                reproml: Path::new("reproml"),
                runs_per_task: 1,
                device: ComputeDevice::Cuda(0),
            },
        );
        assert_eq!(job.tasks, ["client 'http://n:1' 's-b1' 'torch' '3'"]);
        let script = job_script(&job, &SlurmSettings::default(), Path::new("logs"));
        assert!(script.contains("export OMP_NUM_THREADS='1'\n"), "{script}");
        assert!(!script.contains("--partition"), "{script}");
    }
}
