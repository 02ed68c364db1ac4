"""Per-camera passive calibration kept in the real Redis: it holds the model's global threshold
until a camera has enough real tracks, then the camera's own; it survives a restart (a new
process reads it back); cameras do not share it; the window keeps the newest tracks."""

from __future__ import annotations

from typing import Any

import pytest

from services.liveness.calibration import SiteCalibration, fit_threshold
from tests.support import shards
from watchpost.keys import Keys


def calibration(redis_client, prefix, **overrides) -> SiteCalibration:
    options: dict[str, Any] = {
        "global_threshold": 0.43,
        "target_bpcer": 0.2,  # needs 4 real tracks: small enough for a table by hand
        "min_presentations": 5,
        "window": 8,
    }
    options.update(overrides)
    return SiteCalibration(redis_client, Keys(prefix), **options)


def test_a_camera_keeps_the_global_threshold_until_it_has_enough_real_tracks(redis_client, prefix):
    site = calibration(redis_client, prefix)
    assert site.threshold("door").threshold == 0.43
    scores = [0.62, 0.70, 0.55, 0.66]
    for score in scores:
        state = site.record("door", score)
        assert not state.calibrated and state.threshold == 0.43
    state = site.record("door", 0.58)
    assert state.calibrated and state.presentations == 5
    assert state.threshold == fit_threshold([*scores, 0.58], 0.2)
    assert state.threshold > 0.43  # this camera's real people score high: fewer refused


def test_the_calibration_survives_a_restart_and_is_per_camera(redis_client, prefix):
    first = calibration(redis_client, prefix)
    for score in (0.1, 0.2, 0.15, 0.12, 0.18):
        first.record("lobby", score)
    fitted = first.threshold("lobby").threshold
    assert fitted < 0.43
    again = calibration(redis_client, prefix)  # a new liveness process
    assert again.threshold("lobby").threshold == pytest.approx(fitted, abs=1e-6)
    assert again.threshold("lobby").presentations == 5
    assert not again.threshold("garage").calibrated  # another camera: nothing learnt there
    again.forget("lobby")
    assert not calibration(redis_client, prefix).threshold("lobby").calibrated


def test_the_window_keeps_the_newest_real_tracks(redis_client, prefix):
    site = calibration(redis_client, prefix, window=5)
    for score in (0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1):
        state = site.record("door", score)
    assert state.presentations == 5
    assert state.threshold == pytest.approx(0.1)  # the old high scores are gone
    assert redis_client.llen(Keys(prefix).passive_calibration("door")) == 5


def test_bad_settings_and_scores_are_refused(redis_client, prefix):
    with pytest.raises(ValueError, match="min_presentations"):
        calibration(redis_client, prefix, min_presentations=10, window=5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        calibration(redis_client, prefix, target_bpcer=0)
    with pytest.raises(ValueError, match="need 19 <= min_presentations"):
        calibration(redis_client, prefix, target_bpcer=0.05, min_presentations=10)
    site = calibration(redis_client, prefix)
    with pytest.raises(ValueError, match="probability"):
        site.record("door", 1.7)
    assert redis_client.llen(Keys(prefix).passive_calibration("door")) == 0  # nothing kept


@pytest.mark.slow
@pytest.mark.data
def test_liveness_feeds_a_blinking_track_into_its_camera_and_reports_the_camera_threshold(
    env_settings, redis_client, pool, monkeypatch
):
    """The talking video through capture and liveness, on a camera that already has its own
    calibration: the passive cue is judged against the camera's threshold (and the reason says
    so), and the track, judged live on its blinks, adds one real presentation to the camera."""
    import threading

    from services.capture.loop import CaptureLoop
    from tests.conftest import require_data
    from tests.integration.test_liveness import run_liveness
    from watchpost.messages import Frame, decode
    from watchpost.settings import CaptureSettings

    monkeypatch.setenv("WATCHPOST_LIVENESS_SITE_CALIBRATION", "true")  # off by default
    video = require_data("video/talking_blinks_720p.mp4")
    capture = env_settings(CaptureSettings)
    CaptureLoop(capture, redis_client=redis_client, pool=pool, source=str(video)).run(
        threading.Event(), burst=True
    )
    keys = Keys(capture.stream_prefix)
    _, fields = shards.entries(redis_client, keys.frames)[0]
    camera = decode(fields, Frame)[0].camera_id
    seeded = [0.9, 0.92, 0.95, 0.91, 0.93] * 4  # 20: the default minimum
    for score in seeded:
        redis_client.lpush(keys.passive_calibration(camera), score)

    tracks: dict = {}
    verdicts = run_liveness(env_settings, redis_client, tracks)
    final = verdicts[-1]
    assert final.state == "live"
    stored = [float(v) for v in redis_client.lrange(keys.passive_calibration(camera), 0, -1)]
    assert len(stored) == 21  # the live track was recorded, once
    (evidence,) = tracks.values()
    assert evidence.calibration_recorded
    # Its score is the track's mean passive score when it was judged live (a mean of crops
    # seen up to then), so it lies within the scores the track had.
    assert min(evidence.passive) <= stored[0] <= max(evidence.passive)
    # Before that, the passive cue was judged against the 20 seeded tracks' threshold; after
    # it, against the 21's. Never the model's global one.
    with_passive = [v for v in verdicts if any(c.name == "passive" for c in v.cues)]
    assert with_passive
    for verdict in with_passive:
        (passive,) = [c for c in verdict.cues if c.name == "passive"]
        if "camera's 20 real tracks" in verdict.reason:
            assert passive.threshold == pytest.approx(fit_threshold(seeded, 0.05), abs=1e-3)
        else:
            assert "camera's 21 real tracks" in verdict.reason, verdict.reason
            assert passive.threshold == pytest.approx(
                fit_threshold([*seeded, stored[0]], 0.05), abs=1e-3
            )


@pytest.mark.slow
@pytest.mark.data
def test_calibration_is_off_by_default(env_settings, redis_client):
    from services.liveness.stream import LivenessTracker
    from watchpost.settings import LivenessSettings

    tracker = LivenessTracker(env_settings(LivenessSettings), redis_client=redis_client)
    assert tracker.calibration is None
    assert tracker.policy_for("door") is tracker.policy
