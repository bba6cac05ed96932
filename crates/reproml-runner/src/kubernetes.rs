//! Studies on Kubernetes: each side's missing runs as one Indexed Job
//! (one completion index per array task, as on Slurm), written as JSON
//! manifests (`kubectl apply -f DIR` reads them) for the user to apply.
//! The tasks are those of [`crate::slurm::side_job`]; a completed index is
//! a recorded run, so applying the manifests again after a failure only
//! trains what the server still lacks once regenerated.

use serde_json::{Value, json};

use crate::slurm::SideJob;

/// What every Job of a study asks Kubernetes for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The container image holding `reproml` (or the side's client).
    pub image: String,
    /// A Secret with the server's token (`token`) and, for a private CA,
    /// its certificate (`ca.pem`), mounted at `/etc/reproml`.
    pub secret: Option<String>,
    /// GPUs per pod (`nvidia.com/gpu`), none when 0.
    pub gpus: u32,
    /// Pods of one Job running at once (default: all).
    pub parallelism: Option<u32>,
    /// Tries of each index before the Job gives it up.
    pub retries: u32,
}

/// A Kubernetes object name from `text`: lowercase letters, digits and
/// `-`, at most 63 characters, starting and ending alphanumeric (RFC 1123
/// labels), with a digest suffix when it had to change, so that two sides
/// never share a name.
pub fn object_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    if name != text || name.len() > 63 {
        use sha2::Digest as _;
        let digest = reproml_core::hex(&sha2::Sha256::digest(text.as_bytes()));
        name.truncate(54);
        name = format!("{}-{}", name.trim_matches('-'), &digest[..8]);
    }
    name.trim_matches('-').to_owned()
}

/// The Indexed Job of one side: completion index `i` runs task `i`.
pub fn indexed_job(job: &SideJob, settings: &KubernetesSettings) -> Value {
    let name = object_name(&format!("reproml-{}-{}", job.experiment, job.variant));
    let mut script = String::from("set -eu\ncase \"$JOB_COMPLETION_INDEX\" in\n");
    for (i, task) in job.tasks.iter().enumerate() {
        script.push_str(&format!(
            "  {i}) exec sh -c {} ;;\n",
            crate::slurm::quote(task)
        ));
    }
    script.push_str("  *) echo \"no task $JOB_COMPLETION_INDEX\" >&2; exit 2 ;;\nesac\n");
    let mut env: Vec<Value> = job
        .env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    let mut container = json!({
        "name": "run",
        "image": settings.image,
        "command": ["sh", "-c", script],
    });
    let mut pod = json!({ "restartPolicy": "Never", "containers": [] });
    if let Some(secret) = &settings.secret {
        env.push(json!({ "name": "REPROML_TOKEN_FILE", "value": "/etc/reproml/token" }));
        env.push(json!({ "name": "REPROML_CA_CERT", "value": "/etc/reproml/ca.pem" }));
        container["volumeMounts"] =
            json!([{ "name": "reproml", "mountPath": "/etc/reproml", "readOnly": true }]);
        pod["volumes"] = json!([{ "name": "reproml", "secret": { "secretName": secret } }]);
    }
    container["env"] = Value::Array(env);
    if settings.gpus > 0 {
        container["resources"] = json!({ "limits": { "nvidia.com/gpu": settings.gpus } });
    }
    pod["containers"] = json!([container]);
    let tasks = job.tasks.len();
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "reproml",
                "reproml/experiment": object_name(job.experiment.as_str()),
                "reproml/side": object_name(job.variant.as_str()),
            },
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": tasks,
            "parallelism": settings.parallelism.map_or(tasks, |p| p as usize),
            "backoffLimitPerIndex": settings.retries,
            "maxFailedIndexes": tasks,
            "template": { "spec": pod },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_and_stay_apart() {
        assert_eq!(object_name("reproml-cal-b1-buggy"), "reproml-cal-b1-buggy");
        let (a, b) = (object_name("reproml-Cal_b1"), object_name("reproml-cal-b1"));
        assert_ne!(a, b);
        assert!(a.starts_with("reproml-cal-b1-") && a.len() <= 63, "{a}");
        let long = object_name(&"x.".repeat(60));
        assert!(
            long.len() <= 63 && !long.starts_with('-') && !long.ends_with('-'),
            "{long}"
        );
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
