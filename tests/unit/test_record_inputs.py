"""Inputs of the record (issue 12): travel times between cameras (per pair in either order, a
default, bad pairs refused), the new alert kind, and the embedding unknown verdicts carry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from watchpost.geometry import Box
from watchpost.messages import RecognitionVerdict, decode, encode
from watchpost.settings import AggregatorSettings, DashboardSettings


def settings(**values) -> AggregatorSettings:
    return AggregatorSettings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("pairs", "default", "a", "b", "expected"),
    [
        ({}, 0.0, "door", "yard", 0.0),  # nothing set: only "at once" is impossible
        ({"door,yard": 30}, 0.0, "door", "yard", 30.0),
        ({"door,yard": 30}, 0.0, "yard", "door", 30.0),  # either order
        ({"door, yard": 30}, 5.0, "door", "lobby", 5.0),  # not listed: the default
        ({"door,lobby": -1}, 5.0, "lobby", "door", -1.0),  # one place seen by both
    ],
)
def test_travel_seconds_per_pair_with_a_default(pairs, default, a, b, expected):
    configured = settings(
        aggregator_travel_seconds=pairs, aggregator_travel_default_seconds=default
    )
    assert configured.travel_seconds(a, b) == expected


@pytest.mark.parametrize("pair", ["door", "door,yard,lobby", "door,door", ",yard", "door, "])
def test_a_pair_that_is_not_two_cameras_is_refused_with_a_reason(pair):
    with pytest.raises(ValidationError, match="not two camera ids joined by a comma"):
        settings(aggregator_travel_seconds={pair: 10})


def test_impossible_travel_is_an_alert_kind_webhooks_accept():
    hooks = {"impossible_travel": ["https://soc.example/hook"]}
    assert (
        DashboardSettings(
            _env_file=None, dashboard_webhooks=hooks, dashboard_webhook_secret="s" * 32
        ).dashboard_webhooks
        == hooks
    )
    with pytest.raises(ValidationError, match="unknown alert kinds"):
        DashboardSettings(
            _env_file=None,
            dashboard_webhooks={"travel": ["https://x.example"]},
            dashboard_webhook_secret="s" * 32,
        )


def test_an_unknown_verdict_carries_a_128_d_embedding_or_none():
    values = dict(
        camera_id="door-1",
        track_id="abc-1",
        frame_seq=1,
        captured_at=1.0,
        box=Box(left=1, top=2, right=50, bottom=60),
        threshold=0.6,
    )
    verdict = RecognitionVerdict(**values, embedding=[0.5] * 128)
    fields = encode(verdict, image=b"\xff\xd8")
    assert decode(fields, RecognitionVerdict)[0].embedding == [0.5] * 128
    assert RecognitionVerdict(**values).embedding is None  # older senders: still valid
    with pytest.raises(ValueError, match="at least 128"):
        RecognitionVerdict(**values, embedding=[0.5] * 3)
