"""Leases in Redis: which node of a group holds which item (a camera, a shard), so items spread
over processes and machines, and a node that dies hands its items to the others.

Every node has an id (its `consumer_name`). Each check it
1. beats its heartbeat (a sorted set: node -> last beat) and reads which nodes are alive,
2. renews the leases of the items it holds (a key per item holding the node id, with a TTL),
3. takes its fair share, `ceil(items / live nodes)`: it gives back items beyond it and takes
   free ones up to it, in an order of its own (rendezvous hashing), so nodes that start together
   reach for different items first.

An item is held by at most one node as long as nodes renew within the TTL: a node that cannot
renew (Redis gone) keeps its items, since no other node can take a lease without Redis either,
and re-takes its own leases when Redis is back. A node that stops gives its leases back at once;
one that dies loses them after the TTL.

Capture nodes lease cameras (`services/capture/leases.py`); replicas of recognition, liveness and
the aggregator lease stream shards (`watchpost/shards.py`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import redis

# KEYS[1] the lease, ARGV[1] this node, ARGV[2] TTL in ms. Renews a lease this node holds, and
# re-takes one that expired (Redis was away, or a beat came late) unless another node took it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] the lease, ARGV[1] this node: delete it only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def rendezvous_order(node_id: str, items: Iterable[str]) -> list[str]:
    """The items in this node's order of preference: each node ranks them differently."""
    return sorted(items, key=lambda item: hashlib.sha1(f"{node_id}\0{item}".encode()).digest())


def fair_share(items: int, nodes: int) -> int:
    return math.ceil(items / max(1, nodes))


@dataclass(frozen=True)
class Plan:
    """What a node does this check: items to give back (stop first), then up to `room` more to
    take, trying `candidates` in this node's order (others may hold some of them)."""

    release: list[str]
    candidates: list[str]
    room: int


def plan(node_id: str, desired: Iterable[str], held: set[str], live_nodes: int) -> Plan:
    """Pure: given the items to run, the ones this node holds and how many nodes live."""
    wanted = set(desired)
    share = fair_share(len(wanted), live_nodes)
    order = rendezvous_order(node_id, wanted)
    mine = [c for c in order if c in held]
    surplus = mine[share:]  # keep the ones this node likes best
    keeping = len(mine) - len(surplus)
    return Plan(
        release=sorted(held - wanted) + surplus,
        candidates=[c for c in order if c not in held],
        room=max(0, share - keeping),
    )


class Leases:
    """One node's leases on items of one kind: `nodes_key` is the heartbeat set of the nodes
    that share them, `lease_key(item)` the lease of one item."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        nodes_key: str,
        lease_key: Callable[[str], str],
        node_id: str,
        ttl_seconds: float,
    ) -> None:
        self.redis = client
        self.nodes_key = nodes_key
        self.lease_key = lease_key
        self.node = node_id
        self.ttl_ms = max(1, round(ttl_seconds * 1000))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def heartbeat(self) -> int:
        """Beat, forget nodes silent for a TTL, and return how many nodes are alive."""
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.zadd(self.nodes_key, {self.node: now})
        pipe.zremrangebyscore(self.nodes_key, "-inf", now - self.ttl_ms / 1000)
        pipe.zcard(self.nodes_key)
        return int(cast(int, pipe.execute()[-1]))

    def leave(self) -> None:
        self.redis.zrem(self.nodes_key, self.node)

    def take(self, item: str) -> bool:
        """Take a free lease (or keep our own)."""
        return bool(self._renew(keys=[self.lease_key(item)], args=[self.node, self.ttl_ms]))

    def renew(self, items: Iterable[str]) -> set[str]:
        """The items whose leases this node still holds after renewing them."""
        chosen = list(items)
        if not chosen:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for item in chosen:
            self._renew(keys=[self.lease_key(item)], args=[self.node, self.ttl_ms], client=pipe)
        return {c for c, ok in zip(chosen, pipe.execute(), strict=True) if ok}

    def release(self, item: str) -> None:
        self._release(keys=[self.lease_key(item)], args=[self.node])

    def holders(self, items: Iterable[str]) -> Mapping[str, str | None]:
        """Which node holds each item's lease (for status and tests)."""
        chosen = list(items)
        values = (
            cast(list[bytes | None], self.redis.mget([self.lease_key(c) for c in chosen]))
            if chosen
            else []
        )
        return {c: v.decode() if v else None for c, v in zip(chosen, values, strict=True)}

    def rebalance(self, desired: Iterable[str], held: set[str]) -> tuple[set[str], list[str]]:
        """One check: beat, renew what is held, give back the surplus, take free items up to the
        fair share. Returns (the items held now, those given back)."""
        live = self.heartbeat()
        kept = self.renew(held)
        step = plan(self.node, desired, kept, live)
        for item in step.release:
            self.release(item)
        kept -= set(step.release)
        room = step.room
        for item in step.candidates:
            if room <= 0:
                break
            if self.take(item):
                kept.add(item)
                room -= 1
        return kept, step.release
