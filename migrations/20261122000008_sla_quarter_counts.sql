-- SLA report counts are kept per calendar quarter as well (docs/adr/0008-sla-clock-and-engine.md,
-- addendum "Quarter counts").
--
-- A long report reads whole quarters from quarter rows, whole months outside them from month
-- rows and the edges from day rows. On sla-bench's data, a 365-day report of resolution by
-- assignee read 131,185 count rows from months and days, and reads 80,511 with quarters: a
-- key's durations repeat across the months of a quarter, so a quarter holds far fewer rows than
-- its three months. A quarter row is dated by the quarter's first day (1 January, 1 April, 1 July,
-- 1 October).
--
-- The ALTER TABLE takes the table's exclusive lock for the whole migration (sqlx runs it in one
-- transaction), so no projection writes counts while the quarters are summed from the months.
-- Stop workers of the previous release before migrating: they would go on counting days and
-- months only.

ALTER TABLE sla_report_counts DROP CONSTRAINT sla_report_counts_granularity_check;
ALTER TABLE sla_report_counts
    ADD CONSTRAINT sla_report_counts_granularity_check
    CHECK (granularity IN ('day', 'month', 'quarter'));

-- A quarter's count is the sum of its three months' (month rows already hold every outcome,
-- bucketed), so the quarter rows follow from them without reading sla_metric.
INSERT INTO sla_report_counts
SELECT metric, dimension, 'quarter', date_trunc('quarter', period)::date, key, outcome,
       business_minutes, sum(count)::bigint
  FROM sla_report_counts
 WHERE granularity = 'month'
 GROUP BY metric, dimension, date_trunc('quarter', period)::date, key, outcome, business_minutes
 ORDER BY 1, 2, 3, 4, 5, 6, 7;
