"""Shards (pure): which shard a camera is on, the streams' names, and the replicas' fair share."""

from __future__ import annotations

import zlib

from watchpost.keys import DEFAULT_STREAM_SHARDS, Keys, shard_of
from watchpost.leases import fair_share, plan
from watchpost.settings import AggregatorSettings, CaptureSettings


def test_a_camera_is_on_the_crc32_shard_of_its_id():
    for camera in ("door", "lobby", "yard", "dock", "cam-17"):
        assert shard_of(camera, 4) == zlib.crc32(camera.encode()) % 4
        assert 0 <= shard_of(camera, 7) < 7
    assert {shard_of(f"cam{n}", 4) for n in range(40)} == {0, 1, 2, 3}


def test_frames_and_verdicts_are_one_stream_per_shard_numbered_alike():
    keys = Keys("wp", 4)
    assert [str(s) for s in keys.frames] == [f"wp:frames:{n}" for n in range(4)]
    assert [s.shard for s in keys.verdicts] == [0, 1, 2, 3]
    camera = "door"
    assert keys.frames.of(camera).shard == keys.verdicts.of(camera).shard == shard_of(camera, 4)
    assert keys.frames.of(camera).spec is keys.frames.spec  # typed, bounded, grouped as before
    assert keys.frames.of(camera).maxlen == keys.frames.maxlen


def test_every_service_reads_the_shard_count_from_one_setting():
    assert AggregatorSettings().stream_shards == CaptureSettings().stream_shards
    assert AggregatorSettings().keys.shards == DEFAULT_STREAM_SHARDS == 4
    assert AggregatorSettings(stream_shards=8).keys.frames.count == 8


def test_replicas_split_the_shards_fairly():
    shards = [str(n) for n in range(4)]
    assert fair_share(4, 3) == 2 and fair_share(4, 2) == 2 and fair_share(4, 5) == 1
    first = plan("a", shards, set(), live_nodes=2)
    assert first.room == 2 and sorted(first.candidates) == shards
    # A replica holding every shard gives back half when a second one lives.
    full = plan("a", shards, set(shards), live_nodes=2)
    assert len(full.release) == 2 and full.room == 0


def test_default_consumer_names_differ_per_process():
    import os

    assert AggregatorSettings().consumer_name.endswith(f"-{os.getpid()}")
