"""Pub/sub: this process's connections to the channels of the people it streams to.

On a single Redis one connection (SUBSCRIBE); on a cluster one per node that owns a watched
person's slot (SSUBSCRIBE: a notification reaches only that shard). A notification only
says "this person's history grew"; the hub (`jobbox.stream.hub`) then reads the history.
"""

import asyncio
import contextlib
from collections.abc import Collection, Iterator
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import key_slot

from jobbox import conf
from jobbox.client import is_cluster
from jobbox.stream.model import text

# A pub/sub read waits this long, then asks again (and pings now and then): a dead
# connection is noticed within about two of these.
READ_BLOCK_SECONDS = 5.0
# A subscription not confirmed by Redis within this long counts as a lost connection.
SUBSCRIBE_CONFIRM_SECONDS = 5.0
# Channels per SUBSCRIBE / UNSUBSCRIBE command: a reconnect with 10,000 people watched sends
# ten commands on a single Redis, each reply read as it comes (on a cluster, one per slot).
SUBSCRIBE_BATCH = 1_000


class NotifierLost(Exception):
    """A pub/sub connection was lost, or the cluster moved a watched channel's slot."""


class Notifier:
    """This process's pub/sub connections: one on a single Redis (SUBSCRIBE); on a cluster
    one per node that owns a watched person's slot (SSUBSCRIBE: a notification reaches only
    that shard). Data messages come out of `next_channel()`; a lost connection raises there.
    A node's connection lives while it has channels: it is closed when the last one leaves,
    so a command is never sent on it unsubscribed while its reader waits (redis-py then
    health-checks the connection by reading its reply, beside the reader)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._cluster = is_cluster()
        self._pubsubs: dict[str, Any] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._channels: dict[str, set[str]] = {}  # node -> its channels
        self._node_of: dict[str, str] = {}
        self._unconfirmed: set[str] = set()
        self._all_confirmed = asyncio.Event()
        self._leaving: set[str] = set()
        self._messages: asyncio.Queue[str | BaseException] = asyncio.Queue()

    async def subscribe(self, channels: Collection[str]) -> None:
        """Subscribe to `channels` (a command per node and SUBSCRIBE_BATCH channels; on a
        cluster, per slot) and wait until Redis confirmed every one: from then on, no
        notification of them is missed. One round at a time (the hub's feed lock). Raises
        NotifierLost, after which this notifier is given up (the hub connects again)."""
        by_node: dict[str, list[str]] = {}
        for channel in channels:
            by_node.setdefault(self._node_for(channel), []).append(channel)
        self._unconfirmed = set(channels)
        self._all_confirmed.clear()
        for node, batch in by_node.items():
            pubsub = self._pubsub(node)
            self._channels.setdefault(node, set()).update(batch)
            for channel in batch:
                self._leaving.discard(channel)
                self._node_of[channel] = node
            for chunk in self._commands(batch):
                await (pubsub.ssubscribe(*chunk) if self._cluster else pubsub.subscribe(*chunk))
            if node not in self._readers:
                self._readers[node] = asyncio.get_running_loop().create_task(self._read(pubsub))
        if not self._unconfirmed:
            return
        try:
            async with asyncio.timeout(SUBSCRIBE_CONFIRM_SECONDS):
                await self._all_confirmed.wait()
        except TimeoutError:
            lost = NotifierLost("subscription not confirmed")
            self._messages.put_nowait(lost)  # the hub's reader gives this notifier up too
            raise lost from None

    async def unsubscribe(self, channels: Collection[str]) -> None:
        by_node: dict[str, list[str]] = {}
        for channel in channels:
            node = self._node_of.pop(channel, None)
            if node is not None and node in self._pubsubs:
                by_node.setdefault(node, []).append(channel)
        for node, batch in by_node.items():
            remaining = self._channels.get(node, set())
            remaining.difference_update(batch)
            if not remaining:
                await self._close_node(node)
                continue
            self._leaving.update(batch)
            pubsub = self._pubsubs[node]
            for chunk in self._commands(batch):
                await (pubsub.sunsubscribe(*chunk) if self._cluster
                       else pubsub.unsubscribe(*chunk))

    async def next_channel(self) -> str:
        item = await self._messages.get()
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def connections(self) -> int:
        return len(self._pubsubs)

    def _commands(self, channels: list[str]) -> Iterator[list[str]]:
        """`channels` in the groups one (un)subscribe command may carry: at most
        SUBSCRIBE_BATCH, and on a cluster one slot's only: SSUBSCRIBE refuses channels of
        different slots even when one node owns them all (CROSSSLOT), which would leave the
        whole round unconfirmed. A cluster node's round costs a command per watched slot."""
        groups: dict[int, list[str]] = {}
        for channel in channels:
            slot = key_slot(channel.encode()) if self._cluster else 0
            groups.setdefault(slot, []).append(channel)
        for group in groups.values():
            for start in range(0, len(group), SUBSCRIBE_BATCH):
                yield group[start:start + SUBSCRIBE_BATCH]

    def _node_for(self, channel: str) -> str:
        if not self._cluster:
            return "single"
        return str(self._client.get_node_from_key(channel).name)

    def _pubsub(self, node: str) -> Any:
        found = self._pubsubs.get(node)
        if found is None:
            if self._cluster:
                where = self._client.get_node(node_name=node)
                connection = self._new_connection(where.host, where.port)
            else:
                connection = self._new_connection(None, None)
            found = self._pubsubs[node] = connection.pubsub()
        return found

    def _new_connection(self, host: str | None, port: int | None) -> redis.asyncio.Redis:
        options: dict[str, Any] = {
            "socket_timeout": READ_BLOCK_SECONDS + conf.settings().SOCKET_TIMEOUT_SECONDS + 1,
            "socket_connect_timeout": conf.settings().CONNECT_TIMEOUT_SECONDS,
            # No silent reconnect: messages published meanwhile would be lost unnoticed; the
            # hub reconnects itself and reads every watched history after its last id.
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": READ_BLOCK_SECONDS,
        }
        if host is None:
            return redis.asyncio.Redis.from_url(conf.settings().REDIS_URL, **options)
        return redis.asyncio.Redis(host=host, port=port, **options)

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=READ_BLOCK_SECONDS)
                if message is not None:
                    self._handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the connection ends it
            self._messages.put_nowait(NotifierLost(type(exc).__name__))

    def _handle(self, message: dict[str, Any]) -> None:
        kind = text(message["type"])
        channel = text(message["channel"]) if message.get("channel") is not None else ""
        if kind in ("message", "smessage"):
            self._messages.put_nowait(channel)
        elif kind in ("subscribe", "ssubscribe"):
            self._unconfirmed.discard(channel)
            if not self._unconfirmed:
                self._all_confirmed.set()
        elif kind in ("unsubscribe", "sunsubscribe"):
            if channel in self._leaving:
                self._leaving.discard(channel)
            else:
                # Redis dropped it: the slot moved (a failover, a resharding).
                self._messages.put_nowait(NotifierLost("channel moved"))

    async def _close_node(self, node: str) -> None:
        task = self._readers.pop(node, None)
        if task is not None:
            task.cancel()
        pubsub = self._pubsubs.pop(node, None)
        self._channels.pop(node, None)
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                await pubsub.aclose()

    async def close(self) -> None:
        for node in list(self._pubsubs):
            await self._close_node(node)

