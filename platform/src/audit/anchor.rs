//! Anchors: `AuditAnchored` events that hash every chain head, so that an aggregate losing its
//! newest events (or disappearing) is detectable. A chain only proves that what remains is
//! unaltered; an anchor proves what was there.
//!
//! An anchor covers the events of every transaction below `below_tx_id`, the oldest
//! transaction still running when it was written: those transactions have all finished, so the
//! covered set can never grow later, and recomputing the heads of that set at verification time
//! must give the same hash. The anchor itself is an ordinary event of aggregate
//! `AuditAnchor`/`anchor`, chained by the trigger and published by the relay like any other.

use futures::TryStreamExt;
use helpdesk_schemas::AuditAnchored;
use helpdesk_schemas::audit::{
    ANCHOR_AGGREGATE_ID, ANCHOR_AGGREGATE_TYPE, ANCHOR_EVENT_TYPE, ANCHOR_EVENT_VERSION,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{BrokenLink, ChainProblem, to_hex};

/// What the latest anchor says about the store.
#[derive(Debug, Clone)]
pub enum AnchorCheck {
    /// No anchor was written yet: a deleted tail cannot be detected.
    NoAnchor,
    /// The chain heads the latest anchor covers still hash to its `heads_hash`.
    Matches {
        /// The anchor event's sequence.
        sequence: i64,
        /// Its payload.
        anchor: AuditAnchored,
    },
    /// They do not (or the anchor is unreadable).
    Mismatch(BrokenLink),
}

/// An anchor just appended.
#[derive(Debug, Clone)]
pub struct WrittenAnchor {
    /// Its sequence in the `AuditAnchor`/`anchor` aggregate.
    pub sequence: i64,
    /// Its global position.
    pub global_position: i64,
    /// Its payload.
    pub anchor: AuditAnchored,
}

/// Appends an anchor over every chain head of the events committed so far. Two writers racing
/// collide on the anchor's sequence (SQLSTATE 23505); the loser's error says so.
pub async fn write_anchor(pool: &PgPool) -> sqlx::Result<WrittenAnchor> {
    let below_tx_id: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            .fetch_one(pool)
            .await?;
    let heads = heads_below(pool, below_tx_id).await?;
    let position: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(global_position), 0) FROM events WHERE tx_id < $1::text::xid8",
    )
    .bind(below_tx_id.to_string())
    .fetch_one(pool)
    .await?;
    let anchor = AuditAnchored {
        below_tx_id,
        position,
        aggregates: heads.aggregates,
        heads_hash: heads.hash,
    };
    // Stored externally tagged by the event name, like every domain event.
    let payload = serde_json::json!({ ANCHOR_EVENT_TYPE: anchor });
    let (sequence, global_position): (i64, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) \
         SELECT $1, $2, coalesce(max(sequence), 0) + 1, $3, $4, $5::json, $6::json \
           FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         RETURNING sequence, global_position",
    )
    .bind(ANCHOR_AGGREGATE_TYPE)
    .bind(ANCHOR_AGGREGATE_ID)
    .bind(ANCHOR_EVENT_TYPE)
    .bind(ANCHOR_EVENT_VERSION)
    .bind(payload)
    .bind(metadata())
    .fetch_one(pool)
    .await?;
    Ok(WrittenAnchor {
        sequence,
        global_position,
        anchor,
    })
}

/// Appends an anchor when events other than anchors were committed since the latest one
/// covered the store; `None` when nothing changed.
pub async fn anchor_if_due(pool: &PgPool) -> sqlx::Result<Option<WrittenAnchor>> {
    let covered_below = match latest_anchor(pool).await? {
        Some((_, payload)) => readable(&payload).map_or(0, |anchor| anchor.below_tx_id),
        None => 0,
    };
    let due: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events \
                         WHERE tx_id >= $1::text::xid8 \
                           AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
                           AND aggregate_type <> $2)",
    )
    .bind(covered_below.to_string())
    .bind(ANCHOR_AGGREGATE_TYPE)
    .fetch_one(pool)
    .await?;
    if !due {
        return Ok(None);
    }
    write_anchor(pool).await.map(Some)
}

/// Recomputes the chain heads the latest anchor covers and compares them with it.
pub async fn check_latest_anchor(pool: &PgPool) -> sqlx::Result<AnchorCheck> {
    let Some((sequence, payload)) = latest_anchor(pool).await? else {
        return Ok(AnchorCheck::NoAnchor);
    };
    let Some(anchor) = readable(&payload) else {
        let detail = format!("the anchor is not a readable {ANCHOR_EVENT_TYPE} event");
        return Ok(AnchorCheck::Mismatch(anchor_link(sequence, detail)));
    };
    let now = heads_below(pool, anchor.below_tx_id).await?;
    if now.hash == anchor.heads_hash && now.aggregates == anchor.aggregates {
        return Ok(AnchorCheck::Matches { sequence, anchor });
    }
    let lost = if now.aggregates < anchor.aggregates {
        format!(
            "{} aggregates were deleted",
            anchor.aggregates - now.aggregates
        )
    } else {
        "an aggregate lost its newest events, or a head was rewritten".to_owned()
    };
    let detail = format!(
        "the anchor hashed {} chain heads (events below transaction {}, up to position {}) to \
         {}; they now are {} heads hashing to {}: {lost}",
        anchor.aggregates,
        anchor.below_tx_id,
        anchor.position,
        anchor.heads_hash,
        now.aggregates,
        now.hash
    );
    Ok(AnchorCheck::Mismatch(anchor_link(sequence, detail)))
}

/// The latest anchor event: its sequence and stored payload.
async fn latest_anchor(pool: &PgPool) -> sqlx::Result<Option<(i64, serde_json::Value)>> {
    sqlx::query_as(
        "SELECT sequence, payload::jsonb FROM events \
          WHERE aggregate_type = $1 AND aggregate_id = $2 \
          ORDER BY sequence DESC LIMIT 1",
    )
    .bind(ANCHOR_AGGREGATE_TYPE)
    .bind(ANCHOR_AGGREGATE_ID)
    .fetch_optional(pool)
    .await
}

fn readable(payload: &serde_json::Value) -> Option<AuditAnchored> {
    serde_json::from_value(payload.get(ANCHOR_EVENT_TYPE)?.clone()).ok()
}

fn anchor_link(sequence: i64, detail: String) -> BrokenLink {
    BrokenLink {
        aggregate_type: ANCHOR_AGGREGATE_TYPE.to_owned(),
        aggregate_id: ANCHOR_AGGREGATE_ID.to_owned(),
        sequence,
        problem: ChainProblem::AnchorMismatch,
        detail,
    }
}

/// The chain heads of the events of transactions below `below_tx_id`.
struct Heads {
    aggregates: i64,
    /// Lower-case hex SHA-256 over the heads' lines.
    hash: String,
}

/// Hashes the heads as docs/audit-hash-chain.md defines it: per aggregate, in byte order of
/// (aggregate_type, aggregate_id), the jsonb text of `[type, id, sequence, hex hash]` and a
/// newline. Streamed, so the store's size is no limit.
async fn heads_below(pool: &PgPool, below_tx_id: i64) -> sqlx::Result<Heads> {
    let mut lines = sqlx::query_scalar::<_, String>(
        "SELECT jsonb_build_array(aggregate_type, aggregate_id, sequence, \
                                  encode(hash, 'hex'))::text \
           FROM (SELECT DISTINCT ON (aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\") \
                        aggregate_type, aggregate_id, sequence, hash \
                   FROM events \
                  WHERE tx_id < $1::text::xid8 \
                  ORDER BY aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\", \
                           sequence DESC) AS heads \
          ORDER BY aggregate_type COLLATE \"C\", aggregate_id COLLATE \"C\"",
    )
    .bind(below_tx_id.to_string())
    .fetch(pool);
    let mut hasher = Sha256::new();
    let mut aggregates = 0;
    while let Some(line) = lines.try_next().await? {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
        aggregates += 1;
    }
    Ok(Heads {
        aggregates,
        hash: to_hex(&hasher.finalize()),
    })
}

/// Who, when and why (invariant 6): the helpdesk itself, anchoring the audit chain.
fn metadata() -> serde_json::Value {
    let id = uuid::Uuid::new_v4().to_string();
    serde_json::json!({
        "actor_id": "helpdesk",
        "actor_role": "system",
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlation_id": id,
        "causation_id": id,
        "request_id": id,
        "command": "AnchorAuditChain",
    })
}
