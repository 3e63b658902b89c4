"""Jobbox settings: Django's `JOBBOX` dict over the defaults, resolved once and again whenever
Django announces a settings change (`override_settings`, pytest-django's `settings`), so a hot
poll's dozen look-ups are dict reads, not trips through Django's lazy settings object.

DESIGN.md, "Redis layout": the TTLs are the seed's (2 h running, 1 h terminal).
"""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Falls back to settings.REDIS_URL, then to a local server.
    "REDIS_URL": None,
    # REDIS_URL names any node of a Redis Cluster: redis-py's cluster client is used (every
    # script touches one slot; per-owner keys share the owner's hash tag; DESIGN.md, inv. 12).
    "REDIS_CLUSTER": False,
    # Separates environments sharing one Redis; goes before every key name.
    "KEY_PREFIX": "",
    # The seed's 2 h: long enough for a long encode; every progress report refreshes it.
    "RUNNING_TTL_SECONDS": 2 * 60 * 60,
    # The seed's 1 h: a finished job is polled for a while, then the DB answers on demand.
    "TERMINAL_TTL_SECONDS": 60 * 60,
    # A poll must not wait on a sick Redis longer than a DB read would take.
    "SOCKET_TIMEOUT_SECONDS": 0.25,
    "CONNECT_TIMEOUT_SECONDS": 0.25,
    # Cached user/tenant of a token or session; revoked by signals and `invalidate_users`, the
    # TTL is the backstop for a bulk change nobody revoked: 5 min bounds that, and costs one
    # fill (two indexed reads) per active principal per 5 min.
    "PRINCIPAL_TTL_SECONDS": 5 * 60,
    # Dotted path to `f(user) -> str | None`: the tenant a user acts in.
    "TENANT_RESOLVER": None,
    # Optional dotted path to `f(users) -> {user pk: tenant}`: the tenants of many users in
    # one query (an outage's batch refresh of principals); unset: TENANT_RESOLVER per user.
    "TENANT_RESOLVER_MANY": None,
    # "app_label.Model" names whose rows carry `user_id` and change a user's tenant.
    "PRINCIPAL_MODELS": [],
    # Token look-ups that find no token, per client address per process per minute; past it,
    # that address's uncached tokens are refused without a database read (jobbox.auth.
    # token_misses). A person mistyping a token needs a few; a scan of random tokens gets
    # this many reads a minute, and leaves no Redis key.
    "TOKEN_MISSES_PER_MINUTE": 30,
    # Dotted path to `f(request) -> str`: the client address token misses are charged to.
    # Unset: REMOTE_ADDR. Behind a proxy, set it to read the proxy's forwarding header.
    "CLIENT_ADDRESS_RESOLVER": None,
    # Bearer token a Prometheus scraper sends to /metrics; unset: staff users only.
    "METRICS_TOKEN": None,
    # --- Resilience (DESIGN.md, invariants 6-8) ---
    # One failed or timed-out Redis call opens the breaker: with a 0.25 s timeout, a second
    # try would double what a poll waits on a sick Redis, and an open breaker costs little.
    "BREAKER_FAILURE_THRESHOLD": 1,
    # While open, every read goes to the database (bounded below); then one probe. Short, so
    # a restarted Redis is back in use within seconds.
    "BREAKER_OPEN_SECONDS": 2.0,
    # While Redis is unavailable, each process reads a job from the database at most once
    # per this interval; polls come about once a second, so staleness stays at one poll.
    "FALLBACK_CACHE_SECONDS": 1.0,
    # A revoked token or session keeps working at most this long in a process while Redis
    # is unavailable (the principal is then read at most once per interval per process).
    "PRINCIPAL_FALLBACK_SECONDS": 5.0,
    # When an outage begins, a process reads each kind's live jobs (unfinished, or finished
    # within TERMINAL_TTL_SECONDS: what Redis held), newest first, in one query, so their
    # first polls here cost nothing; bounded so a huge backlog cannot make that query heavy.
    "OUTAGE_PREFETCH_MAX_JOBS": 2000,
    # Entries of each in-process fallback cache: enough for every live job and user of a
    # large process; evicted least recently used beyond that.
    "FALLBACK_CACHE_MAX_ENTRIES": 10_000,
    # A polled id that names no job is remembered this long; creating the job replaces it
    # at once (the snapshot wins), so the TTL only bounds a lost creation write.
    "NEGATIVE_TTL_SECONDS": 10,
    # The fill lease: far above one indexed read (~1 ms), short enough that waiters on a
    # holder that died read the database themselves within a second.
    "FILL_LEASE_MILLISECONDS": 1000,
    # How often a waiter looks for the fill: a few round trips per fill, a 10 ms delay.
    "FILL_WAIT_POLL_SECONDS": 0.01,
    # The reconciler re-checks rows changed within this window (it runs every 30 s from
    # beat: the window covers 30 missed runs or a 15 min Redis outage).
    "RECONCILE_WINDOW_SECONDS": 15 * 60,
    # At most this many rows per job kind per run: one bounded, indexed query.
    "RECONCILE_BATCH_LIMIT": 2000,
    # --- The job box and its event stream (jobbox.box, jobbox.stream) ---
    # Jobs one box holds at most: a person rarely has more running or finished within 1 h.
    "JOBBOX_MAX_JOBS": 100,
    # A box entry whose JSON is larger than this many bytes is sent as a summary (kind, id,
    # status, "truncated": true; the job's own endpoint has the rest): a progress bar's
    # fields need well under 2 KB, a finished sheet's result can be megabytes.
    "BOX_ENTRY_MAX_BYTES": 16 * 1024,
    # A box body (and a stream's opening box) stops adding entries at this many bytes, newest
    # first, and says how many it left out: a hundred usual entries (under 1 KB each) fit, a
    # 22 MB box cannot exist.
    "BOX_MAX_BYTES": 256 * 1024,
    # Progress events of one job are published at most once per this many ms (4 a second:
    # a smooth bar; a change of step is published at once).
    "PROGRESS_EVENT_INTERVAL_MS": 250,
    # Events kept per person for resuming, exactly (XADD MAXLEN =): a person with 3 running
    # jobs publishing 4 progress events/s each keeps ~40 s of history; one event holds at
    # most EVENT_SNAPSHOT_MAX_BYTES of snapshot, so a history is bounded (~500 KB worst case,
    # ~1 KB per event for a video). A client away longer gets a resync.
    "EVENT_HISTORY_MAXLEN": 500,
    # A person's history expires this long after their last event (as a running job's
    # snapshot does): nobody resumes from an id that old, and idle owners cost no memory.
    "EVENT_HISTORY_TTL_SECONDS": 2 * 60 * 60,
    # A snapshot larger than this (a job with a large inline field) is not copied into the
    # event: the event names the job and the stream reads its snapshot when delivering it.
    "EVENT_SNAPSHOT_MAX_BYTES": 8 * 1024,
    # SSE heartbeat every ~15 s (a proxy's idle timeout is usually 30-60 s), +-20 % jitter so
    # thousands of streams opened together do not beat in step.
    "STREAM_HEARTBEAT_SECONDS": 15.0,
    # A stream ends after this long and the browser reconnects (resuming): authentication is
    # checked again and no connection lives forever.
    "STREAM_MAX_SECONDS": 10 * 60,
    # Events waiting for one slow stream before it is cut (it reconnects and resumes).
    "STREAM_QUEUE_MAX_EVENTS": 1000,
    # Streams one person may hold open at once, across every process (issue 15: one person
    # must not cost more than their share); a browser tab holds one.
    "STREAMS_PER_PERSON": 8,
    # An open stream re-checks its principal (token, user, membership) this often through the
    # principal cache, in one pipeline for all the process's streams: revoked access ends
    # within about this long (DESIGN.md, invariant 11).
    "STREAM_RECHECK_SECONDS": 3.0,
    # A worker's `CancelWatch.check()` reads the job's cancel flag at most this often: within
    # the promise that a cancel is seen within 1 s, and one GET per running job per 250 ms
    # is nothing to Redis.
    "CANCEL_CHECK_INTERVAL_SECONDS": 0.25,
    # A job's own log (jobbox.control): the newest lines are kept, at most this many and this
    # many bytes (a few hundred lines are a transcode's steps, warnings and ffmpeg's summary;
    # 64 KiB keeps a long-running job's log cheap to hold and to send).
    "LOG_MAX_LINES": 300,
    "LOG_MAX_BYTES": 64 * 1024,
    # One line longer than this is cut: a runaway line cannot push every other line out.
    "LOG_LINE_MAX_BYTES": 2 * 1024,
}


_resolved: dict[str, Any] | None = None


def get(name: str) -> Any:
    return (_resolved or _resolve())[name]


def _resolve() -> dict[str, Any]:
    global _resolved
    values = {**DEFAULTS, **getattr(settings, "JOBBOX", {})}
    if values["REDIS_URL"] is None:
        values["REDIS_URL"] = getattr(settings, "REDIS_URL", None) or "redis://127.0.0.1:6379/0"
    _resolved = values
    return values


def _forget_on_change(setting: str, **_: object) -> None:
    global _resolved
    if setting in ("JOBBOX", "REDIS_URL"):
        _resolved = None


# Connected at import, before the client's own reset receiver (jobbox.apps), so a client
# remade in that receiver reads the new settings.
setting_changed.connect(_forget_on_change, weak=False, dispatch_uid="jobbox-conf-forget")
