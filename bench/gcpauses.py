"""Runs a server with every garbage collection of its process timed (`gc.callbacks`).

    python -m bench.gcpauses <pauses.jsonl> -- -m uvicorn academy.asgi:application ...

Each collection is appended to `pauses.jsonl` as `[wall time, generation, ms, collected]`,
flushed every FLUSH_SECONDS by a thread of its own, so a server stopped by a signal loses at
most that much. The library is untouched: the hub's periodic full collection (its
`gc.collect()`) shows here as a generation-2 collection like any other.
"""

import gc
import json
import runpy
import sys
import threading
import time
from pathlib import Path
from typing import Any

# How often the pauses seen so far are written out.
FLUSH_SECONDS = 2.0
# Pauses this long or longer are kept one by one in a summary (the rest as percentiles).
LONG_PAUSE_MS = 5.0


class PauseLog:
    """The collections of this process: start and stop of each, kept until flushed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: list[list[float]] = []
        self._started_at = 0.0
        self._lock = threading.Lock()

    def on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started_at = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._started_at) * 1000
        with self._lock:
            self.pending.append([round(time.time(), 3), info["generation"],
                                 round(pause_ms, 3), info["collected"]])

    def flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            taken, self.pending = self.pending, []
        if taken:
            with self.path.open("a") as out:
                out.writelines(json.dumps(row) + "\n" for row in taken)


def read_pauses(path: Path) -> list[list[float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def pause_summary(pauses_ms: list[float]) -> dict[str, float]:
    from bench.load import percentile  # nearest rank, as the load client's

    return {"collections": len(pauses_ms), "p50_ms": round(percentile(pauses_ms, 0.5), 3),
            "p99_ms": round(percentile(pauses_ms, 0.99), 3),
            "p99_9_ms": round(percentile(pauses_ms, 0.999), 3),
            "max_ms": round(max(pauses_ms, default=0.0), 3)}


def summarize(rows: list[list[float]], since: float) -> dict[str, Any]:
    """Pause percentiles over every collection from `since` (wall time), and by generation;
    the pauses of LONG_PAUSE_MS or more kept as [seconds since `since`, generation, ms]
    (the raw log of a 15-minute run holds a hundred thousand generation-0 ones)."""
    rows = [row for row in rows if row[0] >= since]
    generations = sorted({int(row[1]) for row in rows})
    return {"all": pause_summary([row[2] for row in rows]),
            "by_generation": {str(g): pause_summary([r[2] for r in rows if r[1] == g])
                              for g in generations},
            "long_pauses": [[round(r[0] - since, 1), int(r[1]), r[2]] for r in rows
                            if r[2] >= LONG_PAUSE_MS]}


def main(argv: list[str]) -> None:
    out, separator, module_flag, module, *rest = argv
    if separator != "--" or module_flag != "-m":
        raise SystemExit(__doc__)
    log = PauseLog(Path(out))
    gc.callbacks.append(log.on_collection)
    threading.Thread(target=log.flush_forever, name="gc-pauses", daemon=True).start()
    sys.argv = [module, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        log.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
