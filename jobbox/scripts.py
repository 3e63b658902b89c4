"""The Lua scripts in `lua/`, loaded once per client and run by SHA.

Every script lives in its own file under `jobbox/lua/`, with its KEYS and ARGV documented
there, and is sent by SHA. A Redis that restarted (or ran SCRIPT FLUSH) answers NOSCRIPT: the
script is then loaded again and the call repeated, by redis-py's `Script` for `script()`
and `async_script()`, by `run_script()` itself on the hot path. Nothing is loaded up front.
"""

import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any, cast

import redis
import redis.asyncio
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

from jobbox.client import get_redis

# A script's line `-- include: NAME` is replaced by lua/NAME.lua: what several scripts share
# (how a stored snapshot reads) is written once.
_INCLUDE = re.compile(r"^-- include: ([a-z_]+)$", re.MULTILINE)


@cache
def _source(name: str) -> str:
    text = files("jobbox").joinpath("lua", f"{name}.lua").read_text()
    return _INCLUDE.sub(lambda found: _source(found.group(1)), text)


def script(name: str, client: Any = None) -> Script:
    """The script for `client` (the default client when None). An asyncio client gets its
    awaitable twin, so a read planned once (`jobbox.box`) runs on either."""
    client = client if client is not None else get_redis()
    # Kept on the client itself, so a reset client never runs a script bound to an old one.
    registered: dict[str, Script] = client.__dict__.setdefault("_jobbox_scripts", {})
    found = registered.get(name)
    if found is None:
        found = registered[name] = client.register_script(_source(name))
    return found


def run_script(name: str, client: redis.Redis, keys: Sequence[str],
               args: Sequence[Any] = ()) -> Any:
    """`script(name, client)(keys=..., args=...)` for the hot path: EVALSHA straight on a
    single Redis's client, loading the script on NOSCRIPT. redis-py's `Script.__call__` first
    asks whether the client is a pipeline, and those isinstance checks go through typing's
    protocol machinery: ~2 % of a hot poll's CPU in the profile."""
    found = script(name, client)
    try:
        return client.evalsha(found.sha, len(keys), *keys, *args)
    except NoScriptError:
        found.sha = client.script_load(found.script)
        return client.evalsha(found.sha, len(keys), *keys, *args)


def async_script(name: str, client: "redis.asyncio.Redis") -> "AsyncScript":
    """The same script for an asyncio client (the event stream's, `jobbox.aio`)."""
    return cast("AsyncScript", script(name, client))
