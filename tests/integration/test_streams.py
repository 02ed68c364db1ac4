"""Redis Streams helpers against a real Redis."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import redis

from watchpost.geometry import Box
from watchpost.keys import FRAMES_MAXLEN, Group, Keys
from watchpost.messages import AlertEvent, AlertKind, Frame, MessageError, TrackedFace, encode
from watchpost.streams import Delivery, GroupConsumer, ensure_group, publish
from watchpost.worker import StreamWorker


def alert(n: int) -> AlertEvent:
    return AlertEvent(
        id=n,
        kind=AlertKind.UNKNOWN_PERSON,
        camera_id="cam",
        track_id=f"t-{n}",
        captured_at=datetime.fromtimestamp(1.0, UTC),
        created_at=datetime.fromtimestamp(2.0, UTC),
    )


def consumer(client, keys: Keys, name="c1", **kwargs) -> GroupConsumer:
    c = GroupConsumer(client, keys.alerts, group=Group.NOTIFIER, consumer=name, **kwargs)
    c.start()
    return c


def test_publish_read_ack(redis_client, prefix):
    keys = Keys(prefix)
    c = consumer(redis_client, keys)
    for n in range(3):
        publish(redis_client, keys.alerts, alert(n))
    got = c.read(count=10, block_ms=100)
    assert [d.message.alert_id for d in got] == [0, 1, 2]
    c.ack(d.entry_id for d in got)
    assert redis_client.xpending(keys.alerts, Group.NOTIFIER)["pending"] == 0


def test_group_creation_tolerates_only_busygroup(redis_client, prefix):
    keys = Keys(prefix)
    ensure_group(redis_client, keys.alerts, Group.NOTIFIER)
    ensure_group(redis_client, keys.alerts, Group.NOTIFIER)  # already there: fine
    redis_client.set(f"{prefix}:not-a-stream", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        ensure_group(redis_client, f"{prefix}:not-a-stream", Group.NOTIFIER)


def test_malformed_entries_go_to_the_dead_letter_stream_and_are_acked(redis_client, prefix):
    keys = Keys(prefix)
    c = consumer(redis_client, keys)
    redis_client.xadd(keys.alerts, {b"type": b"AlertEvent", b"v": b"1", b"data": b"{oops"})
    redis_client.xadd(keys.alerts, {b"junk": b"1"})
    publish(redis_client, keys.alerts, alert(7))
    got = c.read(count=10, block_ms=100)
    assert [d.message.alert_id for d in got] == [7]
    dead = redis_client.xrange(keys.dead_letter)
    assert len(dead) == 2
    assert b"invalid AlertEvent" in dead[0][1][b"reason"]
    assert dead[1][1][b"source_stream"] == keys.alerts.encode()
    assert (
        redis_client.xpending(keys.alerts, Group.NOTIFIER)["pending"] == 1
    )  # only the good one, unacked


def test_a_restarted_consumer_finishes_its_own_pending_entries_first(redis_client, prefix):
    keys = Keys(prefix)
    first = consumer(redis_client, keys, name="worker-a")
    publish(redis_client, keys.alerts, alert(1))
    assert len(first.read(block_ms=100)) == 1  # taken, then the process "dies" without acking
    publish(redis_client, keys.alerts, alert(2))
    restarted = consumer(redis_client, keys, name="worker-a")
    assert [d.message.alert_id for d in restarted.read(count=1, block_ms=100)] == [1]


def test_entries_left_by_a_dead_consumer_are_claimed_by_another(redis_client, prefix):
    keys = Keys(prefix)
    dead = consumer(redis_client, keys, name="dead")
    publish(redis_client, keys.alerts, alert(1))
    assert len(dead.read(block_ms=100)) == 1
    survivor = consumer(redis_client, keys, name="survivor", claim_idle_ms=0)
    got = survivor.read(block_ms=100)
    assert [d.message.alert_id for d in got] == [1]
    survivor.ack(d.entry_id for d in got)
    assert redis_client.xpending(keys.alerts, Group.NOTIFIER)["pending"] == 0


def test_publish_bounds_the_stream_length(redis_client, prefix):
    keys = Keys(prefix)
    for n in range(2000):
        publish(redis_client, keys.alerts, alert(n), maxlen=100)
    assert redis_client.xlen(keys.alerts) < 300  # approximate trimming, bounded


def test_worker_burst_drains_and_dead_letters_a_poison_message(redis_client, prefix):
    keys = Keys(prefix)
    for n in range(5):
        publish(redis_client, keys.alerts, alert(n))
    seen = []

    def handle(delivery):
        if delivery.message.alert_id == 3:
            raise ValueError("cannot handle 3")
        seen.append(delivery.message.alert_id)

    worker = StreamWorker(consumer(redis_client, keys, max_failures=3), handle, service="test")
    processed = worker.run(threading.Event(), burst=True)
    assert processed == 4 and sorted(seen) == [0, 1, 2, 4]
    dead = redis_client.xrange(keys.dead_letter)
    assert len(dead) == 1 and b"cannot handle 3" in dead[0][1][b"reason"]
    assert redis_client.xpending(keys.alerts, Group.NOTIFIER)["pending"] == 0


def test_worker_retries_after_an_outage_without_losing_the_message(redis_client, prefix):
    keys = Keys(prefix)
    publish(redis_client, keys.alerts, alert(1))
    attempts = []

    def handle(delivery):
        attempts.append(delivery.message.alert_id)
        if len(attempts) == 1:
            raise redis.ConnectionError("simulated outage while writing")

    worker = StreamWorker(consumer(redis_client, keys), handle, service="test")
    assert worker.run(threading.Event(), burst=True) == 1
    assert attempts == [1, 1]  # retried, not dead-lettered
    assert redis_client.xlen(keys.dead_letter) == 0


def test_encode_rejects_nothing_that_decode_accepts(redis_client, prefix):
    keys = Keys(prefix)
    redis_client.xadd(keys.alerts, encode(alert(9)))
    assert consumer(redis_client, keys).read(block_ms=100)[0].message == alert(9)


def test_a_group_created_at_the_end_skips_the_history(redis_client, prefix):
    keys = Keys(prefix)
    publish(redis_client, keys.alerts, alert(1))
    late = consumer(redis_client, keys, start_id="$")
    publish(redis_client, keys.alerts, alert(2))
    assert [d.message.alert_id for d in late.read(block_ms=100)] == [2]


def test_publish_trims_to_the_streams_declared_bound(redis_client, prefix):
    keys = Keys(prefix)
    face = TrackedFace(track_id="t", box=Box(left=0, top=0, right=10, bottom=10), detected=True)
    frame = Frame(
        camera_id="cam", seq=0, captured_at=1.0, source_time=0.0, width=64, height=48, faces=[face]
    )
    for _ in range(3 * FRAMES_MAXLEN):
        publish(redis_client, keys.frames.of("cam"), frame, image=b"\xff\xd8jpeg")
    assert keys.frames.maxlen == keys.frames.of("cam").maxlen == FRAMES_MAXLEN
    assert FRAMES_MAXLEN <= redis_client.xlen(keys.frames.of("cam")) < 2 * FRAMES_MAXLEN


def test_a_group_reads_only_the_streams_that_declare_it(redis_client, prefix):
    keys = Keys(prefix)
    with pytest.raises(ValueError, match="does not read"):
        GroupConsumer(redis_client, keys.frames.shard(0), group=Group.AGGREGATOR, consumer="c")
    assert GroupConsumer(redis_client, keys.verdicts.shard(0), group=Group.AGGREGATOR, consumer="c")


def test_a_delivery_without_a_picture_says_so():
    delivery = Delivery("s", b"1-0", alert(1), None)
    with pytest.raises(MessageError, match="carries no image"):
        _ = delivery.picture
    assert Delivery("s", b"1-0", alert(1), b"\xff\xd8").picture == b"\xff\xd8"
