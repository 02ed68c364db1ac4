"""Which capture node runs which camera: leases in Redis (`watchpost/leases.py`), a key per camera
(`wp:capture:lease:<camera>`) and the nodes' heartbeat set (`wp:capture:nodes`), so cameras
spread over processes and machines, and a node that dies hands its cameras to the others.

Every capture process is a node with a stable id (`consumer_name`); see watchpost/leases.py for
how nodes share the cameras (fair share, rendezvous order, give back on stop, expiry on death).
"""

from __future__ import annotations

import redis

from watchpost.keys import Keys
from watchpost.leases import Leases, Plan, fair_share, plan, rendezvous_order

__all__ = ["CameraLeases", "Plan", "fair_share", "plan", "rendezvous_order"]


class CameraLeases(Leases):
    def __init__(self, client: redis.Redis, keys: Keys, node_id: str, ttl_seconds: float) -> None:
        super().__init__(
            client,
            nodes_key=keys.capture_nodes,
            lease_key=keys.camera_lease,
            node_id=node_id,
            ttl_seconds=ttl_seconds,
        )
        self.keys = keys
