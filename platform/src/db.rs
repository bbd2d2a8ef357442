//! Postgres: create the database when missing, connect, run the migrations in `migrations/`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::Secret;

/// The migrations of `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Why the database could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` is not a Postgres URL.
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// The server did not answer.
    #[error(
        "cannot reach PostgreSQL at {host}:{port} ({source}); start it with: \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    )]
    Unreachable {
        host: String,
        port: u16,
        #[source]
        source: sqlx::Error,
    },
    /// Creating the database failed.
    #[error("cannot create database {name:?}: {source}")]
    Create {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Creates the database named in `url` when it does not exist yet. Connects to the server's
/// `postgres` maintenance database to do so.
pub async fn ensure_database(url: &Secret) -> Result<(), DbError> {
    let options = PgConnectOptions::from_str(url.expose()).map_err(DbError::InvalidUrl)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let unreachable = |source| DbError::Unreachable {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        source,
    };
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(unreachable)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .map_err(unreachable)?;
    if !exists {
        let statement = format!("CREATE DATABASE {}", quote_identifier(&name));
        match sqlx::query(&statement).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE: fine.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(source) => return Err(DbError::Create { name, source }),
        }
    }
    let _ = admin.close().await;
    Ok(())
}

/// How long a pooled connection may sit idle before it is tested again when handed out.
const IDLE_BEFORE_TEST: Duration = Duration::from_secs(1);

/// Opens a connection pool to the database in `url`.
pub async fn connect(url: &Secret, max_connections: u32) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(url.expose()).map_err(DbError::InvalidUrl)?;
    let host = options.get_host().to_owned();
    let port = options.get_port();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx tests every connection on release (a round trip), and by default again on
        // acquire. Under load a connection is handed out again within milliseconds, so the
        // second test only doubles the round trips (it cost a tenth of the server's CPU in
        // the load benchmark); one that sat idle is still tested, so a connection the server
        // dropped meanwhile (a Postgres restart) is replaced before a request gets it.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_TEST {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| DbError::Unreachable { host, port, source })
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Quotes a Postgres identifier (`my"db` → `"my""db"`).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Prefix of databases made by [`create_scratch_database`].
const SCRATCH_PREFIX: &str = "hdtest_";
/// Scratch databases older than this are dropped by the next [`create_scratch_database`].
const SCRATCH_MAX_AGE_SECS: u64 = 6 * 3600;

/// Creates a new, migrated database with a unique name on the server of `server_url`, for
/// tests and demos that must not share state. Returns its URL. Scratch databases left behind
/// by earlier runs (older than six hours) are dropped on the way.
pub async fn create_scratch_database(server_url: &str) -> Result<Secret, DbError> {
    let url = scratch_database_url(server_url).await?;
    ensure_database(&url).await?;
    let pool = connect(&url, 2).await?;
    migrate(&pool).await?;
    pool.close().await;
    Ok(url)
}

/// Picks a unique scratch database name on the server of `server_url` without creating it
/// (for tests of the start-up path that creates a missing database), and drops scratch
/// databases older than six hours.
pub async fn scratch_database_url(server_url: &str) -> Result<Secret, DbError> {
    let options = PgConnectOptions::from_str(server_url).map_err(DbError::InvalidUrl)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("{SCRATCH_PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
    drop_old_scratch_databases(&options, now).await;
    let url = options.database(&name).to_url_lossy().to_string();
    Ok(Secret::new(url))
}

async fn drop_old_scratch_databases(options: &PgConnectOptions, now: u64) {
    let Ok(mut admin) = options.clone().database("postgres").connect().await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'hdtest\\_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|secs| secs + SCRATCH_MAX_AGE_SECS < now) {
            let statement = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_identifier(&name)
            );
            let _ = sqlx::query(&statement).execute(&mut admin).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quote_identifier;

    #[test]
    fn it_doubles_quotes_inside_identifiers() {
        assert_eq!(quote_identifier("my\"db"), "\"my\"\"db\"");
    }
}
