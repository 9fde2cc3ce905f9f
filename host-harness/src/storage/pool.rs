//! PostgreSQL connection pools, as the store and the cache open them: one r2d2
//! pool per backend, each connection on the configured schema.

use std::time::Duration;

use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

/// The connection manager of every pool.
pub type Manager = PostgresConnectionManager<NoTls>;

/// A pool of PostgreSQL connections.
pub type Pool = r2d2::Pool<Manager>;

#[derive(Debug)]
struct SearchPath(String);

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for SearchPath {
    fn on_acquire(&self, c: &mut postgres::Client) -> Result<(), postgres::Error> {
        c.batch_execute(&format!("SET search_path TO \"{}\"", self.0))
    }
}

/// Whether `schema` is a plain identifier (it is quoted into statements).
pub fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A pool of at most `max_size` connections to `url`, on `schema` when given; a
/// connection is waited for at most `wait`. Connects once before returning; more
/// connections open as they are needed.
pub fn pool(
    url: &str,
    schema: Option<&str>,
    max_size: u32,
    wait: Duration,
) -> Result<Pool, String> {
    let config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    // Connections open as they are needed (r2d2 would open them all at once),
    // so hosts sharing a server do not take its connection slots idle.
    let mut builder = r2d2::Pool::builder()
        .max_size(max_size.max(1))
        .min_idle(Some(1))
        .connection_timeout(wait);
    if let Some(s) = schema {
        if !valid_schema(s) {
            return Err(format!("invalid schema name '{s}'"));
        }
        builder = builder.connection_customizer(Box::new(SearchPath(s.to_string())));
    }
    builder
        .build(PostgresConnectionManager::new(config, NoTls))
        .map_err(|e| e.to_string())
}
