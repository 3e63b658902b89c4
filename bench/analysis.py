"""The benchmark's arithmetic, kept pure so tests can check it (the report's figures).

Scaling a short window to the seed's per-second and per-10-minute figures, ratios against
"before", the highest sustained rate of a rate search, and the recovery time after Redis
returns.

Serves docs/explanation/architecture.md, "What we measured": ratios, not absolute numbers.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

# The seed's table counts SELECTs over ten minutes.
SEED_PERIOD_SECONDS = 600
# The benchmark's goal: the highest poll rate each way sustains "with p99 under 50 ms".
P99_LIMIT_MS = 50.0
# A step passes only if the client really sent (almost) the rate it asked for; a shortfall
# means the server (or the shared CPU) could not keep up.
MIN_ACHIEVED_FRACTION = 0.95
# A step with more than this share of failed polls did not sustain its rate.
MAX_ERROR_FRACTION = 0.001


def per_second(count: float, seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("a measured window must be longer than zero")
    return count / seconds


def per_seed_period(count: float, seconds: float) -> float:
    """A count over `seconds`, scaled to the seed's ten minutes."""
    return per_second(count, seconds) * SEED_PERIOD_SECONDS


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, or None when the baseline is zero (no ratio to state)."""
    return None if baseline == 0 else value / baseline


def format_ratio(value: float, baseline: float) -> str:
    found = ratio(value, baseline)
    if found is None:
        return "—"
    if found == 0:
        return "0x"
    if found < 0.01:
        return f"{found:.3f}x"
    return f"{found:.2f}x" if found < 10 else f"{found:.0f}x"


@dataclass(frozen=True)
class RateStep:
    target_rps: float
    achieved_rps: float
    p99_ms: float
    requests: int
    errors: int

    @property
    def sustained(self) -> bool:
        return (
            self.requests > 0
            and self.p99_ms < P99_LIMIT_MS
            and self.errors <= MAX_ERROR_FRACTION * self.requests
            and self.achieved_rps >= MIN_ACHIEVED_FRACTION * self.target_rps
        )


def highest_sustained(steps: Sequence[RateStep]) -> RateStep | None:
    """The last step of an increasing search that passed before the first that failed."""
    best = None
    for step in sorted(steps, key=lambda s: s.target_rps):
        if not step.sustained:
            break
        best = step
    return best


def cpu_ms_per_request(cpu_seconds: float, requests: int) -> float | None:
    """CPU milliseconds per request served; None when nothing was served."""
    return round(cpu_seconds * 1000 / requests, 3) if requests > 0 else None


def median_of(values: Sequence[float | None]) -> float | None:
    """The median of the measured values (None entries: nothing was measured)."""
    found = sorted(v for v in values if v is not None)
    if not found:
        return None
    middle = len(found) // 2
    return found[middle] if len(found) % 2 else (found[middle - 1] + found[middle]) / 2


def recovery_seconds(
    reads_per_second: Sequence[float],
    errors_per_second: Sequence[float],
    *,
    returned_at: int,
    baseline_reads: float,
    slack_reads: float,
) -> int | None:
    """Seconds after Redis returned until reads and errors stayed back at their baseline.

    Index i of each sequence is second i of the run; Redis came back at `returned_at`. The
    service has recovered at the first second from which, to the end of the record, database
    reads stay within `baseline_reads + slack_reads` and no poll fails. None: not within
    the record.
    """
    limit = baseline_reads + slack_reads
    end = min(len(reads_per_second), len(errors_per_second))
    recovered: int | None = None
    for second in range(end - 1, returned_at - 1, -1):
        if reads_per_second[second] > limit or errors_per_second[second] > 0:
            break
        recovered = second
    return None if recovered is None else recovered - returned_at


def differences(cumulative: Sequence[float]) -> list[float]:
    """Per-interval increases of a cumulative counter series."""
    return [b - a for a, b in pairwise(cumulative)]
