"""Jobbox settings: Django's `JOBBOX` dict over the defaults below, resolved into one typed,
frozen `JobboxSettings` once, and again whenever Django announces a settings change
(`override_settings`, pytest-django's `settings`), so a hot poll's dozen look-ups are
attribute reads, not trips through Django's lazy settings object.

Every duration is in seconds (`_SECONDS`, a float where a fraction matters) and every size in
bytes (`_BYTES`); milliseconds appear only where a Redis command takes them. Unknown keys and
values of the wrong type are reported by the system checks (`jobbox.checks`); a value that
cannot be used makes `settings()` raise `ImproperlyConfigured` rather than guess. Names
renamed since an earlier release keep working for now (`RENAMED_SETTINGS`) with a
`DeprecationWarning` naming the new one.
"""

import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, Literal

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

Unit = Literal["seconds", "bytes", "count", "per minute"] | None

# Where no REDIS_URL is configured anywhere (the system check W001 warns about it).
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def _setting(default: Any, doc: str, unit: Unit = None, *, may_be_zero: bool = False) -> Any:
    """One setting's default, why it is that, and its unit (read by the settings reference);
    a number must be above zero unless `may_be_zero`."""
    metadata = {"doc": doc, "unit": unit, "may_be_zero": may_be_zero}
    if isinstance(default, list | dict | set):
        raise TypeError("a setting's default must be immutable")
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class JobboxSettings:
    """Every setting of `JOBBOX`, typed; read it through `jobbox.conf.settings()`."""

    REDIS_URL: str | None = _setting(
        None, "The Redis server jobbox uses. Unset: Django's REDIS_URL setting, then "
        f"{LOCAL_REDIS_URL} (which another project on the same server may be using).")
    REDIS_CLUSTER: bool = _setting(
        False, "REDIS_URL names any node of a Redis Cluster and redis-py's cluster client is "
        "used: every script touches one slot, and a person's keys share one hash tag.")
    KEY_PREFIX: str = _setting(
        "", "Goes before every key name, so environments can share one Redis server.")
    RUNNING_TTL_SECONDS: int = _setting(
        2 * 60 * 60, "A running job's snapshot lives this long: long enough for a long "
        "encode, and every progress report refreshes it.", "seconds")
    TERMINAL_TTL_SECONDS: int = _setting(
        60 * 60, "A finished job is polled for a while, then the database answers on "
        "demand; it also bounds which finished jobs a box shows.", "seconds")
    SOCKET_TIMEOUT_SECONDS: float = _setting(
        0.25, "A poll must not wait on a sick Redis longer than a database read would take.",
        "seconds")
    CONNECT_TIMEOUT_SECONDS: float = _setting(
        0.25, "As SOCKET_TIMEOUT_SECONDS, for opening a connection.", "seconds")
    REDIS_MAX_CONNECTIONS: int = _setting(
        100, "A process's synchronous Redis connections at most (on a single Redis). Keep it at "
        "or above the threads that use Redis at once: past it a command waits up to "
        "SOCKET_TIMEOUT_SECONDS for a free connection, then fails as if Redis were unavailable "
        "(the database answers). A pool never closes an idle connection: the cap bounds what "
        "a process keeps after a slow Redis made every request in flight hold one.",
        "count")
    PRINCIPAL_TTL_SECONDS: int = _setting(
        5 * 60, "The cached user and tenant of a token or session. Signals and "
        "`invalidate_users` revoke it; this TTL is the backstop for a bulk change nobody "
        "revoked, and costs one fill (two indexed reads) per active principal per interval.",
        "seconds")
    TENANT_RESOLVER: str | None = _setting(
        None, "Dotted path to `f(user) -> str | None`: the tenant a user acts in.")
    TENANT_RESOLVER_MANY: str | None = _setting(
        None, "Dotted path to `f(users) -> {user pk: tenant}`: the tenants of many users in "
        "one query (an outage's batch refresh of principals). Unset: TENANT_RESOLVER per user.")
    PRINCIPAL_MODELS: tuple[str, ...] = _setting(
        (), '"app_label.Model" names whose rows carry `user_id` and change a user\'s tenant: '
        "saving or deleting one revokes that user's cached principals.")
    TOKEN_MISSES_PER_MINUTE: int = _setting(
        30, "Token look-ups that find no token, per client address per process: a person "
        "mistyping a token needs a few; past it, that address's uncached tokens are refused "
        "without a database read, so a scan of random tokens costs this many reads a minute.",
        "per minute", may_be_zero=True)
    TOKEN_MISS_POOL_PER_MINUTE: int = _setting(
        1200, "Past an address's TOKEN_MISSES_PER_MINUTE, its new tokens are still looked up "
        "from a pool shared by every address, per process: a valid token behind a NAT that "
        "floods bogus tokens still gets its read. 1,200 a minute is 20 indexed reads a "
        "second at most.", "per minute", may_be_zero=True)
    CLIENT_ADDRESS_RESOLVER: str | None = _setting(
        None, "Dotted path to `f(request) -> str`: the client address token misses are "
        "charged to. Unset: REMOTE_ADDR; behind a proxy, read its forwarding header.")
    METRICS_TOKEN: str | None = _setting(
        None, "Bearer token a Prometheus scraper sends to /metrics. Unset: staff users only.")
    BREAKER_FAILURE_THRESHOLD: int = _setting(
        1, "Failed or timed-out Redis calls that open the breaker: with a 0.25 s timeout a "
        "second try would double what a poll waits on a sick Redis, and an open breaker "
        "costs little.", "count")
    BREAKER_OPEN_SECONDS: float = _setting(
        2.0, "While open, every read goes to the database (bounded by the outage copies), "
        "then one call probes Redis: short, so a restarted Redis is used again within "
        "seconds.", "seconds")
    OUTAGE_COPY_SECONDS: float = _setting(
        1.0, "While Redis is unavailable each process reads a job from the database at most "
        "once per this interval (its outage copy is this old at most); polls come about "
        "once a second, so staleness stays at one poll.", "seconds")
    PRINCIPAL_OUTAGE_COPY_SECONDS: float = _setting(
        5.0, "While Redis is unavailable, a revoked token or session keeps working at most "
        "this long in a process: its principal is read at most once per interval.", "seconds")
    OUTAGE_PREFETCH_MAX_JOBS: int = _setting(
        2000, "When an outage begins a process reads each kind's live jobs (unfinished, or "
        "finished within TERMINAL_TTL_SECONDS), newest first, in one query, so their first "
        "polls cost nothing; bounded so a huge backlog cannot make that query heavy.",
        "count", may_be_zero=True)
    OUTAGE_COPY_MAX_ENTRIES: int = _setting(
        10_000, "Outage copies of each kind a process keeps: enough for every live job and "
        "user of a large process; the least recently asked are dropped beyond it.", "count")
    NEGATIVE_TTL_SECONDS: int = _setting(
        10, "A polled id that names no job is remembered this long; creating the job replaces "
        "it at once, so the TTL only bounds a lost creation write.", "seconds")
    FILL_LEASE_SECONDS: float = _setting(
        1.0, "The lease of the one request that fills a missing snapshot: far above one "
        "indexed read (~1 ms), short enough that waiters on a holder that died read the "
        "database themselves within a second.", "seconds")
    FILL_WAIT_POLL_SECONDS: float = _setting(
        0.01, "How often a waiter looks for the fill: a few round trips per fill, a 10 ms "
        "delay.", "seconds")
    RECONCILE_WINDOW_SECONDS: int = _setting(
        15 * 60, "The reconciler re-checks rows changed within this window; it runs every "
        "30 s, so the window covers 30 missed runs or a 15 min Redis outage.", "seconds")
    RECONCILE_BATCH_LIMIT: int = _setting(
        2000, "Rows per job kind per reconcile run at most: one bounded, indexed query.",
        "count")
    BOX_MAX_JOBS: int = _setting(
        100, "Jobs a person's box holds at most: a person rarely has more running or "
        "finished within the terminal TTL.", "count")
    BOX_ENTRY_MAX_BYTES: int = _setting(
        16 * 1024, "A box entry larger than this is sent as a summary (kind, id, status, "
        '"truncated"): a progress bar\'s fields need well under 2 KB, a finished sheet\'s '
        "result can be megabytes; the job's own endpoint has the rest.", "bytes")
    BOX_MAX_BYTES: int = _setting(
        256 * 1024, "A box body (and a stream's opening box) stops adding entries at this "
        "size, newest first, and says how many it left out: a hundred usual entries (under "
        "1 KB each) fit.", "bytes")
    PROGRESS_EVENT_INTERVAL_SECONDS: float = _setting(
        0.25, "Progress events of one job are published at most once per this interval "
        "(4 a second: a smooth bar); a change of step is published at once.", "seconds",
        may_be_zero=True)
    EVENT_HISTORY_MAXLEN: int = _setting(
        500, "Events kept per person for resuming a stream: three running jobs publishing 4 "
        "progress events a second keep ~40 s of history, ~40 KB at worst (an entry is ~80 "
        "bytes); a client away longer gets a resync.", "count")
    EVENT_HISTORY_TTL_SECONDS: int = _setting(
        2 * 60 * 60, "A person's event history expires this long after their last event, as "
        "a running job's snapshot does, and each write trims entries older than this: nobody "
        "resumes from an id that old.", "seconds")
    EVENT_SNAPSHOT_MAX_BYTES: int = _setting(
        8 * 1024, "No longer read: an event never copies its job's snapshot (it names the job, "
        "its state, version and changed fields; the stream reads the snapshot when "
        "delivering it). Kept so settings that name it still load.", "bytes")
    STREAM_HEARTBEAT_SECONDS: float = _setting(
        15.0, "An event stream's heartbeat (+-20 % jitter, so streams opened together do not "
        "beat in step): a proxy's idle timeout is usually 30-60 s.", "seconds")
    STREAM_MAX_SECONDS: int = _setting(
        10 * 60, "A stream ends after this long and the browser reconnects and resumes: "
        "authentication is checked again and no connection lives forever.", "seconds")
    STREAM_QUEUE_MAX_EVENTS: int = _setting(
        1000, "Events waiting for one slow stream before it is cut (it reconnects and "
        "resumes).", "count")
    STREAM_SEND_TIMEOUT_SECONDS: float = _setting(
        30.0, "A stream write the client has not taken within this long ends the stream: a "
        "client that stopped reading would otherwise hold its connection while it stays "
        "silent. Heartbeats come every 15 s, so a live client takes one within 30.",
        "seconds")
    STREAMS_PER_PERSON: int = _setting(
        8, "Streams one person may hold open at once across every process, so one person "
        "cannot cost more than their share; a browser tab holds one.", "count")
    STREAM_RECHECK_SECONDS: float = _setting(
        3.0, "An open stream re-checks its principal (token, user, membership) this often, "
        "in one pipeline for all of a process's streams: revoked access ends within about "
        "this long.", "seconds")
    CANCEL_CHECK_INTERVAL_SECONDS: float = _setting(
        0.25, "A worker's `CancelWatch.check()` reads the job's cancel flag at most this often: "
        "within the promise that a cancel is seen within 1 s, and one GET per running job "
        "per 250 ms is nothing to Redis. 0: every check reads it.", "seconds", may_be_zero=True)
    LOG_MAX_LINES: int = _setting(
        300, "A job's own log (jobbox.control) keeps its newest lines, at most this many: a "
        "transcode's steps, warnings and ffmpeg's summary fit.", "count")
    LOG_MAX_BYTES: int = _setting(
        64 * 1024, "A job's log keeps its newest lines within this size: cheap to hold and "
        "to send.", "bytes")
    LOG_LINE_MAX_BYTES: int = _setting(
        2 * 1024, "One log line longer than this is cut: a runaway line cannot push every "
        "other line out.", "bytes")


# Old setting name -> its new name. The old names keep working, with a DeprecationWarning.
RENAMED_SETTINGS: dict[str, str] = {
    "FALLBACK_CACHE_SECONDS": "OUTAGE_COPY_SECONDS",
    "FALLBACK_CACHE_MAX_ENTRIES": "OUTAGE_COPY_MAX_ENTRIES",
    "PRINCIPAL_FALLBACK_SECONDS": "PRINCIPAL_OUTAGE_COPY_SECONDS",
    "JOBBOX_MAX_JOBS": "BOX_MAX_JOBS",
    "PROGRESS_EVENT_INTERVAL_MS": "PROGRESS_EVENT_INTERVAL_SECONDS",
    "FILL_LEASE_MILLISECONDS": "FILL_LEASE_SECONDS",
}
# Old names whose value was in milliseconds: divided by this into the new name's seconds.
OLD_UNITS_PER_NEW_UNIT = {"PROGRESS_EVENT_INTERVAL_MS": 1000, "FILL_LEASE_MILLISECONDS": 1000}

FIELDS: dict[str, Field] = {f.name: f for f in fields(JobboxSettings)}

_resolved: JobboxSettings | None = None


def settings() -> JobboxSettings:
    """The settings in force (resolved once per settings change)."""
    return _resolved or _resolve()


def get(name: str) -> Any:
    """Deprecated: read `settings().NAME`. Kept so callers written against the dict (and old
    setting names, in their old units) still work."""
    if name in RENAMED_SETTINGS:
        _warn_renamed(name, stacklevel=3)
        return getattr(settings(), RENAMED_SETTINGS[name]) * OLD_UNITS_PER_NEW_UNIT.get(name, 1)
    return getattr(settings(), name)


def configured() -> dict[str, Any]:
    """Django's JOBBOX dict as written (old names included)."""
    raw = getattr(django_settings, "JOBBOX", None) or {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def unknown_names(raw: Mapping[str, Any]) -> list[str]:
    return [name for name in raw if name not in FIELDS and name not in RENAMED_SETTINGS]


def renamed_names(raw: Mapping[str, Any]) -> list[str]:
    return [name for name in raw if name in RENAMED_SETTINGS]


def with_new_names(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Known settings under their current names and units (a new name beats its old one);
    unknown names dropped."""
    values = {RENAMED_SETTINGS[old]: _in_new_unit(old, raw[old]) for old in renamed_names(raw)}
    values.update({name: value for name, value in raw.items() if name in FIELDS})
    return values


def problems(raw: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with each known setting of `raw` that jobbox cannot use, by the name
    it was given under (old names included)."""
    found = {}
    for name, value in raw.items():
        current = RENAMED_SETTINGS.get(name, name)
        if current in FIELDS and (problem := value_problem(current, _in_new_unit(name, value))):
            found[name] = problem
    return found


def value_problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for setting `name` (None: nothing)."""
    setting = FIELDS[name]
    expected = _type_name(setting.type)
    if not _has_type(value, setting.type):
        return f"must be {expected}, not {type(value).__name__} {value!r}"
    may_be_zero = setting.metadata["may_be_zero"]
    if _is_number(value) and (value < 0 or (value == 0 and not may_be_zero)):
        return f"must be {'zero or more' if may_be_zero else 'above zero'}, not {value!r}"
    return None


def _resolve() -> JobboxSettings:
    global _resolved
    raw = configured()
    for old in renamed_names(raw):
        _warn_renamed(old, stacklevel=4)
    if unusable := problems(raw):
        raise ImproperlyConfigured("; ".join(f"JOBBOX[{name!r}] {problem}"
                                             for name, problem in unusable.items())
                                   + " (see `manage.py check`).")
    values = with_new_names(raw)
    resolved = replace(JobboxSettings(), **{name: _typed(name, value)
                                            for name, value in values.items()})
    if resolved.REDIS_URL is None:
        url = getattr(django_settings, "REDIS_URL", None) or LOCAL_REDIS_URL
        resolved = replace(resolved, REDIS_URL=url)
    _resolved = resolved
    return resolved


def _in_new_unit(name: str, value: Any) -> Any:
    if name in OLD_UNITS_PER_NEW_UNIT and _is_number(value):
        return value / OLD_UNITS_PER_NEW_UNIT[name]
    return value


def _typed(name: str, value: Any) -> Any:
    declared = FIELDS[name].type
    if declared is float:
        return float(value)
    if declared == tuple[str, ...]:
        return tuple(value)
    return value


def _has_type(value: Any, declared: Any) -> bool:
    if declared is bool:
        return isinstance(value, bool)
    if declared is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if declared is float:
        return _is_number(value)
    if declared == tuple[str, ...]:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if isinstance(declared, types.UnionType):
        return any(_has_type(value, option) for option in typing.get_args(declared))
    if declared is type(None):
        return value is None
    return isinstance(value, declared)


def _type_name(declared: Any) -> str:
    if declared == tuple[str, ...]:
        return "a list of strings"
    if isinstance(declared, types.UnionType):
        return " or ".join(_type_name(option) for option in typing.get_args(declared))
    if declared is float:
        return "a number"
    return "None" if declared is type(None) else f"a {declared.__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _warn_renamed(old: str, *, stacklevel: int) -> None:
    warnings.warn(
        f'JOBBOX["{old}"] is deprecated: use JOBBOX["{RENAMED_SETTINGS[old]}"]'
        + (" (in seconds)" if old in OLD_UNITS_PER_NEW_UNIT else "") + ".",
        DeprecationWarning, stacklevel=stacklevel)


def _forget_on_change(setting: str, **_: object) -> None:
    global _resolved
    if setting in ("JOBBOX", "REDIS_URL"):
        _resolved = None


def default_of(setting: Field) -> Any:
    """A field's default (the settings reference reads it the same way)."""
    return setting.default_factory() if setting.default is MISSING else setting.default


# Connected at import, before the client's own reset receiver (jobbox.apps), so a client
# remade in that receiver reads the new settings.
setting_changed.connect(_forget_on_change, weak=False, dispatch_uid="jobbox-conf-forget")
