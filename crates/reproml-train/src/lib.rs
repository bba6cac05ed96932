//! ReproduceML's training engine: the only crate that depends on burn.
//!
//! Bitwise-repeatable training on the CPU (burn's flex backend): every
//! random choice comes from the run's streams (`reproml-core`), never from
//! the engine — initial weights and dropout masks are drawn on the host —
//! and the epoch order comes from the server's split. After every epoch the
//! parameters are digested, so two runs can be compared bit for bit. With
//! the `cuda` feature the same models train on an NVIDIA GPU ([`device`]).

pub mod allocator;
mod conv;
#[cfg(feature = "cuda")]
mod cuda;
pub mod device;
pub mod digest;
pub mod fault;
pub mod fingerprint;
mod forward;
mod matrix;
pub mod model;
pub mod models;
mod pool;
mod scaled_sum;
pub mod trainer;
pub mod verify;

pub use fault::Fault;
pub use model::{ModelError, Network};
pub use models::ModelRegistry;
pub use trainer::{
    EpochProgress, PreparedSplit, RunSettings, Trained, builtin_artifact,
    builtin_fixed_fingerprint, train,
};

/// Runs `f` with burn's CPU kernels on a pool of `threads` threads of its
/// own, so that parallel runs never queue on each other's kernels. Results
/// do not depend on the number of threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
    {
        Ok(pool) => pool.install(f),
        // No threads to be had: run on the caller's pool.
        Err(_) => f(),
    }
}

/// Why a run could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model does not fit the challenge.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The data is unusable.
    #[error("bad training data: {0}")]
    Data(String),
    /// The engine failed.
    #[error("the training engine failed: {0}")]
    Engine(String),
    /// The compute device cannot be used.
    #[error("{0}")]
    Device(String),
    /// The loss became NaN or infinite.
    #[error("training diverged in epoch {epoch} (the loss is not finite); lower the learning rate")]
    Diverged {
        /// Epoch, from 1.
        epoch: u32,
    },
}
