"""Which capture node runs which camera: leases in Redis, so cameras spread over processes and
machines, and a node that dies hands its cameras to the others.

Every capture process is a node with a stable id (`consumer_name`). Each check it
1. beats its heartbeat (a sorted set: node -> last beat) and reads which nodes are alive,
2. renews the leases of the cameras it runs (a key per camera holding the node id, with a TTL),
3. takes its fair share, `ceil(cameras / live nodes)`: it gives back cameras beyond it and takes
   free ones up to it, in an order of its own (rendezvous hashing), so nodes that start together
   reach for different cameras first.

A camera runs on at most one node as long as nodes renew within the TTL: a node that cannot
renew (Redis gone) keeps its loops, since no other node can take a lease without Redis either,
and re-takes its own leases when Redis is back. A node that stops gives its leases back at once;
one that dies loses them after the TTL.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import redis

from watchpost.keys import Keys

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


def rendezvous_order(node_id: str, cameras: Iterable[str]) -> list[str]:
    """The cameras in this node's order of preference: each node ranks them differently."""
    return sorted(
        cameras, key=lambda camera: hashlib.sha1(f"{node_id}\0{camera}".encode()).digest()
    )


def fair_share(cameras: int, nodes: int) -> int:
    return math.ceil(cameras / max(1, nodes))


@dataclass(frozen=True)
class Plan:
    """What a node does this check: cameras to give back (stop first), then up to `room` more to
    take, trying `candidates` in this node's order (others may hold some of them)."""

    release: list[str]
    candidates: list[str]
    room: int


def plan(node_id: str, desired: Iterable[str], held: set[str], live_nodes: int) -> Plan:
    """Pure: given the enabled cameras, the ones this node holds and how many nodes live."""
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


class CameraLeases:
    def __init__(self, client: redis.Redis, keys: Keys, node_id: str, ttl_seconds: float) -> None:
        self.redis = client
        self.keys = keys
        self.node = node_id
        self.ttl_ms = max(1, round(ttl_seconds * 1000))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def heartbeat(self) -> int:
        """Beat, forget nodes silent for a TTL, and return how many nodes are alive."""
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.zadd(self.keys.capture_nodes, {self.node: now})
        pipe.zremrangebyscore(self.keys.capture_nodes, "-inf", now - self.ttl_ms / 1000)
        pipe.zcard(self.keys.capture_nodes)
        return int(cast(int, pipe.execute()[-1]))

    def leave(self) -> None:
        self.redis.zrem(self.keys.capture_nodes, self.node)

    def take(self, camera_id: str) -> bool:
        """Take a free lease (or keep our own)."""
        return bool(
            self._renew(keys=[self.keys.camera_lease(camera_id)], args=[self.node, self.ttl_ms])
        )

    def renew(self, camera_ids: Iterable[str]) -> set[str]:
        """The cameras whose leases this node still holds after renewing them."""
        cameras = list(camera_ids)
        if not cameras:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for camera in cameras:
            self._renew(
                keys=[self.keys.camera_lease(camera)], args=[self.node, self.ttl_ms], client=pipe
            )
        return {c for c, ok in zip(cameras, pipe.execute(), strict=True) if ok}

    def release(self, camera_id: str) -> None:
        self._release(keys=[self.keys.camera_lease(camera_id)], args=[self.node])

    def holders(self, camera_ids: Iterable[str]) -> Mapping[str, str | None]:
        """Which node holds each camera's lease (for status and tests)."""
        cameras = list(camera_ids)
        values = (
            cast(list[bytes | None], self.redis.mget([self.keys.camera_lease(c) for c in cameras]))
            if cameras
            else []
        )
        return {c: v.decode() if v else None for c, v in zip(cameras, values, strict=True)}
