"""The load generator: a separate process on loopback that polls like browsers do.

`python -m bench.load < spec.json` prints one JSON result. Modes:
- `poll`: each target (a URL and a token: one person's browser tab) is polled on a fixed
  schedule, `rate_per_target_hz` times a second, for `duration_seconds`; starts are spread
  over one period so the load is even. A slow answer delays only that poller's next poll.
- `burst`: every target is requested once, all at the same moment (a cold key's stampede).
- `stream`: every target is opened as a Server-Sent Events stream and read for the duration.

Bounded in count and time, and only 127.0.0.1 / localhost is accepted as a target.

Serves docs/explanation/architecture.md, "The three parts": bench drives "the public HTTP API".
"""

import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# One poll should never take longer than this: past it, the poll counts as an error.
DEFAULT_TIMEOUT_SECONDS = 5.0
# Browsers keep a handful of connections each; the client shares a pool this big.
DEFAULT_MAX_CONNECTIONS = 128


@dataclass
class Target:
    path: str
    token: str | None = None


@dataclass
class LoadSpec:
    base_url: str
    targets: list[Target]
    mode: str = "poll"  # poll | burst | stream
    rate_per_target_hz: float = 1.0
    duration_seconds: float = 10.0
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Wall-clock (time.time()) moment to begin, so the caller can align events with it.
    start_at: float | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "LoadSpec":
        spec = cls(**{**doc, "targets": [Target(**t) for t in doc["targets"]]})
        spec.validate()
        return spec

    def validate(self) -> None:
        host = urlsplit(self.base_url).hostname
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"only loopback targets are allowed, not {host!r}")
        if self.mode not in ("poll", "burst", "stream"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if not self.targets or self.duration_seconds <= 0 or self.rate_per_target_hz <= 0:
            raise ValueError("targets, a positive duration and a positive rate are required")
        if self.duration_seconds > 600:
            raise ValueError("one load run is bounded to 600 s")

    def request_budget(self) -> int:
        """The most requests this spec may send (a hard bound, beyond the schedule)."""
        if self.mode != "poll":
            return len(self.targets)
        per_target = math.ceil(self.duration_seconds * self.rate_per_target_hz) + 1
        return per_target * len(self.targets)


@dataclass
class Sample:
    started: float  # seconds since the run began
    latency_ms: float
    status: int  # 0: no answer (connection error or timeout)


@dataclass
class LoadResult:
    mode: str
    requests: int
    ok: int
    errors: dict[str, int]
    elapsed_seconds: float
    achieved_rps: float
    latency_ms: dict[str, float]
    timeline: list[dict[str, float]] = field(default_factory=list)
    events: int = 0
    bytes_read: int = 0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 < fraction <= 1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(latencies, 0.50), 2),
        "p90": round(percentile(latencies, 0.90), 2),
        "p99": round(percentile(latencies, 0.99), 2),
        "max": round(max(latencies, default=0.0), 2),
    }


def timeline(samples: list[Sample], bucket_seconds: float = 1.0) -> list[dict[str, float]]:
    """Per-bucket requests, errors and p99, by the second each request started in."""
    buckets: dict[int, list[Sample]] = {}
    for sample in samples:
        buckets.setdefault(int(sample.started // bucket_seconds), []).append(sample)
    return [
        {
            "t": index * bucket_seconds,
            "requests": len(group),
            "errors": sum(1 for s in group if not 200 <= s.status < 300),
            "p99_ms": round(percentile([s.latency_ms for s in group], 0.99), 2),
        }
        for index, group in sorted(buckets.items())
    ]


def summarize(mode: str, samples: list[Sample], elapsed: float) -> LoadResult:
    errors = Counter(str(s.status) for s in samples if not 200 <= s.status < 300)
    ok = [s.latency_ms for s in samples if 200 <= s.status < 300]
    return LoadResult(
        mode=mode,
        requests=len(samples),
        ok=len(ok),
        errors=dict(errors),
        elapsed_seconds=round(elapsed, 3),
        achieved_rps=round(len(samples) / elapsed, 1) if elapsed > 0 else 0.0,
        latency_ms=latency_summary(ok),
        timeline=timeline(samples),
    )


def _headers(target: Target) -> dict[str, str]:
    return {"Authorization": f"Token {target.token}"} if target.token else {}


async def _one(session: aiohttp.ClientSession, url: str, target: Target, t0: float,
               samples: list[Sample]) -> None:
    started = time.perf_counter()
    status = 0
    try:
        async with session.get(url, headers=_headers(target)) as response:
            await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError, OSError):
        status = 0
    samples.append(Sample(started - t0, (time.perf_counter() - started) * 1000, status))


async def _poller(session: aiohttp.ClientSession, spec: LoadSpec, target: Target, index: int,
                  t0: float, samples: list[Sample], budget: list[int]) -> None:
    period = 1.0 / spec.rate_per_target_hz
    offset = period * index / len(spec.targets)
    url = spec.base_url + target.path
    tick = 0
    while True:
        due = offset + tick * period
        if due >= spec.duration_seconds or budget[0] <= 0:
            return
        delay = t0 + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        budget[0] -= 1
        await _one(session, url, target, t0, samples)
        tick += 1


async def _stream(session: aiohttp.ClientSession, spec: LoadSpec, target: Target,
                  counts: Counter[str]) -> None:
    headers = {**_headers(target), "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(total=spec.duration_seconds + spec.timeout_seconds)
    deadline = time.perf_counter() + spec.duration_seconds
    try:
        async with session.get(spec.base_url + target.path, headers=headers,
                               timeout=timeout) as response:
            counts[f"status:{response.status}"] += 1
            while time.perf_counter() < deadline:
                remaining = deadline - time.perf_counter()
                try:
                    line = await asyncio.wait_for(response.content.readline(), remaining)
                except TimeoutError:
                    break
                if not line:
                    break
                counts["bytes"] += len(line)
                if line.startswith(b"data:"):
                    counts["events"] += 1
    except (TimeoutError, aiohttp.ClientError, OSError):
        counts["status:0"] += 1


async def run(spec: LoadSpec) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=spec.max_connections)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_seconds)
    samples: list[Sample] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        if spec.start_at is not None:
            await asyncio.sleep(min(max(0.0, spec.start_at - time.time()), 30.0))
            # Second 0 is `start_at` even if this process started late: the caller times
            # its events (a Redis stop) by the same clock.
            t0 = time.perf_counter() - max(0.0, time.time() - spec.start_at)
        if spec.mode == "poll":
            budget = [spec.request_budget()]
            await asyncio.gather(*(
                _poller(session, spec, target, i, t0, samples, budget)
                for i, target in enumerate(spec.targets)
            ))
        elif spec.mode == "burst":
            await asyncio.gather(*(
                _one(session, spec.base_url + t.path, t, t0, samples) for t in spec.targets
            ))
        else:
            counts: Counter[str] = Counter()
            await asyncio.gather(*(_stream(session, spec, t, counts) for t in spec.targets))
            elapsed = time.perf_counter() - t0
            opened = counts.get("status:200", 0)
            return LoadResult(
                mode="stream", requests=len(spec.targets), ok=opened,
                errors={k.split(":")[1]: v for k, v in counts.items()
                        if k.startswith("status:") and k != "status:200"},
                elapsed_seconds=round(elapsed, 3), achieved_rps=0.0, latency_ms={},
                events=counts.get("events", 0), bytes_read=counts.get("bytes", 0),
            )
        elapsed = time.perf_counter() - t0
    return summarize(spec.mode, samples, elapsed)


def main() -> int:
    spec = LoadSpec.from_json(json.load(sys.stdin))
    result = asyncio.run(run(spec))
    json.dump(asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
