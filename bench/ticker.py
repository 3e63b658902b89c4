"""A callable run every `interval` seconds on a background thread while a `with` block lasts.

The benchmark's background work (jobs churning elsewhere, sampling backend CPU) needs the
same start, stop and join; it lives here once.
"""

import threading
from collections.abc import Callable


class Ticker:
    def __init__(self, tick: Callable[[], None], interval_seconds: float, *, name: str,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.tick = tick
        self.interval_seconds = interval_seconds
        self.name = name
        self.on_exit = on_exit  # runs on the ticker's own thread as it ends
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_seconds):
                self.tick()
        finally:
            if self.on_exit:
                self.on_exit()

    def __enter__(self) -> "Ticker":
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
