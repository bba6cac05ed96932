//! Persistence for the server: experiments, their seeds, data sets and run
//! results, in SQLite. This crate is the one place that owns SQL.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a committed write
//! has been fsynced and survives `kill -9` or a power cut; every write is
//! a transaction (or a savepoint inside a group's transaction, see
//! [`Store::begin_group`]), so nothing is ever half-written.
//!
//! Concurrency: one writing [`Store`] per process, and any number of
//! read-only ones ([`Store::open_reader`]) which, in WAL mode, never wait
//! for a writer — not even for another process holding the write lock.

mod migrations;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reproml_api::{Experiment, FailureRecord, RecordedRun};
use reproml_core::run::{Artifact, RunResult};
use reproml_core::seed::{SEED_MASK, experiment_seeds};
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex, Seed, VariantLabel};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (disk full, corrupt file, locked, …).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file cannot be opened or created. SQLite's reason is
    /// part of the message and not chained as a source: its own text
    /// repeats the path and itself.
    #[error(
        "cannot open the database {path} ({reason}); does its folder exist, and may reproml write there?"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's reason.
        reason: String,
    },
    /// The database was made by a newer ReproduceML.
    #[error(
        "the database {path} has schema version {found}, newer than this reproml knows ({known}); use a newer reproml"
    )]
    NewerSchema {
        /// Database file.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
    /// The database was created with another master seed.
    #[error(
        "the database {path} was created with master seed {stored}, not {given}; leave out --master-seed or use another database"
    )]
    MasterSeedMismatch {
        /// Database file.
        path: PathBuf,
        /// Seed stored in the database.
        stored: u64,
        /// Seed given now.
        given: u64,
    },
    /// The experiment exists with other attributes.
    #[error("experiment {id} already exists with different attributes: {}", differences.join(", "))]
    ExperimentConflict {
        /// The experiment.
        id: ExperimentId,
        /// The keys that differ, with both values.
        differences: Vec<String>,
    },
    /// A different result is already recorded for this run.
    #[error("run {run} of variant {variant} of experiment {id} already has a different result")]
    ResultConflict {
        /// The experiment.
        id: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// The run.
        run: RunIndex,
    },
    /// The result comes from another artifact than the variant's runs.
    #[error(
        "variant {variant} of experiment {id} was trained by {} ({}); this result comes from {} ({}). \
         A variant is one artifact: record other artifacts under another variant",
        recorded.name, recorded.describe(), given.name, given.describe()
    )]
    ArtifactConflict {
        /// The experiment.
        id: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// The variant's artifact.
        recorded: Box<Artifact>,
        /// The artifact of the refused result.
        given: Box<Artifact>,
    },
    /// The result's fingerprint differs from the variant's in an entry the
    /// results depend on (the engine build, the thread count where it
    /// matters).
    #[error(
        "this result does not match variant {variant} of experiment {id} in fingerprint entries its numbers depend on ({}). \
         A variant's runs share all of them: record this one under another variant",
        differences.join("; ")
    )]
    FingerprintConflict {
        /// The experiment.
        id: ExperimentId,
        /// The variant.
        variant: VariantLabel,
        /// `key = recorded (this result: given)` for each entry that differs.
        differences: Vec<String>,
    },
    /// Stored JSON could not be read back (a bug or a hand-edited database).
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    /// No entropy for a new master seed.
    #[error("cannot draw a master seed from the operating system: {0}")]
    Entropy(String),
}

impl StoreError {
    /// True when a write named an experiment that no longer exists (it was
    /// deleted while the request was under way).
    pub fn is_missing_parent(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
        )
    }

    /// True when another connection (another process: a backup, the
    /// `sqlite3` shell) held the database past the busy timeout: worth
    /// trying again later, not a fault.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// How long a connection waits for another one's lock before
/// [`StoreError::is_busy`].
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A data set registered with `reproml data import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Its name (the challenge name in specs).
    pub name: String,
    /// Its file format.
    pub format: reproml_data::DataFormat,
    /// Where its files are.
    pub path: String,
    /// SHA-256 of its content, hex.
    pub digest: String,
    /// Number of classes.
    pub classes: u32,
    /// Number of examples.
    pub examples: u32,
}

/// What every run of a variant shares: its artifact and the fingerprint
/// entries its results depend on (`None` for a variant recorded before
/// they were kept, which its next result fixes).
pub type VariantIdentity = (Artifact, Option<BTreeMap<String, String>>);

/// Outcome of an idempotent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Newly stored.
    Created,
    /// The same thing was already stored; nothing changed.
    Existing,
}

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    master_seed: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    reproml_core::time::rfc3339_utc(secs)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applying
    /// migrations. The master seed is the stored one; `master_seed` sets it
    /// for a new database (a random one is drawn when absent) and must
    /// match it for an existing one.
    pub fn open(path: &Path, master_seed: Option<u64>) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            reason: match &e {
                rusqlite::Error::SqliteFailure(code, _) => code.to_string(),
                other => other.to_string(),
            },
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::apply(&mut conn, path)?;
        let stored: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'master_seed'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let master_seed = match (stored, master_seed) {
            (Some(s), given) => {
                let stored: u64 = s
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("master seed {s:?}")))?;
                if let Some(given) = given.filter(|&g| g != stored) {
                    return Err(StoreError::MasterSeedMismatch {
                        path: path.to_owned(),
                        stored,
                        given,
                    });
                }
                stored
            }
            (None, given) => {
                let seed = match given {
                    Some(s) => s,
                    None => {
                        let mut bytes = [0u8; 8];
                        getrandom::fill(&mut bytes)
                            .map_err(|e| StoreError::Entropy(e.to_string()))?;
                        u64::from_le_bytes(bytes) & SEED_MASK
                    }
                };
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('master_seed', ?1)",
                    params![seed.to_string()],
                )?;
                seed
            }
        };
        Ok(Self {
            conn,
            path: path.to_owned(),
            master_seed,
        })
    }

    /// A read-only connection to the existing database at `path` (opened
    /// by [`Store::open`] before): it sees every committed write and never
    /// waits for a writer.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let seed: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'master_seed'",
            [],
            |r| r.get(0),
        )?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            master_seed: seed
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("master seed {seed:?}")))?,
        })
    }

    /// Starts a group: one transaction, holding the write lock, in which
    /// several writes run (each through [`Store::isolated`]) and which
    /// [`Store::commit_group`] makes durable with one fsync. Fails as
    /// [`StoreError::is_busy`] when another process holds the lock.
    pub fn begin_group(&mut self) -> Result<(), StoreError> {
        // A transaction left open by a failure must not swallow this group.
        if self.in_transaction() {
            self.conn.execute_batch("ROLLBACK")?;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// True while a transaction is open. Inside a group it turns false if
    /// SQLite rolled the whole group back on its own (disk full, I/O
    /// error): the writes run so far are gone, and later ones must not run
    /// outside a group.
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Undoes the innermost [`Store::isolated`] write after its closure
    /// panicked (the savepoint is still open); errors are ignored, the
    /// caller checks [`Store::in_transaction`].
    pub fn abandon_isolated(&mut self) {
        let _ = self
            .conn
            .execute_batch("ROLLBACK TO isolated; RELEASE isolated");
    }

    /// Commits the group begun by [`Store::begin_group`]; on failure it is
    /// rolled back, and none of its writes happened.
    pub fn commit_group(&mut self) -> Result<(), StoreError> {
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        }
    }

    /// Runs `write` so that, if it fails, none of its changes stay (a
    /// savepoint): inside a group, one refused write does not undo the
    /// others.
    pub fn isolated<T, E: From<StoreError>>(
        &mut self,
        write: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn
            .execute_batch("SAVEPOINT isolated")
            .map_err(StoreError::from)?;
        match write(self) {
            Ok(value) => match self.conn.execute_batch("RELEASE isolated") {
                Ok(()) => Ok(value),
                Err(e) => {
                    // Not released means not part of the group: undo it
                    // rather than commit a write reported as failed.
                    self.abandon_isolated();
                    Err(StoreError::from(e).into())
                }
            },
            Err(e) => {
                self.conn
                    .execute_batch("ROLLBACK TO isolated; RELEASE isolated")
                    .map_err(StoreError::from)?;
                Err(e)
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master seed every experiment's seeds derive from.
    pub fn master_seed(&self) -> u64 {
        self.master_seed
    }

    /// Creates an experiment and persists its derived seeds, in one
    /// transaction that is durable when this returns. The same identifier
    /// with the same attributes is not an error (`Existing`); with other
    /// attributes it is a conflict naming what differs.
    pub fn create_experiment(
        &mut self,
        spec: &ExperimentSpec,
    ) -> Result<(Experiment, Written), StoreError> {
        if let Some(existing) = self.experiment(&spec.id)? {
            let differences = existing.spec.differences(spec);
            if differences.is_empty() {
                return Ok((existing, Written::Existing));
            }
            return Err(StoreError::ExperimentConflict {
                id: spec.id.clone(),
                differences,
            });
        }
        let experiment = Experiment {
            spec: spec.clone(),
            seeds: experiment_seeds(self.master_seed, &spec.id, spec.runs),
            created_at: now(),
        };
        self.insert_experiment(&experiment)?;
        Ok((experiment, Written::Created))
    }

    /// Stores an experiment exactly as given, its seeds and creation time
    /// included (not derived from this database's master seed): a
    /// replication package loaded for browsing or re-training. The same
    /// experiment again is `Existing`; another one under its identifier a
    /// conflict.
    pub fn import_experiment(&mut self, experiment: &Experiment) -> Result<Written, StoreError> {
        if let Some(existing) = self.experiment(&experiment.spec.id)? {
            let mut differences = existing.spec.differences(&experiment.spec);
            if existing.seeds != experiment.seeds {
                differences.push("seeds (derived from another master seed)".into());
            }
            if differences.is_empty() {
                return Ok(Written::Existing);
            }
            return Err(StoreError::ExperimentConflict {
                id: experiment.spec.id.clone(),
                differences,
            });
        }
        self.insert_experiment(experiment)?;
        Ok(Written::Created)
    }

    fn insert_experiment(&mut self, experiment: &Experiment) -> Result<(), StoreError> {
        let spec = &experiment.spec;
        let spec_json =
            serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // A savepoint, not a transaction: it nests inside a group.
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO experiments (id, spec, created_at) VALUES (?1, ?2, ?3)",
            params![spec.id.as_str(), spec_json, experiment.created_at],
        )?;
        {
            let mut insert =
                tx.prepare("INSERT INTO seeds (experiment, idx, seed) VALUES (?1, ?2, ?3)")?;
            for (i, seed) in experiment.seeds.iter().enumerate() {
                insert.execute(params![spec.id.as_str(), i as i64, seed.get() as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// An experiment by identifier.
    pub fn experiment(&self, id: &ExperimentId) -> Result<Option<Experiment>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT spec, created_at FROM experiments WHERE id = ?1",
                params![id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((spec, created_at)) = row else {
            return Ok(None);
        };
        let spec: ExperimentSpec =
            serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seed FROM seeds WHERE experiment = ?1 ORDER BY idx")?;
        let seeds = stmt
            .query_map(params![id.as_str()], |r| r.get::<_, i64>(0))?
            .map(|s| s.map(|s| Seed::new(s as u64)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Experiment {
            spec,
            seeds,
            created_at,
        }))
    }

    /// What identifies the stored version of experiment `id`: its spec as
    /// stored and its creation time (a cheap primary-key read), or `None`
    /// when there is none. A cached experiment whose stamp changed was
    /// deleted or re-created, possibly by another process.
    pub fn experiment_stamp(&self, id: &ExperimentId) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT spec || ' @ ' || created_at FROM experiments WHERE id = ?1")?
            .query_row(params![id.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// Every experiment, by identifier.
    pub fn experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM experiments ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = ExperimentId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.extend(self.experiment(&id)?);
        }
        Ok(out)
    }

    /// Records a run's result, durable when this returns. Posting the same
    /// result again is `Existing`; a different one is a conflict.
    pub fn record_run(
        &mut self,
        id: &ExperimentId,
        variant: &VariantLabel,
        run: RunIndex,
        result: &RunResult,
    ) -> Result<(RecordedRun, Written), StoreError> {
        self.record_run_at(id, variant, run, result, now())
    }

    /// [`Store::record_run`] with the time it was recorded at (a run
    /// imported from a replication package keeps its own).
    pub fn record_run_at(
        &mut self,
        id: &ExperimentId,
        variant: &VariantLabel,
        run: RunIndex,
        result: &RunResult,
        recorded_at: String,
    ) -> Result<(RecordedRun, Written), StoreError> {
        if let Some(existing) = self.run(id, variant, run)? {
            if existing.result == *result {
                return Ok((existing, Written::Existing));
            }
            return Err(StoreError::ResultConflict {
                id: id.clone(),
                variant: variant.clone(),
                run,
            });
        }
        // A variant is one artifact: the first result recorded fixes it,
        // so a variant can never mix, say, runs with and without a fault.
        // And the fingerprint entries the results depend on.
        let fixed = result.fixed_fingerprint();
        match self.variant_identity(id, variant)? {
            Some((recorded, _)) if recorded != result.artifact => {
                return Err(StoreError::ArtifactConflict {
                    id: id.clone(),
                    variant: variant.clone(),
                    recorded: Box::new(recorded),
                    given: Box::new(result.artifact.clone()),
                });
            }
            Some((_, None)) => {
                // Recorded before the fixed entries were kept: this result
                // fixes them for the runs that follow.
                let fixed = serde_json::to_string(&fixed)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                self.conn
                    .prepare_cached(
                        "UPDATE variants SET fixed = ?3 WHERE experiment = ?1 AND variant = ?2",
                    )?
                    .execute(params![id.as_str(), variant.as_str(), fixed])?;
            }
            Some((_, Some(recorded_fixed))) if recorded_fixed != fixed => {
                let differences = RunResult::fixed_differences(&recorded_fixed, &fixed);
                return Err(StoreError::FingerprintConflict {
                    id: id.clone(),
                    variant: variant.clone(),
                    differences,
                });
            }
            Some(_) => {}
            None => {
                let artifact = serde_json::to_string(&result.artifact)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let fixed = serde_json::to_string(&fixed)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO variants (experiment, variant, artifact, fixed) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id.as_str(), variant.as_str(), artifact, fixed])?;
            }
        }
        let json = serde_json::to_string(result).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let m = &result.metrics;
        self.conn.prepare_cached(
            "INSERT INTO runs (experiment, variant, run, seed, result, final_digest, accuracy, precision, recall, f1, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(
            params![
                id.as_str(),
                variant.as_str(),
                i64::from(run.get()),
                result.seed.get() as i64,
                json,
                result.final_digest(),
                m.accuracy,
                m.precision,
                m.recall,
                m.f1,
                recorded_at
            ],
        )?;
        Ok((
            RecordedRun {
                experiment: id.clone(),
                variant: variant.clone(),
                run,
                result: result.clone(),
                recorded_at,
            },
            Written::Created,
        ))
    }

    /// Deletes experiment `id` with its seeds, variants, runs and failure
    /// reports; the
    /// number of runs deleted, or `None` when there was no such experiment.
    pub fn delete_experiment(&mut self, id: &ExperimentId) -> Result<Option<usize>, StoreError> {
        let tx = self.conn.savepoint()?;
        let runs = tx.execute(
            "DELETE FROM runs WHERE experiment = ?1",
            params![id.as_str()],
        )?;
        tx.execute(
            "DELETE FROM failures WHERE experiment = ?1",
            params![id.as_str()],
        )?;
        tx.execute(
            "DELETE FROM variants WHERE experiment = ?1",
            params![id.as_str()],
        )?;
        tx.execute(
            "DELETE FROM seeds WHERE experiment = ?1",
            params![id.as_str()],
        )?;
        let found = tx.execute(
            "DELETE FROM experiments WHERE id = ?1",
            params![id.as_str()],
        )?;
        tx.commit()?;
        Ok((found > 0).then_some(runs))
    }

    /// Deletes `variant` of experiment `id` with its runs and failure
    /// reports, so that the name can be used again (with another artifact);
    /// the number of runs deleted, or `None` when the variant had neither.
    pub fn delete_variant(
        &mut self,
        id: &ExperimentId,
        variant: &VariantLabel,
    ) -> Result<Option<usize>, StoreError> {
        let tx = self.conn.savepoint()?;
        let runs = tx.execute(
            "DELETE FROM runs WHERE experiment = ?1 AND variant = ?2",
            params![id.as_str(), variant.as_str()],
        )?;
        let found = tx.execute(
            "DELETE FROM variants WHERE experiment = ?1 AND variant = ?2",
            params![id.as_str(), variant.as_str()],
        )?;
        let failures = tx.execute(
            "DELETE FROM failures WHERE experiment = ?1 AND variant = ?2",
            params![id.as_str(), variant.as_str()],
        )?;
        tx.commit()?;
        Ok((found > 0 || runs > 0 || failures > 0).then_some(runs))
    }

    /// The artifact that trained `variant` of experiment `id`: the one of
    /// its first recorded run, which every later run must share.
    pub fn variant_artifact(
        &self,
        id: &ExperimentId,
        variant: &VariantLabel,
    ) -> Result<Option<Artifact>, StoreError> {
        Ok(self.variant_identity(id, variant)?.map(|(a, _)| a))
    }

    /// The variant's artifact and fixed fingerprint entries (see
    /// [`RunResult::fixed_fingerprint`]), fixed by its first result.
    pub fn variant_identity(
        &self,
        id: &ExperimentId,
        variant: &VariantLabel,
    ) -> Result<Option<VariantIdentity>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT artifact, fixed FROM variants WHERE experiment = ?1 AND variant = ?2",
        )?;
        let row: Option<(String, Option<String>)> = stmt
            .query_row(params![id.as_str(), variant.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        row.map(|(artifact, fixed)| {
            Ok((
                serde_json::from_str(&artifact).map_err(corrupt)?,
                fixed
                    .map(|f| serde_json::from_str(&f).map_err(corrupt))
                    .transpose()?,
            ))
        })
        .transpose()
    }

    /// One run's stored result.
    pub fn run(
        &self,
        id: &ExperimentId,
        variant: &VariantLabel,
        run: RunIndex,
    ) -> Result<Option<RecordedRun>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT experiment, variant, run, result, recorded_at FROM runs WHERE experiment = ?1 AND variant = ?2 AND run = ?3",
        )?;
        let mut rows = stmt.query_map(
            params![id.as_str(), variant.as_str(), i64::from(run.get())],
            row_to_run,
        )?;
        rows.next().transpose()?.map(decode_run).transpose()
    }

    /// The runs of an experiment, optionally of one variant, ordered by
    /// variant then run.
    pub fn runs(
        &self,
        id: &ExperimentId,
        variant: Option<&VariantLabel>,
    ) -> Result<Vec<RecordedRun>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT experiment, variant, run, result, recorded_at FROM runs
             WHERE experiment = ?1 AND (?2 IS NULL OR variant = ?2) ORDER BY variant, run",
        )?;
        let rows = stmt.query_map(
            params![id.as_str(), variant.map(VariantLabel::as_str)],
            row_to_run,
        )?;
        rows.map(|r| decode_run(r?)).collect()
    }

    /// How many changes the data has seen (any table, any process): equal
    /// counts mean equal data, so the server can answer `304 Not Modified`.
    pub fn changes(&self) -> Result<u64, StoreError> {
        let value: String =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'changes'", [], |r| {
                    r.get(0)
                })?;
        value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("the change count {value:?} is not a number")))
    }

    /// Counts a failed attempt at a run and keeps its error as the run's
    /// latest; durable when this returns. The experiment must exist (its
    /// row is referenced).
    pub fn record_failure(
        &mut self,
        id: &ExperimentId,
        variant: &VariantLabel,
        run: RunIndex,
        error: &str,
    ) -> Result<FailureRecord, StoreError> {
        let failed_at = now();
        self.conn
            .prepare_cached(
                "INSERT INTO failures (experiment, variant, run, reports, last_error, last_failed_at, seq)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, (SELECT COALESCE(MAX(seq), 0) + 1 FROM failures))
                 ON CONFLICT(experiment, variant, run) DO UPDATE SET
                   reports = MIN(reports + 1, 4294967295),
                   last_error = excluded.last_error, last_failed_at = excluded.last_failed_at,
                   seq = excluded.seq",
            )?
            .execute(params![
                id.as_str(),
                variant.as_str(),
                i64::from(run.get()),
                error,
                failed_at
            ])?;
        let mut all = self.failures(id, Some((variant, run)))?;
        all.pop()
            .ok_or_else(|| StoreError::Corrupt("a failure just written is missing".into()))
    }

    /// Stores a run's failure reports exactly as given (count, latest
    /// error and time): a replication package loaded again leaves them as
    /// they were.
    pub fn import_failure(&mut self, record: &FailureRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO failures (experiment, variant, run, reports, last_error, last_failed_at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM failures))
                 ON CONFLICT(experiment, variant, run) DO UPDATE SET
                   reports = excluded.reports, last_error = excluded.last_error,
                   last_failed_at = excluded.last_failed_at",
            )?
            .execute(params![
                record.experiment.as_str(),
                record.variant.as_str(),
                i64::from(record.run.get()),
                i64::from(record.reports),
                record.last_error,
                record.last_failed_at
            ])?;
        Ok(())
    }

    /// How many runs of experiment `id` have failure reports (rows kept):
    /// the server bounds it.
    pub fn failing_runs(&self, id: &ExperimentId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM failures WHERE experiment = ?1")?
            .query_row(params![id.as_str()], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The failure reports of experiment `id` (of one run with `only`), by
    /// variant then run.
    pub fn failures(
        &self,
        id: &ExperimentId,
        only: Option<(&VariantLabel, RunIndex)>,
    ) -> Result<Vec<FailureRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.experiment, f.variant, f.run, f.reports, f.last_error, f.last_failed_at,
                    EXISTS (SELECT 1 FROM runs AS r WHERE r.experiment = f.experiment
                            AND r.variant = f.variant AND r.run = f.run)
             FROM failures AS f
             WHERE f.experiment = ?1 AND (?2 IS NULL OR (f.variant = ?2 AND f.run = ?3))
             ORDER BY f.variant, f.run",
        )?;
        let (variant, run) = only.map_or((None, None), |(v, r)| {
            (Some(v.as_str()), Some(i64::from(r.get())))
        });
        let rows = stmt.query_map(params![id.as_str(), variant, run], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })?;
        let corrupt = |e: String| StoreError::Corrupt(e);
        rows.map(|row| {
            let (experiment, variant, run, reports, last_error, last_failed_at, recorded) = row?;
            Ok(FailureRecord {
                experiment: ExperimentId::new(experiment).map_err(|e| corrupt(e.to_string()))?,
                variant: VariantLabel::new(variant).map_err(|e| corrupt(e.to_string()))?,
                run: u32::try_from(run)
                    .map(RunIndex::new)
                    .map_err(|e| corrupt(e.to_string()))?,
                reports: u32::try_from(reports).map_err(|e| corrupt(e.to_string()))?,
                last_error,
                last_failed_at,
                recorded,
            })
        })
        .collect()
    }

    /// Every variant's progress: runs recorded, first and last recording
    /// time and artifact, failing runs and the latest error, ordered by
    /// experiment then variant; one query, so a dashboard can poll it. A
    /// variant whose runs only failed is listed too.
    pub fn progress(&self) -> Result<Vec<reproml_api::VariantProgress>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "WITH recorded AS (
                 SELECT experiment, variant, COUNT(*) AS n, MIN(recorded_at) AS first,
                        MAX(recorded_at) AS last
                 FROM runs GROUP BY experiment, variant),
             failed AS (
                 SELECT f.experiment, f.variant,
                        SUM(NOT EXISTS (SELECT 1 FROM runs AS r WHERE r.experiment = f.experiment
                                        AND r.variant = f.variant AND r.run = f.run)) AS failing,
                        SUM(f.reports) AS reports,
                        MAX(f.last_failed_at) AS last_failed_at
                 FROM failures AS f GROUP BY f.experiment, f.variant),
             sides AS (
                 SELECT experiment, variant FROM recorded
                 UNION SELECT experiment, variant FROM failed)
             SELECT s.experiment, s.variant, COALESCE(rec.n, 0), rec.first, rec.last, v.artifact,
                    COALESCE(fl.failing, 0), COALESCE(fl.reports, 0), fl.last_failed_at,
                    -- The latest error of a run still failing, if any.
                    (SELECT last_error FROM failures AS f
                     WHERE f.experiment = s.experiment AND f.variant = s.variant
                     ORDER BY EXISTS (SELECT 1 FROM runs AS r WHERE r.experiment = f.experiment
                                      AND r.variant = f.variant AND r.run = f.run),
                              f.seq DESC
                     LIMIT 1)
             FROM sides AS s
             LEFT JOIN recorded AS rec ON rec.experiment = s.experiment AND rec.variant = s.variant
             LEFT JOIN failed AS fl ON fl.experiment = s.experiment AND fl.variant = s.variant
             LEFT JOIN variants AS v ON v.experiment = s.experiment AND v.variant = s.variant
             ORDER BY s.experiment, s.variant",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ),
                (
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ),
            ))
        })?;
        let corrupt = |e: String| StoreError::Corrupt(e);
        let count = |n: i64| u32::try_from(n).map_err(|e| corrupt(e.to_string()));
        rows.map(|row| {
            let (
                (experiment, variant, recorded, first, last),
                (artifact, failing, reports, last_failed_at, last_error),
            ) = row?;
            Ok(reproml_api::VariantProgress {
                experiment: ExperimentId::new(experiment).map_err(|e| corrupt(e.to_string()))?,
                variant: VariantLabel::new(variant).map_err(|e| corrupt(e.to_string()))?,
                recorded: count(recorded)?,
                first_recorded_at: first,
                last_recorded_at: last,
                artifact: artifact
                    .map(|a| serde_json::from_str(&a).map_err(|e| corrupt(e.to_string())))
                    .transpose()?,
                failing: count(failing)?,
                // A sum over many runs may pass u32: it is a count to show.
                failure_reports: u32::try_from(reports).unwrap_or(u32::MAX),
                last_error,
                last_failed_at,
            })
        })
        .collect()
    }

    /// Registers (or re-registers) a data set.
    pub fn register_dataset(&mut self, record: &DatasetRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO datasets (name, format, path, digest, classes, examples, registered_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(name) DO UPDATE SET format = excluded.format, path = excluded.path,
               digest = excluded.digest, classes = excluded.classes, examples = excluded.examples,
               registered_at = excluded.registered_at",
            params![
                record.name,
                record.format.as_str(),
                record.path,
                record.digest,
                record.classes,
                record.examples,
                now()
            ],
        )?;
        Ok(())
    }

    /// A registered data set by name.
    pub fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT name, format, path, digest, classes, examples FROM datasets WHERE name = ?1",
                params![name],
                row_to_dataset,
            )
            .optional()?
            .map(decode_dataset)
            .transpose()
    }

    /// Every registered data set.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, format, path, digest, classes, examples FROM datasets ORDER BY name",
        )?;
        let rows = stmt.query_map([], row_to_dataset)?;
        rows.map(|r| decode_dataset(r?)).collect()
    }
}

type RunRow = (String, String, i64, String, String);

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode_run(
    (experiment, variant, run, result, recorded_at): RunRow,
) -> Result<RecordedRun, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    Ok(RecordedRun {
        experiment: ExperimentId::new(experiment).map_err(|e| corrupt(e.to_string()))?,
        variant: VariantLabel::new(variant).map_err(|e| corrupt(e.to_string()))?,
        run: u32::try_from(run)
            .map(RunIndex::new)
            .map_err(|e| corrupt(e.to_string()))?,
        result: serde_json::from_str(&result).map_err(|e| corrupt(e.to_string()))?,
        recorded_at,
    })
}

type DatasetRow = (String, String, String, String, u32, u32);

fn row_to_dataset(r: &rusqlite::Row<'_>) -> rusqlite::Result<DatasetRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode_dataset(
    (name, format, path, digest, classes, examples): DatasetRow,
) -> Result<DatasetRecord, StoreError> {
    Ok(DatasetRecord {
        name,
        format: format.parse().map_err(StoreError::Corrupt)?,
        path,
        digest,
        classes,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339() {
        assert!(now().ends_with('Z') && now().len() == 20);
    }
}
