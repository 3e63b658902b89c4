"""What a person's event history costs by its number of entries, on the bundled redis-server
(6.2) and the machine's (`/usr/bin/redis-server`), each with its defaults: whether Redis
preallocates a stream node's `stream-node-max-bytes` whatever its entries weigh.

    python -m bench.stream_nodes

300 histories per count; prints the all-in bytes per history (`INFO memory` delta) and
`MEMORY USAGE` of one, for entries of jobbox's shape and for much smaller ones.
"""

import subprocess
import sys
import time
from collections.abc import Callable

import redis

from process_tools import free_port
from process_tools.redis_server import redis_server_binary

HISTORIES = 300
COUNTS = (1, 10, 30, 40, 100)
Entry = Callable[[int, int], dict[str, str | int]]
SHAPES: dict[str, Entry] = {
    "jobbox's entry": lambda person, n: {
        "e": "changed", "t": "1", "o": str(person), "k": "video",
        "i": str(person * 10 + n % 10), "v": 2, "st": "PROCESSING", "ch": "status,updated_at"},
    "three short fields": lambda person, n: {"k": "video", "i": str(person * 10 + n % 10),
                                             "v": 2},
}


def measure(client: redis.Redis, shape: Entry, count: int) -> tuple[int, int]:
    client.flushall()
    base = int(client.info("memory")["used_memory"])
    for person in range(HISTORIES):
        for n in range(count):
            client.xadd(f"jobbox:{{1:{person}}}:events", shape(person, n))
    used = int(client.info("memory")["used_memory"]) - base
    one = client.execute_command("MEMORY", "USAGE", "jobbox:{1:0}:events", "SAMPLES", "0")
    return used // HISTORIES, int(one)


def main() -> int:
    for binary in (redis_server_binary(), "/usr/bin/redis-server"):
        port = free_port()
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            client = redis.Redis(port=port)
            version = client.info("server")["redis_version"]
            for name, shape in SHAPES.items():
                found = [f"{count}: {' / '.join(map(str, measure(client, shape, count)))}"
                         for count in COUNTS]
                print(f"redis {version}, {name} (entries: all-in / MEMORY USAGE B): "
                      + "; ".join(found), flush=True)
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
