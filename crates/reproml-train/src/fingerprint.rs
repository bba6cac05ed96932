//! The runtime's fingerprint: everything that can change what a run computes.

use std::collections::BTreeMap;

use crate::fault::Fault;

/// burn as resolved in this build (`burn-tensor`'s version: the facade is
/// pinned, its sub-crates resolve on their own).
pub const BURN_VERSION: &str = env!("REPROML_BURN_RESOLVED");
/// The compute stack: how many registry crates the engine depends on and
/// a digest of their names, versions and checksums (see `build.rs`).
pub const STACK: &str = env!("REPROML_STACK");
/// A digest of the sources that decide what a run computes.
pub const SOURCE: &str = env!("REPROML_SOURCE");
/// The git commit this build was made from (`-dirty` when the tree
/// differed; `unknown` outside a git checkout).
pub const COMMIT: &str = env!("REPROML_COMMIT");

/// The fingerprint keys a run's results depend on: a variant's runs must
/// all have the same values for them (the server checks, from the
/// fingerprint's `fixed` entry). The thread count is not among them: this
/// engine's results do not depend on it. `dataset` (the digest of the data
/// set the run's splits came from) is filled in by the runner, which
/// fetched them. `gpu` (the GPU's model; absent on the CPU) is fixed
/// because a GPU's kernels and their rounding can differ between models.
pub const FIXED_KEYS: &[&str] = &[
    "backend",
    "gpu",
    "burn",
    "burn-flex",
    "stack",
    "source",
    "rustc",
    "target",
    "dataset",
];

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
    // cubecl (burn's GPU backends) picks kernels by timing them.
    "CUBECL_AUTOTUNE_LEVEL",
    "CUBECL_AUTOTUNE_CACHE",
];

/// The fingerprint of this process for a run on `backend` with `fault`.
pub fn fingerprint(backend: &str, fault: &Fault) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("reproml".into(), env!("CARGO_PKG_VERSION").into());
    f.insert("burn".into(), BURN_VERSION.into());
    f.insert("burn-flex".into(), env!("REPROML_BURN_FLEX").into());
    f.insert("stack".into(), STACK.into());
    f.insert("source".into(), SOURCE.into());
    f.insert("commit".into(), COMMIT.into());
    f.insert("fixed".into(), FIXED_KEYS.join(","));
    f.insert("rustc".into(), env!("REPROML_RUSTC_VERSION").into());
    f.insert("target".into(), env!("REPROML_TARGET").into());
    f.insert("backend".into(), backend.into());
    f.insert("fault".into(), fault.to_string());
    f.extend(crate::device::fingerprint_entries());
    f.insert("threads".into(), rayon::current_num_threads().to_string());
    f.insert(
        "cores".into(),
        std::thread::available_parallelism().map_or("unknown".into(), |n| n.to_string()),
    );
    f.insert("os".into(), std::env::consts::OS.into());
    if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        f.insert("kernel".into(), kernel.trim().into());
    }
    f.insert("cpu_caches".into(), gemm_caches());
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

/// The three cache levels as gemm sees them (size, ways, line), from which
/// it chooses how long a block of each sum is: two machines with the same
/// instruction set but other caches can sum in other blocks, and so give
/// other bits. A comparison lists a difference here as a confound.
fn gemm_caches() -> String {
    gemm_common::cache::CACHE_INFO
        .iter()
        .zip(["L1", "L2", "L3"])
        .map(|(c, level)| {
            format!(
                "{level} {} KiB {}-way {} B",
                c.cache_bytes / 1024,
                c.associativity,
                c.cache_line_bytes
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn cpu_features() -> Vec<&'static str> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { out.push($f); } )* };
        }
        // gemm's AVX-512 kernels need all five avx512 parts (pulp's V4).
        probe!(
            "sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq",
            "avx512vl", "f16c", "sha"
        );
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
