"""The Lua scripts in `lua/`, loaded once per client and run by SHA (STYLE.md, 3).

redis-py's `Script` re-sends the source on NOSCRIPT, so a restarted Redis needs nothing here.
"""

from functools import cache
from importlib.resources import files

import redis
import redis.asyncio
from redis.commands.core import AsyncScript, Script

from jobbox.client import get_redis


@cache
def _source(name: str) -> str:
    return files("jobbox").joinpath("lua", f"{name}.lua").read_text()


def script(name: str, client: redis.Redis | None = None) -> Script:
    client = client or get_redis()
    # Kept on the client itself, so a reset client never runs a script bound to an old one.
    registered: dict[str, Script] = client.__dict__.setdefault("_jobbox_scripts", {})
    found = registered.get(name)
    if found is None:
        found = registered[name] = client.register_script(_source(name))
    return found


def async_script(name: str, client: "redis.asyncio.Redis") -> "AsyncScript":
    """The same script for an asyncio client (the event stream's process, jobbox.stream)."""
    registered: dict[str, AsyncScript] = client.__dict__.setdefault("_jobbox_scripts", {})
    found = registered.get(name)
    if found is None:
        found = registered[name] = client.register_script(_source(name))
    return found
