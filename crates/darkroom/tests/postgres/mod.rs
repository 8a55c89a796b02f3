//! A PostgreSQL of its own for each test: a fresh schema (or a fresh database) on the
//! server `DARKROOM_TEST_POSTGRES_URL` names (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the test ends, passed or not.
//!
//! A server that cannot be reached fails the test with how to start one, unless
//! `DARKROOM_SKIP_POSTGRES=1`, which skips the PostgreSQL tests with a loud notice.

#![allow(
    dead_code,
    clippy::print_stderr,
    clippy::unwrap_used,
    reason = "each test binary uses a subset; the skip notice must reach the test log"
)]

use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server the tests use.
pub fn server_url() -> String {
    std::env::var("DARKROOM_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Whether the PostgreSQL tests are skipped; says so loudly when they are.
pub fn skipped(test: &str) -> bool {
    let skip = std::env::var("DARKROOM_SKIP_POSTGRES").is_ok_and(|value| value == "1");
    if skip {
        eprintln!(
            "\n!!! SKIPPED {test} on PostgreSQL (DARKROOM_SKIP_POSTGRES=1): \
             the PostgreSQL engine is NOT tested !!!\n"
        );
    }
    skip
}

/// Connects to the test server as its URL says, or fails the test with how to get one.
async fn admin() -> PgConnection {
    let url = server_url();
    match PgConnection::connect(&url).await {
        Ok(connection) => connection,
        Err(error) => panic!(
            "PostgreSQL is not reachable at {url}: {error}\n\
             The store tests run on PostgreSQL too. Start one (Debian: `apt-get install \
             postgresql`, then `pg_ctlcluster 15 main start`; trust or password login for \
             the URL's user), or point DARKROOM_TEST_POSTGRES_URL at yours \
             (postgres://USER[:PASSWORD]@HOST:PORT/DATABASE). \
             DARKROOM_SKIP_POSTGRES=1 skips these tests."
        ),
    }
}

fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..16])
}

/// A schema of its own on the test server, dropped with everything in it on drop.
#[derive(Debug)]
pub struct TestSchema {
    /// The server URL with `search_path` set to the schema: what Darkroom opens.
    pub url: String,
    pub name: String,
}

impl TestSchema {
    /// Creates a fresh schema, or `None` when PostgreSQL tests are skipped.
    pub async fn create(test: &str) -> Option<Self> {
        if skipped(test) {
            return None;
        }
        let name = unique_name("darkroom_test");
        let mut admin = admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={name}"));
        Some(Self {
            url: url.to_string(),
            name,
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        run_detached(sql);
    }
}

/// A database of its own on the test server, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    /// Creates a fresh database, or `None` when PostgreSQL tests are skipped.
    pub async fn create(test: &str) -> Option<Self> {
        if skipped(test) {
            return None;
        }
        let name = unique_name("darkroom_test");
        let mut admin = admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&server_url()).unwrap();
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        run_detached(sql);
    }
}

/// Runs one statement on the test server from a thread of its own, so a guard can clean
/// up from `Drop` inside or outside a runtime, and after a failed test too.
fn run_detached(sql: String) {
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut admin = admin().await;
            if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut admin)
                .await
            {
                eprintln!("cleanup `{sql}` failed: {error}");
            }
        });
    });
    let _ = cleanup.join();
}
