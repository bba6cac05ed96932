//! Versioned schema migrations, tracked in SQLite's `user_version`.
//! Append new steps; never edit an applied one.

use std::path::Path;

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE experiments (
         id TEXT PRIMARY KEY,
         spec TEXT NOT NULL,
         created_at TEXT NOT NULL
     );
     CREATE TABLE seeds (
         experiment TEXT NOT NULL REFERENCES experiments(id),
         idx INTEGER NOT NULL,
         seed INTEGER NOT NULL,
         PRIMARY KEY (experiment, idx)
     );
     CREATE TABLE runs (
         experiment TEXT NOT NULL REFERENCES experiments(id),
         variant TEXT NOT NULL,
         run INTEGER NOT NULL,
         seed INTEGER NOT NULL,
         result TEXT NOT NULL,
         final_digest TEXT,
         accuracy REAL NOT NULL,
         precision REAL NOT NULL,
         recall REAL NOT NULL,
         f1 REAL NOT NULL,
         recorded_at TEXT NOT NULL,
         PRIMARY KEY (experiment, variant, run)
     );
     CREATE TABLE datasets (
         name TEXT PRIMARY KEY,
         format TEXT NOT NULL,
         path TEXT NOT NULL,
         digest TEXT NOT NULL,
         classes INTEGER NOT NULL,
         examples INTEGER NOT NULL,
         registered_at TEXT NOT NULL
     );",
    // 2: a variant's artifact in a row of its own, fixed by its first
    // result; read before every write of a result, so not parsed out of
    // that result's JSON each time.
    "CREATE TABLE variants (
         experiment TEXT NOT NULL REFERENCES experiments(id),
         variant TEXT NOT NULL,
         artifact TEXT NOT NULL,
         PRIMARY KEY (experiment, variant)
     );
     INSERT INTO variants (experiment, variant, artifact)
         SELECT experiment, variant, json_extract(result, '$.artifact') FROM runs AS r
         WHERE rowid = (SELECT MIN(rowid) FROM runs
                        WHERE experiment = r.experiment AND variant = r.variant);",
    // 3: the fingerprint entries a variant's first result said its numbers
    // depend on (engine build, thread count where it matters), as JSON;
    // NULL for variants recorded before, whose next result fixes them.
    "ALTER TABLE variants ADD COLUMN fixed TEXT;",
    // 4: a count of every change to the data, kept by triggers, so that it
    // moves with every commit of any process on this file (the server's
    // ETag; `Store::changes`).
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('changes', '0');
     CREATE TRIGGER IF NOT EXISTS experiments_insert AFTER INSERT ON experiments BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS experiments_update AFTER UPDATE ON experiments BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS experiments_delete AFTER DELETE ON experiments BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS seeds_insert AFTER INSERT ON seeds BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS seeds_update AFTER UPDATE ON seeds BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS seeds_delete AFTER DELETE ON seeds BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS runs_insert AFTER INSERT ON runs BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS runs_update AFTER UPDATE ON runs BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS runs_delete AFTER DELETE ON runs BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS variants_insert AFTER INSERT ON variants BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS variants_update AFTER UPDATE ON variants BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS variants_delete AFTER DELETE ON variants BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS datasets_insert AFTER INSERT ON datasets BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS datasets_update AFTER UPDATE ON datasets BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS datasets_delete AFTER DELETE ON datasets BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;",
    // 5: failure reports, one row per run (the count and the latest), so a
    // run that fails forever costs one row however often it is retried.
    "CREATE TABLE failures (
         experiment TEXT NOT NULL REFERENCES experiments(id),
         variant TEXT NOT NULL,
         run INTEGER NOT NULL,
         reports INTEGER NOT NULL,
         last_error TEXT NOT NULL,
         last_failed_at TEXT NOT NULL,
         PRIMARY KEY (experiment, variant, run)
     );
     CREATE TRIGGER IF NOT EXISTS failures_insert AFTER INSERT ON failures BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS failures_update AFTER UPDATE ON failures BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;
     CREATE TRIGGER IF NOT EXISTS failures_delete AFTER DELETE ON failures BEGIN
         UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'changes';
     END;",
    // 6: the order of failure reports, exact (their times have whole
    // seconds): a sequence every report takes anew.
    "ALTER TABLE failures ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
     UPDATE failures SET seq = rowid;",
];

/// Brings the schema to the newest version, one transaction per step.
pub(crate) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
