"""Shards in the real Redis: the guard on their count, replicas sharing them through leases, and a
replica taking over a shard another left (its pending entries claimed, its per-track state
rebuilt from what was handled, nothing lost, nothing twice)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from services.aggregator.stream import AlertAggregator
from tests.support.verdicts import liveness_verdict, recognition_verdict
from tests.support.waiting import eventually
from watchpost.consumers import stream_worker
from watchpost.db import alerts
from watchpost.geometry import Box
from watchpost.images import encode_jpeg
from watchpost.keys import Group, Keys, shard_of
from watchpost.messages import AlertEvent, RecognitionVerdict, Verdict, decode
from watchpost.service.app import Resources
from watchpost.settings import AggregatorSettings
from watchpost.shards import ShardCountMismatch, ShardedConsumer, check_shard_count
from watchpost.streams import Delivery, publish
from watchpost.worker import StreamWorker

FRAME = encode_jpeg(np.full((120, 160, 3), 200, np.uint8))
BOX = Box(left=40, top=30, right=100, bottom=90)


def test_the_shard_count_is_recorded_and_a_different_one_refused(redis_client, prefix):
    check_shard_count(redis_client, Keys(prefix, 4))
    assert redis_client.get(Keys(prefix).stream_shards) == b"4"
    check_shard_count(redis_client, Keys(prefix, 4))  # the same count: fine
    with pytest.raises(ShardCountMismatch, match=r"WATCHPOST_STREAM_SHARDS is 8.*use 4 shards"):
        check_shard_count(redis_client, Keys(prefix, 8))


def test_a_service_with_another_shard_count_refuses_to_start(env_settings, redis_client):
    settings = env_settings(AggregatorSettings)
    check_shard_count(redis_client, settings.keys)
    with pytest.raises(ShardCountMismatch):
        Resources(env_settings(AggregatorSettings, stream_shards=2), needs_db=False)


class Recorder:
    """A ShardState that remembers what it was told."""

    def __init__(self) -> None:
        self.taken: dict[int, list[bytes]] = {}
        self.given_up: list[int] = []

    def take_over(self, shard: int, replay: Sequence[Delivery[Verdict]]) -> None:
        self.taken[shard] = [d.entry_id for d in replay]

    def give_up(self, shard: int) -> None:
        self.given_up.append(shard)


def consumer(redis_client, prefix, name, state=None, ttl=10.0) -> ShardedConsumer[Verdict]:
    return ShardedConsumer(
        redis_client,
        Keys(prefix).verdicts,
        group=Group.AGGREGATOR,
        service="aggregator",
        consumer=name,
        state=state,
        lease_seconds=ttl,
    )


def test_replicas_share_the_shards_and_take_those_of_one_that_stops(redis_client, prefix):
    a, b = consumer(redis_client, prefix, "a"), consumer(redis_client, prefix, "b")
    a.join()
    b.join()  # started together: each sees two replicas
    a.start()
    b.start()
    assert len(a.owned) == len(b.owned) == 2
    assert sorted(a.owned + b.owned) == [0, 1, 2, 3]
    a.close()  # a clean stop gives the shards back at once
    b.rebalance()
    assert b.owned == [0, 1, 2, 3]


def test_a_dead_replicas_shards_are_taken_after_their_lease_expires(redis_client, prefix):
    a = consumer(redis_client, prefix, "a", ttl=0.5)
    b = consumer(redis_client, prefix, "b", ttl=0.5)
    a.join()
    b.join()
    a.start()
    b.start()
    mine = b.owned
    # a dies: it renews nothing more; b takes its shards once the leases expire.

    def all_shards() -> bool:
        b.rebalance()
        return b.owned == [0, 1, 2, 3]

    assert eventually(all_shards, timeout=5)
    assert set(mine) < {0, 1, 2, 3}


def verdicts_for(camera: str, n: int) -> list[RecognitionVerdict]:
    return [
        recognition_verdict(
            f"t{i}", box=BOX, captured_at=1_700_000_000.0 + i, camera=camera, frame_seq=i
        )
        for i in range(n)
    ]


def test_a_replica_taking_a_shard_claims_its_pending_entries_and_replays_the_handled(
    redis_client, prefix
):
    keys = Keys(prefix)
    camera = "door"
    shard = shard_of(camera, keys.shards)
    ids = [
        publish(redis_client, keys.verdicts.of(camera), v, image=FRAME)
        for v in verdicts_for(camera, 6)
    ]
    a = consumer(redis_client, prefix, "a")
    a.start()
    first = a.read(count=2, block_ms=None)
    for delivery in first:
        a.settle(delivery)
    in_hand = a.read(count=2, block_ms=None)  # read, never acked: then a is killed
    assert [d.entry_id for d in first + in_hand] == ids[:4]
    redis_client.delete(keys.shard_lease("aggregator", str(shard)))  # its lease expired

    recorder = Recorder()
    b = consumer(redis_client, prefix, "b", state=recorder)
    b.start()
    assert shard in b.owned
    assert recorder.taken[shard] == ids[:2]  # the handled ones, to rebuild state from
    seen = []
    while batch := b.read(count=10, block_ms=None):
        for delivery in batch:
            seen.append(delivery.entry_id)
            b.settle(delivery)
    assert seen == ids[2:]  # a's pending first (claimed at once, idle or not), then the new
    assert redis_client.xpending(keys.verdicts.of(camera), "aggregator")["pending"] == 0
    names = {
        c["name"] for c in redis_client.xinfo_consumers(keys.verdicts.of(camera), "aggregator")
    }
    assert names == {b"b"}  # a, with nothing left pending, is forgotten


def alerts_on_stream(redis_client, keys) -> list[AlertEvent]:
    return [decode(f, AlertEvent)[0] for _, f in redis_client.xrange(keys.alerts)]


def test_a_replica_that_takes_over_an_aggregators_shard_loses_and_repeats_no_alert(
    env_settings, redis_client, pool
):
    """Aggregator a handles a stranger's first check and a second track's alert, then dies with
    that alert's verdict unacked (after the alert was stored and published). b takes the shard:
    it rebuilds the first track from the handled check, so the stranger's second check raises
    its alert; the second track's verdict, handled again, finds its alert stored and published."""
    settings = env_settings(
        AggregatorSettings, aggregator_unknown_min_checks=2, aggregator_cooldowns={}
    )
    keys = settings.keys
    camera = "door"
    stream = keys.verdicts.of(camera)

    def check(track: str, seq: int) -> RecognitionVerdict:
        return recognition_verdict(track, box=BOX, captured_at=1_700_000_000.0 + seq, frame_seq=seq)

    publish(redis_client, stream, check("t1", 1), image=FRAME)
    publish(redis_client, stream, check("t2", 2), image=FRAME)
    publish(redis_client, stream, check("t2", 3), image=FRAME)  # t2's alert is due here

    def replica(name: str) -> tuple[AlertAggregator, StreamWorker]:
        aggregator = AlertAggregator(settings, redis_client=redis_client, pool=pool)
        worker = stream_worker(
            env_settings(
                AggregatorSettings,
                aggregator_unknown_min_checks=2,
                aggregator_cooldowns={},
                consumer_name=name,
            ),
            redis_client,
            keys.verdicts,
            group=Group.AGGREGATOR,
            handle=aggregator.handle,
            state=aggregator,
        )
        return aggregator, worker

    a, worker_a = replica("a")
    a_in = worker_a.consumer
    assert isinstance(a_in, ShardedConsumer)
    a_in.start()
    batch = a_in.read(count=3, block_ms=None)
    for delivery in batch:
        a.handle(delivery)
    a_in.settle(batch[0])
    a_in.settle(batch[1])  # killed before acking the third, whose alert is out
    with pool.connection() as conn:
        assert [(r["kind"], r["track_id"]) for r in alerts.list_alerts(conn)] == [
            ("unknown_person", "t2")
        ]
    redis_client.delete(keys.shard_lease("aggregator", str(stream.shard)))

    publish(redis_client, stream, check("t1", 4), image=FRAME)  # t1's second check
    publish(redis_client, stream, liveness_verdict("t1", "live"), image=None)
    b, worker_b = replica("b")
    handled = worker_b.run(threading.Event(), burst=True)
    assert handled == 3  # t2's unacked check, then t1's two new verdicts
    assert len(b.tracks[(camera, "t1")].evidence.recognitions) == 2  # rebuilt, then the new
    with pool.connection() as conn:
        rows = alerts.list_alerts(conn)
    assert sorted((r["kind"], r["track_id"]) for r in rows) == [
        ("unknown_person", "t1"),
        ("unknown_person", "t2"),
    ]
    published = alerts_on_stream(redis_client, keys)
    assert sorted(e.alert_id for e in published) == sorted(r["id"] for r in rows)  # once each
    assert redis_client.xpending(stream, "aggregator")["pending"] == 0
