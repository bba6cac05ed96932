//! The data cache against a real server: a data set fetched once, then
//! read from disk (verified) by later processes; a damaged entry fetched
//! again; the size limit kept, the least recently used entry going first.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reproml_client::{CacheStats, Client, DataCache, content_check};
use reproml_core::split::SplitName;
use reproml_core::{ExperimentId, ExperimentSpec, RunIndex};
use reproml_server::{EmbeddedServer, Limits, ServerConfig};
use sha2::{Digest, Sha256};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reproml-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start(dir: &Path) -> (EmbeddedServer, ExperimentId) {
    let server = EmbeddedServer::start(ServerConfig {
        db: dir.join("reproml.db"),
        master_seed: Some(42),
        token: None,
        limits: Limits::default(),
        allow_delete: false,
        tls: None,
    })
    .unwrap();
    let spec = ExperimentSpec::from_toml(
        "id = \"cached\"\nmodel = \"mlp\"\nchallenge = \"digits\"\nepochs = 1\nruns = 3\n",
        "test",
    )
    .unwrap();
    let client = Client::new(&server.url(), None);
    let id = client.create_experiment(&spec).unwrap().0.spec.id;
    (server, id)
}

/// Every split of every run as (index, label, pixels), through `client`.
fn everything(client: &Client, id: &ExperimentId) -> Vec<Vec<(u32, u8, Vec<u8>)>> {
    let mut out = Vec::new();
    for run in RunIndex::first(3) {
        let seed = client.seed(id, run).unwrap().seed;
        for name in [SplitName::Train, SplitName::Test] {
            let split = client.split(id, run, name, seed).unwrap();
            out.push(
                (0..split.len())
                    .map(|k| (split.index(k), split.label(k), split.image(k).to_vec()))
                    .collect(),
            );
        }
    }
    out
}

fn cached_client(
    server: &EmbeddedServer,
    cache_dir: &Path,
    limit: u64,
) -> (Client, Arc<DataCache>) {
    let cache = Arc::new(DataCache::new(cache_dir, limit));
    let client = Client::new(&server.url(), None).with_data_cache(Arc::clone(&cache));
    (client, cache)
}

/// Every file of the cache folder, in order of name.
fn all_files(cache_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache_dir.join("datasets"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The cache's entries: the files named by a digest.
fn entries(cache_dir: &Path) -> Vec<PathBuf> {
    all_files(cache_dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().len() == 64)
        .collect()
}

/// The file beside `entry` holding its content's check.
fn check_of(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".xxh3-8mib");
    PathBuf::from(name)
}

/// Dates `path`'s last modification `hours` ago, as if last used then.
fn make_old(path: &Path, hours: u64) -> std::time::SystemTime {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(3600 * hours);
    std::fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_modified(then)
        .unwrap();
    then
}

#[test]
fn a_data_set_is_fetched_once_then_opened_verified_and_refetched_when_damaged() {
    let dir = temp("once");
    let (server, id) = start(&dir);
    let plain = everything(&Client::new(&server.url(), None), &id);
    let cache_dir = dir.join("cache");

    // The first process fetches the data set once for its 6 splits.
    let (client, cache) = cached_client(&server, &cache_dir, 1 << 30);
    assert_eq!(everything(&client, &id), plain);
    assert_eq!(
        cache.stats(),
        CacheStats {
            fetched: 1,
            reused: 5,
            ..CacheStats::default()
        }
    );
    let files = entries(&cache_dir);
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(&files[0]).unwrap();
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        reproml_core::hex(&Sha256::digest(&bytes)),
        name,
        "named by its content"
    );
    // Beside it, its check, which later opens compare.
    let check = check_of(&files[0]);
    let check_hex = format!("{:032x}\n", content_check(&bytes));
    assert_eq!(std::fs::read_to_string(&check).unwrap(), check_hex);
    assert_eq!(all_files(&cache_dir), vec![files[0].clone(), check.clone()]);
    drop((client, cache));

    // A later process opens it from disk.
    let (client, cache) = cached_client(&server, &cache_dir, 1 << 30);
    assert_eq!(everything(&client, &id), plain);
    assert_eq!((cache.stats().opened, cache.stats().fetched), (1, 0));
    drop((client, cache));

    // Without its check (written by a client without XXH3): verified by
    // its SHA-256 instead, and the check written again.
    std::fs::remove_file(&check).unwrap();
    let (client, cache) = cached_client(&server, &cache_dir, 1 << 30);
    assert_eq!(everything(&client, &id), plain);
    assert_eq!((cache.stats().opened, cache.stats().fetched), (1, 0));
    assert_eq!(std::fs::read_to_string(&check).unwrap(), check_hex);
    drop((client, cache));

    // A check that cannot be read (not 32 hex digits and a line end) is
    // no check: the content is verified by its SHA-256, and a good check
    // written.
    std::fs::write(&check, "not a check").unwrap();
    let (client, cache) = cached_client(&server, &cache_dir, 1 << 30);
    assert_eq!(everything(&client, &id), plain);
    assert_eq!((cache.stats().opened, cache.stats().corrupt), (1, 0));
    assert_eq!(std::fs::read_to_string(&check).unwrap(), check_hex);
    drop((client, cache));

    // One byte damaged on disk, the other file damaged, or both: found,
    // never used, fetched again. (No process maps the entry meanwhile.)
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 0x01;
    let other_hash = format!("{:032x}\n", content_check(b"other"));
    for (content, recorded) in [
        (&damaged, &check_hex),
        (&bytes, &other_hash),
        (&damaged, &"not a hash".to_owned()),
    ] {
        std::fs::write(&files[0], content).unwrap();
        std::fs::write(&check, recorded).unwrap();
        let (client, cache) = cached_client(&server, &cache_dir, 1 << 30);
        assert_eq!(everything(&client, &id), plain);
        let stats = cache.stats();
        assert_eq!((stats.corrupt, stats.fetched, stats.opened), (1, 1, 0));
        assert_eq!(
            std::fs::read(&files[0]).unwrap(),
            bytes,
            "the entry is whole again"
        );
        assert_eq!(std::fs::read_to_string(&check).unwrap(), check_hex);
    }
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_size_limit_is_kept() {
    let dir = temp("limit");
    let (server, id) = start(&dir);
    let plain = everything(&Client::new(&server.url(), None), &id);

    // A limit below the data set's size: used from memory, not kept.
    let small = dir.join("small");
    let (client, cache) = cached_client(&server, &small, 1000);
    assert_eq!(everything(&client, &id), plain);
    assert_eq!((cache.stats().fetched, cache.stats().not_kept), (1, 1));
    assert!(entries(&small).is_empty());

    // Room for the data set and one of two older entries: the one used
    // least recently goes.
    let lru = dir.join("lru");
    std::fs::create_dir_all(lru.join("datasets")).unwrap();
    let aged = |name: &str, hours: u64| {
        let path = lru.join("datasets").join(name.repeat(64));
        std::fs::write(&path, vec![7u8; 60_000]).unwrap();
        std::fs::write(check_of(&path), "0".repeat(64)).unwrap();
        make_old(&path, hours);
        path
    };
    let (oldest, older) = (aged("a", 2), aged("b", 1));
    let orphan = check_of(&lru.join("datasets").join("c".repeat(64)));
    std::fs::write(&orphan, "0".repeat(32) + "\n").unwrap();
    // digits: 1797 examples of 8×8 pixels, a label each, a 50-byte head.
    let digits = 50 + 1797 * 65;
    let (client, cache) = cached_client(&server, &lru, digits + 70_000);
    assert_eq!(everything(&client, &id), plain);
    assert_eq!(cache.stats().evicted, 1);
    assert!(!oldest.exists() && older.exists());
    assert!(!check_of(&oldest).exists(), "its check went with it");
    assert!(!orphan.exists(), "a check without its entry is removed");
    let entry = entries(&lru).into_iter().find(|p| *p != older).unwrap();
    assert_eq!(std::fs::metadata(&entry).unwrap().len(), digits);

    // Opening an entry makes it the most recently used.
    let long_ago = make_old(&entry, 3);
    let (client, cache) = cached_client(&server, &lru, digits + 70_000);
    everything(&client, &id);
    assert_eq!(cache.stats().opened, 1);
    let touched = std::fs::metadata(&entry).unwrap().modified().unwrap();
    assert!(touched > long_ago + std::time::Duration::from_secs(3600));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn parallel_runs_of_a_process_fetch_a_data_set_once() {
    let dir = temp("parallel");
    let (server, id) = start(&dir);
    let (client, cache) = cached_client(&server, &dir.join("cache"), 1 << 30);
    let seed = client.seed(&id, RunIndex::new(0)).unwrap().seed;
    let alone = Client::new(&server.url(), None)
        .split(&id, RunIndex::new(0), SplitName::Train, seed)
        .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (client, id, alone) = (client.clone(), &id, &alone);
            scope.spawn(move || {
                let split = client
                    .split(id, RunIndex::new(0), SplitName::Train, seed)
                    .unwrap();
                assert_eq!(split.indices(), alone.indices());
                assert_eq!(split.image(7), alone.image(7));
            });
        }
    });
    let stats = cache.stats();
    assert_eq!((stats.fetched, stats.opened, stats.reused), (1, 0, 7));
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
