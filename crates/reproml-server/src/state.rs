//! What every handler shares: the store, the loaded data sets, the token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use reproml_api::ProblemCode;
use reproml_data::Dataset;
use reproml_data::serve::DatasetFacts;
use reproml_store::Store;

use crate::error::ApiError;
use crate::{ServerConfig, ServerError};

/// A data set in memory with what is derived from it once.
pub struct LoadedDataset {
    /// The examples.
    pub dataset: Dataset,
    /// Its digest and normalisation.
    pub facts: DatasetFacts,
}

struct Inner {
    store: Mutex<Store>,
    datasets: Mutex<HashMap<String, Arc<LoadedDataset>>>,
    token: Option<String>,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Opens the database of `config`.
    pub fn open(config: &ServerConfig) -> Result<Self, ServerError> {
        let store = Store::open(&config.db, config.master_seed)?;
        Ok(Self(Arc::new(Inner {
            store: Mutex::new(store),
            datasets: Mutex::new(HashMap::new()),
            token: config.token.clone(),
        })))
    }

    /// The master seed of the database.
    pub fn master_seed(&self) -> u64 {
        self.lock_store().master_seed()
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    fn lock_store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (every write is a transaction), so a poisoned lock is still usable.
        self.0.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the store on a blocking thread.
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = self.clone();
        // The blocking thread logs under the request's span (its id).
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&mut state.lock_store())))
            .await
            .map_err(ApiError::internal)?
    }

    /// The data set of a challenge: a registered one (checked against its
    /// recorded digest) or a built-in one; loaded once, then cached.
    pub(crate) async fn dataset(&self, name: &str) -> Result<Arc<LoadedDataset>, ApiError> {
        if let Some(d) = self
            .0
            .datasets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(d.clone());
        }
        let state = self.clone();
        let name = name.to_owned();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _request = span.enter();
            let record = state.lock_store().dataset(&name)?;
            let dataset = match &record {
                Some(r) => reproml_data::load(r.format, Path::new(&r.path)),
                None => reproml_data::builtin(&name),
            }
            .map_err(|e| ApiError::new(ProblemCode::DatasetUnavailable, e.to_string()))?;
            let facts = DatasetFacts::of(&dataset);
            if let Some(r) = &record
                && r.digest != facts.digest
            {
                return Err(ApiError::new(
                    ProblemCode::DatasetChanged,
                    format!(
                        "the files of data set {name:?} at {} changed since they were imported (digest {} now, {} then); \
                         restore them or import them again under a new name",
                        r.path, facts.digest, r.digest
                    ),
                ));
            }
            let loaded = Arc::new(LoadedDataset { dataset, facts });
            state
                .0
                .datasets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name, loaded.clone());
            Ok(loaded)
        })
        .await
        .map_err(ApiError::internal)?
    }
}
