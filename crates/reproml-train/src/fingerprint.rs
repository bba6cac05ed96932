//! The runtime's fingerprint: everything that can change what a run computes.

use std::collections::BTreeMap;

use crate::fault::Fault;

/// Version of burn this build is pinned to.
pub const BURN_VERSION: &str = "0.22.0";

/// Environment variables that can change numerical results.
const RELEVANT_ENV: &[&str] = &[
    "RAYON_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "RUSTFLAGS",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDA_VISIBLE_DEVICES",
];

/// The fingerprint of this process for a run on `backend` with `fault`.
pub fn fingerprint(backend: &str, fault: &Fault) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("reproml".into(), env!("CARGO_PKG_VERSION").into());
    f.insert("burn".into(), BURN_VERSION.into());
    f.insert("rustc".into(), env!("REPROML_RUSTC_VERSION").into());
    f.insert("target".into(), env!("REPROML_TARGET").into());
    f.insert("backend".into(), backend.into());
    f.insert("fault".into(), fault.to_string());
    f.insert("threads".into(), rayon::current_num_threads().to_string());
    f.insert(
        "cores".into(),
        std::thread::available_parallelism().map_or("unknown".into(), |n| n.to_string()),
    );
    f.insert("os".into(), std::env::consts::OS.into());
    if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        f.insert("kernel".into(), kernel.trim().into());
    }
    if let Some(cpu) = cpu_model() {
        f.insert("cpu".into(), cpu);
    }
    f.insert("cpu_features".into(), cpu_features().join(" "));
    for &var in RELEVANT_ENV {
        if let Ok(value) = std::env::var(var) {
            f.insert(format!("env.{var}"), value.chars().take(1024).collect());
        }
    }
    f
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn cpu_features() -> Vec<&'static str> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { out.push($f); } )* };
        }
        probe!("sse4.2", "avx", "avx2", "fma", "avx512f", "f16c", "sha");
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($f) { out.push($f); } )* };
        }
        probe!("neon", "fp16", "sve");
    }
    out
}
