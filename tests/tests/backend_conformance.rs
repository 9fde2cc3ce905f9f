//! The backend conformance suite (`host_harness::testing::conformance`) on every backend:
//! a new backend is checked by adding one line here.

use std::sync::Arc;

use e2e_tests::{postgres_url, redis_url, unique_name};
use host_harness::cache::{MemoryCache, PostgresCache, RedisCache};
use host_harness::storage::{MemoryStore, PostgresStore, SqliteStore};
use host_harness::testing::conformance::{check_cache, check_store};

#[test]
fn every_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    check_store(Arc::new(MemoryStore::new()));
    let path = dir.path().join("c.db");
    check_store(Arc::new(SqliteStore::open(&path).unwrap()));
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(
        host_harness::storage::Store::users(&again).unwrap().len(),
        3,
        "SQLite data survives a reopen; migrations are not rerun"
    );
    if let Some(pg) = postgres_url() {
        check_store(Arc::new(
            PostgresStore::open(&pg, Some(&unique_name("c"))).unwrap(),
        ));
    }
}

#[test]
fn every_cache_conforms() {
    check_cache(Arc::new(MemoryCache::new()));
    if let Some(pg) = postgres_url() {
        check_cache(Arc::new(
            PostgresCache::open(&pg, Some(&unique_name("cache")), &unique_name("c"), 4).unwrap(),
        ));
    }
    if let Some(redis) = redis_url() {
        check_cache(Arc::new(
            RedisCache::open(&redis, &unique_name("c")).unwrap(),
        ));
    }
}
