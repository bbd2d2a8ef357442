-- SLA writers append their report count changes here instead of updating sla_report_counts,
-- and one folder at a time sums them into sla_report_counts and deletes them
-- (docs/adr/0012-sla-report-count-changes.md).
--
-- Every ticket's outcome of a day lands on the same count rows (today, priority normal, the one
-- policy, …), so writers updating them in place waited for each other: under ADR 0010 on one
-- advisory lock held through the write and the commit (227.6 s of waiting in a 10-minute run at
-- 1,000 commands/s, 19.8 ms a run). Appending to a table without a key never waits for another
-- writer. The reports read sla_report_counts plus the changes not yet folded, so a report is as
-- current as before.
--
-- The same checks as sla_report_counts (LIKE … INCLUDING CONSTRAINTS copies the CHECKs and the
-- NOT NULLs, not the primary key), so a writer's bad row fails its own write rather than a fold.
-- No index: the folder reads the whole table, and a report's slice of it is a few seconds of
-- changes. The folder vacuums it itself, so it stays small whatever autovacuum does; a vacuum
-- does not give the emptied pages back (vacuum_truncate off), since that takes an ACCESS
-- EXCLUSIVE lock that writers and reports would queue behind (and that a hot standby replays
-- by cancelling its queries), and the pages are filled again within seconds.
CREATE TABLE sla_report_count_changes (LIKE sla_report_counts INCLUDING CONSTRAINTS)
    WITH (vacuum_truncate = off);
ALTER TABLE sla_report_count_changes
    ADD CONSTRAINT sla_report_count_changes_count_check CHECK (count <> 0);
