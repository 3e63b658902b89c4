"""CPU instructions per poll, counted by valgrind: a figure a shared machine cannot blur.

    python -m bench.instructions [--polls 400]

CPU time per request (/proc) swells when other work shares the cores; the count of
instructions a request executes does not. Each way is run in its own process under
`valgrind --tool=cachegrind --cache-sim=no` twice, with `--polls` and with twice as many,
and the difference of the two totals divided by the extra polls is the instructions one
poll costs (start-up cancels out). A poll goes through Django's whole handler and the
service's middleware (django.test.Client), not through gunicorn; the data is a running
video and a person's box of 20 running videos stored in a private Redis, so every poll is a
hit. Ways: jobbox's direct path, the same view through DRF (`serve_hits_directly` off), the
job box, and the bare Redis GET view (the ceiling).

Serves docs/explanation/architecture.md, "What we measured": the app's own Python bounds the rate.
"""

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
WAYS = ("jobbox", "jobbox-drf", "jobbox-box", "ceiling")
TOKEN = "b" * 40
BOX_JOBS = 20
# A poll runs ~10^5-10^6 instructions: a few hundred polls dwarf the run-to-run jitter.
DEFAULT_POLLS = 400


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=DEFAULT_POLLS)
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--serve", nargs=2, metavar=("WAY", "POLLS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def seed_redis(tenant: str, owner: int) -> None:
    """A principal, one running video, and a box of BOX_JOBS running videos."""
    from dataclasses import asdict

    from jobbox import keys
    from jobbox.auth.principals import Principal
    from jobbox.box import COMPLETE_MARKER
    from jobbox.client import get_redis
    from jobbox.model import Snapshot
    from jobbox.write import store_snapshot

    redis = get_redis()
    principal = Principal(owner, "bench", True, False, False, tenant, "hash")
    redis.set(keys.token_principal_key(TOKEN), json.dumps(asdict(principal)))
    redis.zadd(keys.box_index_key(tenant, str(owner)), {COMPLETE_MARKER: float("inf")})
    for video_id in range(1, BOX_JOBS + 1):
        fields = {"id": video_id, "title": f"Lecture {video_id}", "status": "PROCESSING",
                  "hls_path": "", "duration": None, "error_reason": "",
                  "updated_at": "2026-11-29T12:00:00+00:00"}
        store_snapshot(Snapshot(kind="video", job_id=str(video_id), tenant=tenant,
                                owner=str(owner), version=2, status="PROCESSING",
                                terminal=False, fields=fields))
        redis.hset(keys.progress_key("job:video", str(video_id)), mapping={
            "percent": 40, "step_index": 2, "step_total": 4, "step_name": "transcode 720p",
            "step_percent": 15, "updated_at": time.time()})


def serve(way: str, polls: int) -> None:
    """Run `polls` polls of one way in this process (the valgrind child)."""
    import django

    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    from jobbox.http.views import HitsServedDirectly

    setup_test_environment()
    seed_redis("1", 7)
    client = Client(HTTP_AUTHORIZATION=f"Token {TOKEN}", HTTP_ACCEPT="*/*")
    path = {"jobbox": "/api/videos/1/", "jobbox-drf": "/api/videos/1/",
            "jobbox-box": "/api/jobbox/", "ceiling": "/bench/redis-get/1/"}[way]
    HitsServedDirectly.serve_hits_directly = way != "jobbox-drf"
    for _ in range(3):  # warm: the box's owner hint, lazily built objects
        assert client.get(path).status_code == 200
    # A full collection walks the whole start-up heap (Django, DRF: ~10^5 objects) and falls
    # in one run of a way but not the other: frozen, the collector sees only the polls' own
    # objects, so the difference of two runs is the polls' cost, not a collection's.
    gc.collect()
    gc.freeze()
    for _ in range(polls):
        client.get(path)


def start(way: str, polls: int, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                             f"--cachegrind-out-file={out}", sys.executable, "-m",
                             "bench.instructions", "--serve", way, str(polls)],
                            cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def total(out: Path) -> int:
    summary = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
    if summary is None:
        raise RuntimeError(f"no summary in {out}")
    return int(summary.group(1))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    from process_tools.redis_server import RedisServer

    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "jobbox-instructions"
    out_dir.mkdir(exist_ok=True)
    found: dict[str, float] = {}
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    with RedisServer() as redis_server:
        # A fixed hash seed: the two runs of a way start up alike, to the instruction.
        env = {**os.environ, "REDIS_URL": redis_server.url, "LOG_LEVEL": "ERROR",
               "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONHASHSEED": "0"}
        runs = {(way, polls): out_dir / f"cachegrind-{way}-{polls}.out"
                for way in ways for polls in (args.polls, 2 * args.polls)}
        # All at once: valgrind is slow, and the counts do not depend on what runs beside.
        processes = [start(way, polls, env, out) for (way, polls), out in runs.items()]
        if any(process.wait() != 0 for process in processes):
            raise RuntimeError(f"a valgrind run failed; see {out_dir}")
        for way in ways:
            low, high = total(runs[way, args.polls]), total(runs[way, 2 * args.polls])
            found[way] = (high - low) / args.polls
            print(f"{way}: {found[way]:,.0f} instructions per poll", flush=True)
    ceiling = found.get("ceiling")
    if ceiling:
        for way, value in found.items():
            print(f"{way}: {value / ceiling:.2f}x the ceiling")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
