-- The compliance report's histogram counts durations in buckets instead of exact minutes
-- (docs/adr/0008-sla-clock-and-engine.md, addendum "Bucketed durations").
--
-- With exact minutes a long metric (resolution) has nearly one sla_report_counts row per
-- measurement, so a year's report read hundreds of thousands of rows. From now on
-- business_minutes of a count row is a bucket, named by its lowest minute: below 128 minutes
-- every minute is its own bucket (exact); from 128 on, each power of two [2^e, 2^(e+1)) is cut
-- into 32 buckets of width 2^e / 32 (128–131, 132–135, …, 256–263, …). The report reads a
-- bucket as its midpoint, which lies within 1/64 (1.56 %) of every duration it holds. -1 (a
-- breach not yet answered) is unchanged. sla_metric keeps the exact minutes.
--
-- sla_minutes_bucket mirrors helpdesk_domain::sla::histogram::bucket_of, which the projection,
-- the breach watcher and the rebuild use; a test (tests/tests/sla.rs) checks that the two agree.
-- Changing the constants means a new migration that re-buckets the rows again.

-- The bucket of a duration in whole minutes (identity below 128 and for negative values, so -1
-- stays -1). floor(log2(minutes)) is 64 minus the position of the highest set bit in the
-- 64-bit string: exact, where a floating-point log would round at powers of two.
CREATE FUNCTION sla_minutes_bucket(minutes bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN minutes < 128 THEN minutes
        ELSE (minutes >> (64 - position('1' IN minutes::bit(64)::text) - 5))
                      << (64 - position('1' IN minutes::bit(64)::text) - 5)
    END
$$;

-- Re-bucket the existing counts in place: sum them per bucket in a scratch table, then refill
-- the table. Refilling (rather than swapping in a new table) keeps its definition untouched:
-- the primary key with INCLUDE (count), the checks and the autovacuum settings. Counts are all
-- positive (zeros are deleted), so no sum is zero.
CREATE TEMPORARY TABLE sla_report_counts_bucketed AS
SELECT metric, dimension, granularity, period, key, outcome,
       sla_minutes_bucket(business_minutes) AS business_minutes, sum(count)::bigint AS count
  FROM sla_report_counts
 GROUP BY metric, dimension, granularity, period, key, outcome, sla_minutes_bucket(business_minutes);

TRUNCATE sla_report_counts;

INSERT INTO sla_report_counts
SELECT metric, dimension, granularity, period, key, outcome, business_minutes, count
  FROM sla_report_counts_bucketed
 ORDER BY metric, dimension, granularity, period, key, outcome, business_minutes;

DROP TABLE sla_report_counts_bucketed;

-- Every writer must bucket: a row with exact minutes above the threshold would be a second row
-- for the same bucket, counted apart. The check turns a writer that forgot into an error.
ALTER TABLE sla_report_counts
    ADD CONSTRAINT sla_report_counts_minutes_bucketed
    CHECK (business_minutes = sla_minutes_bucket(business_minutes));
