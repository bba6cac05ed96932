//! ReproduceML's training engine: the only crate that depends on burn.
//!
//! Bitwise-repeatable training on the CPU (burn's flex backend): every
//! random choice comes from the run's streams (`reproml-core`), never from
//! the engine — initial weights and dropout masks are drawn on the host —
//! and the epoch order comes from the server's split. After every epoch the
//! parameters are digested, so two runs can be compared bit for bit.

pub mod digest;
pub mod fault;
pub mod fingerprint;
pub mod model;
pub mod models;
pub mod trainer;

pub use fault::Fault;
pub use model::{ModelError, ModelRegistry, Network};
pub use trainer::{EpochProgress, PreparedSplit, RunSettings, Trained, train};

/// Sets the number of threads burn's CPU kernels use (the global rayon
/// pool), once, before the first training; results do not depend on it.
/// Returns the number in force (an earlier setting wins).
pub fn configure_threads(threads: usize) -> usize {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global();
    rayon::current_num_threads()
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
    /// The loss became NaN or infinite.
    #[error("training diverged in epoch {epoch} (the loss is not finite); lower the learning rate")]
    Diverged {
        /// Epoch, from 1.
        epoch: u32,
    },
}
