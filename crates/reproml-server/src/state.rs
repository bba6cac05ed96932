//! What every handler shares: the store, the loaded data sets, the token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use reproml_api::{Experiment, ProblemCode};
use reproml_core::ExperimentId;
use reproml_data::Dataset;
use reproml_data::serve::DatasetFacts;
use reproml_store::Store;

use crate::db::Db;
use crate::error::ApiError;
use crate::{ServerConfig, ServerError};

/// Comparisons and figures computed at once; more wait their turn.
const HEAVY_AT_ONCE: usize = 2;

/// A data set in memory with what is derived from it once.
pub struct LoadedDataset {
    /// The examples.
    pub dataset: Dataset,
    /// Its digest and normalisation.
    pub facts: DatasetFacts,
}

struct Inner {
    db: Db,
    master_seed: u64,
    datasets: Mutex<HashMap<String, Arc<LoadedDataset>>>,
    /// Experiments read before: an experiment never changes until it is
    /// deleted, and every request about a run needs its seeds.
    experiments: Mutex<ExperimentCache>,
    token: Option<String>,
    allow_delete: bool,
    /// At most this many comparisons or figures are computed at once.
    heavy: tokio::sync::Semaphore,
}

/// Experiments by identifier, and a count of the deletes so far.
#[derive(Default)]
struct ExperimentCache {
    /// Each with its stamp (`Store::experiment_stamp`) when it was read.
    entries: HashMap<ExperimentId, (Arc<Experiment>, String)>,
    generation: u64,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Opens the database of `config`.
    pub fn open(config: &ServerConfig) -> Result<Self, ServerError> {
        let store = Store::open(&config.db, config.master_seed)?;
        let master_seed = store.master_seed();
        let db = Db::new(store).map_err(ServerError::Thread)?;
        Ok(Self(Arc::new(Inner {
            db,
            master_seed,
            datasets: Mutex::new(HashMap::new()),
            experiments: Mutex::new(ExperimentCache::default()),
            token: config.token.clone(),
            allow_delete: config.allow_delete,
            heavy: tokio::sync::Semaphore::new(HEAVY_AT_ONCE),
        })))
    }

    /// The master seed of the database.
    pub fn master_seed(&self) -> u64 {
        self.0.master_seed
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    /// Whether a delete is allowed: behind a token (checked before the
    /// handler), or on a server started with `--allow-delete`.
    pub(crate) fn may_delete(&self) -> bool {
        self.0.token.is_some() || self.0.allow_delete
    }

    /// Forgets experiment `id`, after a delete committed: later reads go to
    /// the database, and reads begun before cannot put it back.
    pub(crate) fn forget_experiment(&self, id: &ExperimentId) {
        let mut cache = self.0.experiments.lock().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.entries.remove(id);
    }

    /// The experiment `id` if it was read before (with its stamp, to check
    /// against the database), or else the cache's generation, to hand back
    /// to [`AppState::cache_experiment`].
    pub(crate) fn cached_experiment(
        &self,
        id: &ExperimentId,
    ) -> Result<(Arc<Experiment>, String), u64> {
        let cache = self.0.experiments.lock().unwrap_or_else(|p| p.into_inner());
        cache.entries.get(id).cloned().ok_or(cache.generation)
    }

    /// Remembers `experiment` with its `stamp`, read from the database when
    /// the cache was at `generation`: unless a delete happened since, which
    /// could have removed it after it was read.
    pub(crate) fn cache_experiment(
        &self,
        experiment: Experiment,
        stamp: String,
        generation: u64,
    ) -> Arc<Experiment> {
        let experiment = Arc::new(experiment);
        let mut cache = self.0.experiments.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: beyond this many, later ones are simply read again.
        if cache.generation == generation && cache.entries.len() < 10_000 {
            cache
                .entries
                .insert(experiment.spec.id.clone(), (experiment.clone(), stamp));
        }
        experiment
    }

    /// Runs `read` on a read-only connection: never waits for a writer.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.0.db.read(read).await
    }

    /// Runs `write` in the next group commit; answers after it is durable.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.0.db.write(write).await
    }

    /// An entity tag for everything the API can answer now: the
    /// database's change count (kept by triggers, so it moves with every
    /// commit of any process on the file) and its master seed (another
    /// database file, another tag).
    pub(crate) async fn entity_tag(&self) -> Result<String, ApiError> {
        let changes = self.read(|store| Ok(store.changes()?)).await?;
        Ok(format!("\"{:x}-{changes}\"", self.0.master_seed))
    }

    /// A permit to compute a comparison or a figure: CPU work that must not
    /// crowd out the API's other requests.
    pub(crate) async fn heavy_work(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.0.heavy.acquire().await.map_err(ApiError::internal)
    }

    /// The data set whose content digest is `digest`: a loaded one (a
    /// client asks for a digest it saw in a split header, so the data set
    /// was loaded to serve that split) or a registered one.
    pub(crate) async fn dataset_by_digest(
        &self,
        digest: &str,
    ) -> Result<Arc<LoadedDataset>, ApiError> {
        let loaded = self
            .0
            .datasets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|d| d.facts.digest == digest)
            .cloned();
        if let Some(d) = loaded {
            return Ok(d);
        }
        // A registered set names its digest; load only that one, and pass
        // on why it cannot be served (its files changed, say).
        let registered = self.read(|store| Ok(store.datasets()?)).await?;
        if let Some(r) = registered.iter().find(|r| r.digest == digest) {
            return self.dataset(&r.name).await;
        }
        // A built-in one is loaded, once, by the split that named it: a
        // digest no loaded set has is not worth loading every built-in set
        // for (that would let anyone make the server parse them again and
        // again).
        Err(ApiError::new(
            ProblemCode::DatasetNotFound,
            format!("no data set of this server has the digest {digest}"),
        ))
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
        let name = name.to_owned();
        let record = {
            let name = name.clone();
            self.read(move |store| Ok(store.dataset(&name)?)).await?
        };
        let state = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _request = span.enter();
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
