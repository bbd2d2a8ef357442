#!/usr/bin/env bash
# Raw baselines for the load benchmark (issue 9), measured in the same run as the load phases
# so that the machine's speed cancels out of the ratios in docs/benchmarks.md:
#
#  (a) pgbench replaying the SQL of one cqrs-es command, as our command path sends it, on the
#      real schema (our migrations, hash-chain trigger included) in a scratch database, at the
#      concurrency of the closed-loop load, with the same mix of one open to four follow-ups;
#  (b) the raw JetStream publish and consume rates and publish → consume latency on the same
#      broker (`helpdesk-load baseline-jetstream`).
#
# Why bash: pgbench is a command-line tool and its custom script *is* the baseline; a reader
# can run the same lines by hand. JetStream has no such tool installed here, so (b) is the
# Rust client the relay uses.
#
# Usage: bench/baselines.sh [--concurrency C] [--duration SECONDS] [--out DIR]
#   Postgres: HELPDESK_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
#   NATS:     NATS_URL (default nats://127.0.0.1:4222)
#   Binaries: $CARGO_TARGET_DIR/release (default target/release): helpdesk, helpdesk-load
# Writes DIR/pgbench.json and DIR/jetstream.json.
set -euo pipefail

concurrency=16
duration=60
out=.
while [ $# -gt 0 ]; do
    case "$1" in
        --concurrency) concurrency="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "$0")" && pwd)"
bin="${CARGO_TARGET_DIR:-$here/../target}/release"
server_url="${HELPDESK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
for tool in "$bin/helpdesk" "$bin/helpdesk-load"; do
    [ -x "$tool" ] || { echo "$tool is missing: cargo build --release -p helpdesk -p helpdesk-tests" >&2; exit 2; }
done
command -v pgbench >/dev/null || { echo "pgbench is missing (apt-get install postgresql-client)" >&2; exit 2; }
mkdir -p "$out"

# ---------------------------------------------------------------------------------------------
# (a) pgbench: one command's SQL shape
#
# What one command does in Postgres (command-api/src/execute.rs over postgres-es 0.5):
#   1. load the aggregate: postgres-es's SELECT of all the ticket's events, in order (on the
#      pool, outside any transaction);
#   2. append: BEGIN; one INSERT per new event (always one here); COMMIT. The INSERT fires
#      our BEFORE INSERT hash-chain trigger (migration 0005), which reads the predecessor's
#      hash and hashes the canonical text of the event: included, since every command pays it;
#   3. read the new event's global_position for the response (one SELECT): included.
# Not included: Idempotency-Key rows (the load generator sends no keys, so the API writes
# none), and everything after the commit that is not on the request path (relay, projections).
# Payloads and metadata are copies of those the API stores for the load generator's commands
# (same event versions, fields and sizes; ids and times vary), so the trigger hashes as much text as it does under load. (A `:`
# followed by a letter or digit is a pgbench variable, even inside quotes: the JSON keeps a
# space after every key, and the metadata is built with jsonb_build_object.)
#
# Each pgbench client is one worker of the closed loop: it opens a ticket, then takes its four
# follow-ups (status, reply, assign, tags), each a pgbench transaction, and starts over. A
# client's variables persist across its transactions: `step` is the command of the ticket,
# `n` numbers the client's tickets.

scratch="hdbench_pgbench_$(date +%s)_$$"
# The scratch database on the same server, keeping the URL's parameters (sslmode, say).
server_base="${server_url%%\?*}"
server_query=""
[ "$server_base" != "$server_url" ] && server_query="?${server_url#*\?}"
db_url="${server_base%/*}/$scratch$server_query"
work="$(mktemp -d)"
cleanup() {
    psql "$server_url" -qAtc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "baselines: migrating scratch database $scratch" >&2
DATABASE_URL="$db_url" RUST_LOG=warn "$bin/helpdesk" migrate >/dev/null

cat > "$work/command.sql" <<'SQL'
\if :step = 0
\set n :n + 1
\endif
\set ticket :client_id * 100000000 + :n
\set seq :step + 1
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = 'Ticket' AND aggregate_id = 'pgbench-' || lpad(:ticket::text, 28, '0')
 ORDER BY sequence;
BEGIN;
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ('Ticket', 'pgbench-' || lpad(:ticket::text, 28, '0'), :seq,
        (ARRAY['TicketOpened', 'TicketStatusChanged', 'ReplyAdded', 'TicketAssigned', 'TagsChanged'])[:step + 1],
        (ARRAY['1', '1', '2', '1', '1'])[:step + 1],
        (ARRAY[
          '{"TicketOpened": {"tags": [], "group": null, "channel": "web", "subject": "Printer on fire, floor 1234", "priority": "normal", "requester": {"customer_id": "cust-234"}, "ticket_id": "01a1ffea-deb3-7542-b8ae-78bd7c25e725", "description": "The printer on our floor is on fire again. Please send someone before the paper runs out; we have a deadline at five."}}',
          '{"TicketStatusChanged": {"to": "open", "from": "new"}}',
          '{"ReplyAdded": {"body": "We are on it; a technician is on the way.", "author": {"id": "agent-load", "kind": "agent"}, "visibility": "public", "attachments": [], "interaction_id": "01a1ffea-dec7-7093-9880-b7abc3b12fa6"}}',
          '{"TicketAssigned": {"group": null, "assignee": "agent-34", "previous_group": null, "previous_assignee": null}}',
          '{"TagsChanged": {"added": ["printer"], "removed": []}}'
        ])[:step + 1]::jsonb,
        jsonb_build_object(
          'actor_id', 'agent-load', 'actor_role', 'agent', 'occurred_at', clock_timestamp(),
          'correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid(),
          'request_id', gen_random_uuid(),
          'command', (ARRAY['open_ticket', 'change_status', 'add_interaction', 'assign', 'change_tags'])[:step + 1]));
COMMIT;
SELECT global_position FROM events
 WHERE aggregate_type = 'Ticket' AND aggregate_id = 'pgbench-' || lpad(:ticket::text, 28, '0')
   AND sequence = :seq;
\set step (:step + 1) % 5
SQL
pgbench_cmd=(pgbench -n -M prepared -c "$concurrency" -j 2 -T "$duration" -D step=0 -D n=0
             -l --log-prefix="$work/cmd" -f "$work/command.sql" "$db_url")
echo "baselines: ${pgbench_cmd[*]}" >&2
(cd "$work" && "${pgbench_cmd[@]}") > "$work/pgbench.out" 2> "$work/pgbench.err" || {
    cat "$work/pgbench.err" >&2; exit 1; }
grep -E "^(tps|number of|latency)" "$work/pgbench.out" >&2

tps=$(sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' "$work/pgbench.out")
processed=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$work/pgbench.out")
failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$work/pgbench.out")
# Per-transaction log: client, transaction, latency (µs), script, epoch s, µs.
latency=$(cat "$work"/cmd.* | awk '{print $3}' | sort -n | awk '
    { v[NR] = $1; sum += $1 }
    function at(p,  r) { r = int(p * NR + 0.999999); if (r < 1) r = 1; return v[r] / 1000 }
    END { printf "{\"count\":%d,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"mean_ms\":%.3f}",
                 NR, at(0.5), at(0.9), at(0.99), v[NR] / 1000, sum / NR / 1000 }')
includes="postgres-es's SELECT of the ticket's events, then BEGIN, one INSERT (with our hash-chain trigger), COMMIT, then the global_position SELECT; no idempotency row"
cat > "$out/pgbench.json" <<JSON
{
  "command": "pgbench -n -M prepared -c $concurrency -j 2 -T $duration -D step=0 -D n=0 -l -f bench/baselines.sh:command.sql <scratch database>",
  "clients": $concurrency,
  "duration_s": $duration,
  "tps": ${tps:-0},
  "transactions": ${processed:-0},
  "failed": ${failed:-0},
  "latency": $latency,
  "includes": "$includes"
}
JSON

# ---------------------------------------------------------------------------------------------
# (b) raw JetStream
echo "baselines: helpdesk-load baseline-jetstream" >&2
"$bin/helpdesk-load" baseline-jetstream --json "$out/jetstream.json"
echo "baselines: wrote $out/pgbench.json and $out/jetstream.json" >&2
