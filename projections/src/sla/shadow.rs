//! The SLA rebuild's copies of its tables: filled in a schema of their own, indexed once when
//! they are full, and moved in place of the live tables as the rebuild's last statements.
//!
//! Emptying the live tables and inserting again left every old row dead in the heap and in
//! each index, and every insert maintained four indexes, checking uniqueness past the dead
//! entries of the same keys. Filling bare tables and building their indexes afterwards does
//! the same work in about half the time (docs/benchmarks.md). Readers wait no longer than they
//! did: until the swap they read the live tables (which the rebuild holds in `EXCLUSIVE` mode,
//! as before), and the swap holds `ACCESS EXCLUSIVE` only for the drop and the moves.
//!
//! The copies follow the catalog, not a second list of columns and indexes: each is created
//! `LIKE` its live table (columns, defaults, `NOT NULL` and `CHECK` constraints, column
//! storage and compression, comments; `UNLOGGED` if it is) with the same storage parameters,
//! and gets every index and primary-key, unique, exclusion and foreign-key constraint of the
//! live table, under the same names (they live in another schema until the swap, so the names
//! do not collide). What does not carry over: privileges, extended statistics (`CREATE
//! STATISTICS`; moving a table to another schema leaves them behind), triggers, row security,
//! publication membership and replica identity; and an object that depends on one of the
//! tables (a view, say) makes the drop fail, which rolls the whole rebuild back. A
//! `REPEATABLE READ` transaction whose snapshot predates the commit and that first reads the
//! tables after it sees them empty, as after `TRUNCATE` (docs/operations.md).

use std::time::Duration;

use sqlx::{Postgres, Transaction};

use crate::ProjectionError;

/// The schema the copies are filled in; it exists only inside a rebuild's transaction.
const SCHEMA: &str = "sla_rebuild";

/// How long one try at the swap's lock waits for readers of the live tables before it lets
/// them go on (new readers queue behind a waiting `ACCESS EXCLUSIVE` request).
const SWAP_LOCK_TIMEOUT: &str = "1s";

/// How long the swap goes on trying before the rebuild gives up (and rolls back): long enough
/// for a slow report, short of waiting out a `pg_dump`, which holds every table it copies.
const SWAP_PATIENCE: Duration = Duration::from_secs(300);

/// Copies of some tables, being filled in the rebuild's transaction.
#[derive(Debug)]
pub struct Shadow {
    /// The tables copied, unqualified.
    tables: Vec<String>,
    /// The live tables' schema, quoted.
    live_schema: String,
    /// The search path before the copies' schema was put first.
    search_path: String,
    /// Statements that index the copies still unindexed.
    indexing: Vec<String>,
}

impl Shadow {
    /// Creates a copy of each of `tables` and puts the copies' schema first on the search path
    /// for the rest of the transaction, so statements naming the tables unqualified fill the
    /// copies. Copies in `indexed_now` (written with upserts, which need their unique index)
    /// are indexed at once, the others by [`Shadow::swap`]. All the tables must be in one schema.
    pub async fn create(
        tx: &mut Transaction<'_, Postgres>,
        tables: &[&str],
        indexed_now: &[&str],
    ) -> Result<Shadow, ProjectionError> {
        sqlx::query(&format!("CREATE SCHEMA {SCHEMA}"))
            .execute(&mut **tx)
            .await?;
        let mut shadow = Shadow {
            tables: Vec::new(),
            live_schema: String::new(),
            search_path: sqlx::query_scalar("SELECT current_setting('search_path')")
                .fetch_one(&mut **tx)
                .await?,
            indexing: Vec::new(),
        };
        for &table in tables {
            let (schema, create): (String, String) = sqlx::query_as(
                "SELECT quote_ident(n.nspname), \
                        format('CREATE %sTABLE %I.%I \
                                    (LIKE %I.%I INCLUDING ALL EXCLUDING INDEXES EXCLUDING STATISTICS) %s', \
                               CASE WHEN c.relpersistence = 'u' THEN 'UNLOGGED ' ELSE '' END, \
                               $2::text, c.relname, n.nspname, c.relname, \
                               CASE WHEN c.reloptions IS NULL THEN '' \
                                    ELSE 'WITH (' || array_to_string(c.reloptions, ', ') || ')' END) \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.oid = $1::regclass",
            )
            .bind(table)
            .bind(SCHEMA)
            .fetch_one(&mut **tx)
            .await?;
            if !shadow.live_schema.is_empty() && shadow.live_schema != schema {
                return Err(ProjectionError::Permanent(format!(
                    "{table} is in schema {schema}, the other SLA tables in {}",
                    shadow.live_schema
                )));
            }
            sqlx::query(&create).execute(&mut **tx).await?;
            let indexing = indexing_statements(tx, table).await?;
            if indexed_now.contains(&table) {
                for statement in &indexing {
                    sqlx::query(statement).execute(&mut **tx).await?;
                }
            } else {
                shadow.indexing.extend(indexing);
            }
            shadow.tables.push(table.to_owned());
            shadow.live_schema = schema;
        }
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(format!("{SCHEMA}, {}", shadow.search_path))
            .execute(&mut **tx)
            .await?;
        Ok(shadow)
    }

    /// Indexes the copies not indexed yet, gathers their planner statistics, and replaces the
    /// live tables with them (the search path as it was). Commit the transaction next.
    pub async fn swap(self, tx: &mut Transaction<'_, Postgres>) -> Result<(), ProjectionError> {
        for statement in &self.indexing {
            sqlx::query(statement).execute(&mut **tx).await?;
        }
        let qualified = |schema: &str| -> Vec<String> {
            self.tables
                .iter()
                .map(|table| format!("{schema}.{table}"))
                .collect()
        };
        let (live, copies) = (qualified(&self.live_schema), qualified(SCHEMA));
        sqlx::query(&format!("ANALYZE {}", copies.join(", ")))
            .execute(&mut **tx)
            .await?;
        sqlx::query("SELECT set_config('search_path', $1, true)")
            .bind(&self.search_path)
            .execute(&mut **tx)
            .await?;
        lock_for_swap(tx, &live).await?;
        sqlx::query(&format!("DROP TABLE {}", live.join(", ")))
            .execute(&mut **tx)
            .await?;
        for copy in &copies {
            sqlx::query(&format!(
                "ALTER TABLE {copy} SET SCHEMA {}",
                self.live_schema
            ))
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(&format!("DROP SCHEMA {SCHEMA}"))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The statements that give the copy of `table` every index and index-backed or foreign-key
/// constraint of the live table, under the same names (from `pg_get_constraintdef` and
/// `pg_get_indexdef`, whose text after `USING` names no table).
async fn indexing_statements(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
) -> Result<Vec<String>, ProjectionError> {
    Ok(sqlx::query_scalar(
        "SELECT format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', \
                       $2::text, $1::text, conname, pg_get_constraintdef(oid)) \
           FROM pg_constraint \
          WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x', 'f') \
         UNION ALL \
         SELECT format('CREATE %sINDEX %I ON %I.%I USING %s', \
                       CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END, i.relname, \
                       $2::text, $1::text, \
                       substring(pg_get_indexdef(x.indexrelid) FROM ' USING (.*)$')) \
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
          WHERE x.indrelid = $1::regclass \
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                             WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid \
                               AND c.contype IN ('p', 'u', 'x'))",
    )
    .bind(table)
    .bind(SCHEMA)
    .fetch_all(&mut **tx)
    .await?)
}

/// Takes `ACCESS EXCLUSIVE` on the live tables for the drop. A report reading them holds the
/// request up, and new readers queue behind it; so each try waits at most
/// [`SWAP_LOCK_TIMEOUT`], and a try that times out (or is chosen to break a deadlock with a
/// reader holding one table and waiting for another) is rolled back to its savepoint, which
/// releases what it took and nothing the rebuild took before, and the swap tries again, for
/// [`SWAP_PATIENCE`] at most.
async fn lock_for_swap(
    tx: &mut Transaction<'_, Postgres>,
    live: &[String],
) -> Result<(), ProjectionError> {
    let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", live.join(", "));
    let started = std::time::Instant::now();
    loop {
        let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
        sqlx::query(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .execute(&mut *savepoint)
            .await?;
        match sqlx::query(&lock).execute(&mut *savepoint).await {
            Ok(_) => {
                sqlx::query("SET LOCAL lock_timeout = DEFAULT")
                    .execute(&mut *savepoint)
                    .await?;
                savepoint.commit().await?;
                return Ok(());
            }
            Err(sqlx::Error::Database(error))
                if started.elapsed() < SWAP_PATIENCE
                    // lock_not_available, deadlock_detected
                    && matches!(error.code().as_deref(), Some("55P03" | "40P01")) =>
            {
                savepoint.rollback().await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
