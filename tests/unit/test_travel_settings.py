"""Travel times between cameras: per pair in either order, a default, and bad pairs refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
