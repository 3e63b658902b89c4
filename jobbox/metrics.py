"""Prometheus metrics of the read and write paths (served on /metrics; docs/
reference/metrics.md).

Counters and gauges only, a leaf every other module may import; the view that serves them is
`jobbox.http.ops.metrics_view`. Under prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR) the view sums every process's values; each gauge says how
(`multiprocess_mode`). deploy/grafana/jobbox.json charts them.
"""

from prometheus_client import Counter, Gauge

READS = Counter(
    "jobbox_reads_total",
    "Job status reads by where the answer came from.",
    ["kind", "source"],  # source: redis, db_fill, db_fallback, not_found
)
CACHE_WRITES = Counter(
    "jobbox_cache_writes_total",
    "Snapshot writes to Redis by outcome.",
    ["kind", "outcome"],  # outcome: stored, stale, failed, deleted (refused: the job was deleted)
)
LARGE_FIELD_READS = Counter(
    "jobbox_large_field_reads_total",
    "Reads of snapshot fields too large for Redis (a job's result) by where they came from.",
    ["kind", "source"],  # source: process (the windowed cache), db
)
PRINCIPAL_READS = Counter(
    "jobbox_principal_reads_total",
    "Token or session resolutions by where the answer came from.",
    # source: redis, db_fill, db_fallback; fill_refused (a revocation came between the fill's
    # read and its write: not stored), miss_budget_spent (an address's bogus tokens used up
    # their database reads: refused unread)
    ["source"],
)

# The job box (jobbox.box, jobbox.stream).
JOBBOX_READS = Counter(
    "jobbox_box_reads_total",
    "Job-box reads by outcome.",
    ["outcome"],  # outcome: redis, rebuilt, db_fallback
)
STREAMS_OPEN = Gauge(
    "jobbox_streams_open",
    "Event streams open in this process.",
    multiprocess_mode="livesum",
)
STREAM_EVENTS = Counter(
    "jobbox_stream_events_total",
    "Events sent on event streams, by kind of start or event.",
    ["event"],  # event: box, resync, replayed, changed, progressed, dropped_slow
)


# --- Resilience (docs/explanation/invariants.md, invariants 6-8) ---
# READS sources added: negative (a remembered missing id), outage_copy (Redis unavailable,
# answered by this process's short-lived copy), forced (a client named a newer version than
# this process held: jobbox.newest). PRINCIPAL_READS sources added:
# outage_copy, shared (another thread of this process read the same principal).
REDIS_BREAKER_STATE = Gauge(
    "jobbox_redis_breaker_state",
    "The Redis circuit breaker: 0 closed, 1 open (answering from the database), 2 half-open.",
    # Each live process's own state (a `pid` label under multiprocess mode): a sum of states
    # means nothing; max() or count(... > 0) over them does.
    multiprocess_mode="liveall",
)
REDIS_BREAKER_OPENS = Counter(
    "jobbox_redis_breaker_opens_total",
    "Times the Redis circuit breaker opened after a failure or timeout.",
)
REPAIRS = Counter(
    "jobbox_repairs_total",
    "Stale or missing snapshots the reconciler stored again.",
    ["kind"],
)
SINGLE_FLIGHT_WAITS = Counter(
    "jobbox_single_flight_waits_total",
    "Misses that waited for another reader's fill instead of reading the database.",
    # outcome: shared (another thread of this process read it), filled (another reader's
    # fill arrived in Redis), gave_up (the lease outlived the wait: read the database)
    ["kind", "outcome"],
)
OUTAGE_QUERIES = Counter(
    "jobbox_outage_queries_total",
    "Batch database queries that refreshed this process's outage copies while Redis was "
    "unavailable (one per group per interval, plus batches of first reads).",
    ["group"],  # group: a job kind, token, user
)
DATABASE_UNAVAILABLE = Counter(
    "jobbox_database_unavailable_total",
    "Requests answered 503 because the database could not be reached.",
)
# Events go where they are watched (invariant 12): what one process reads.
STREAM_HISTORY_READS = Counter(
    "jobbox_stream_history_entries_read_total",
    "History entries this process read for the people it streams to.",
)
STREAM_OWNERS_WATCHED = Gauge(
    "jobbox_stream_owners_watched",
    "People whose notification channel this process subscribes to.",
    multiprocess_mode="livesum",
)


def start_at_zero(kinds: list[str]) -> None:
    """Create every known label set at 0 (called before the first scrape): a dashboard then
    shows 0 for a kind of read that has not happened yet, not "no data" (a query that finds
    no series is indistinguishable from one that names a metric the service does not export).
    """
    for kind in kinds:
        for source in ("redis", "db_fill", "db_fallback", "not_found", "negative",
                       "outage_copy", "forced"):
            READS.labels(kind, source)
        for outcome in ("stored", "stale", "failed"):
            CACHE_WRITES.labels(kind, outcome)
        for outcome in ("shared", "filled", "gave_up"):
            SINGLE_FLIGHT_WAITS.labels(kind, outcome)
        REPAIRS.labels(kind)
        OUTAGE_QUERIES.labels(kind)
    for group in ("token", "user"):
        OUTAGE_QUERIES.labels(group)
    for source in ("redis", "db_fill", "db_fallback", "outage_copy", "shared",
                   "fill_refused", "miss_budget_spent"):
        PRINCIPAL_READS.labels(source)
    for outcome in ("redis", "rebuilt", "db_fallback"):
        JOBBOX_READS.labels(outcome)
