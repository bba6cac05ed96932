//! The Indexed Job of a side against its golden file
//! (`REPROML_BLESS=1 cargo test -p reproml-runner --test kubernetes`
//! rewrites it after an intended change).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use reproml_client::Experiment;
use reproml_core::RunIndex;
use reproml_core::fault::Fault;
use reproml_runner::kubernetes::{KubernetesSettings, indexed_job};
use reproml_runner::slurm::{TaskSettings, side_job};
use reproml_study::ArtifactSpec;
use reproml_train::device::ComputeDevice;

fn experiment() -> Experiment {
    Experiment {
        spec: reproml_core::ExperimentSpec::from_toml(
            "id = \"cal-b1\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 4\n",
            "test",
        )
        .unwrap(),
        seeds: Vec::new(),
        created_at: String::new(),
    }
}

fn check(name: &str, value: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("REPROML_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        golden,
        "{} differs (REPROML_BLESS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn a_builtin_side_is_one_indexed_job_with_a_completion_index_per_run() {
    let job = side_job(
        &experiment(),
        &"buggy".parse().unwrap(),
        &ArtifactSpec::Builtin {
            fault: Some(Fault::MomentumIgnored),
        },
        &[0, 1, 3].map(RunIndex::new),
        &TaskSettings {
            server: "https://reproml.study.svc:7878",
            reproml: Path::new("reproml"),
            runs_per_task: 1,
            device: ComputeDevice::Cuda(0),
        },
    );
    let settings = KubernetesSettings {
        image: "registry.example/reproml:0.1.0".into(),
        secret: Some("reproml".into()),
        gpus: 1,
        parallelism: Some(2),
        retries: 2,
    };
    check("indexed-job-builtin.json", &indexed_job(&job, &settings));
}

#[test]
fn a_command_side_keeps_its_command_and_environment() {
    let job = side_job(
        &experiment(),
        &"torch-2.5".parse().unwrap(),
        &ArtifactSpec::Command {
            command: "python -m reproml.run --server {server} --experiment {experiment} --variant {variant} --runs {runs} && echo done".into(),
            env: BTreeMap::from([("OMP_NUM_THREADS".into(), "1".into())]),
        },
        &[2].map(RunIndex::new),
        &TaskSettings {
            server: "http://10.0.0.5:7878",
            reproml: Path::new("reproml"),
            runs_per_task: 1,
            device: ComputeDevice::Cpu,
        },
    );
    let settings = KubernetesSettings {
        image: "pytorch-client:2.5".into(),
        secret: None,
        gpus: 0,
        parallelism: None,
        retries: 0,
    };
    check("indexed-job-command.json", &indexed_job(&job, &settings));
}
