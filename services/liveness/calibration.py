"""Per-camera calibration of the passive check from the camera's own real traffic.

A passive model's scores shift between cameras (docs/liveness.md): one global threshold cannot
fit every camera. But a deployed camera sees mostly real people, and liveness knows some of them
are real: tracks judged live on a blink (a blink is proof against a still print) with no attack
cue flagged. Each such track gives one number, its mean passive score, kept per camera in Redis
(`Keys.passive_calibration`, the newest `window` tracks; Redis runs with an append-only file, so
it survives restarts). Once a camera has `min_presentations` of them, its passive threshold is
fitted on those scores: an order statistic chosen so that a new real person of that camera
reaches it with chance at most `target_bpcer` (`fit_threshold`; it needs at least
1 / target - 1 tracks, 19 at 5%). Below that count the model's global threshold holds. Attack
labels are never needed.

Measured leave-one-source-out with `python -m services.liveness.training.site_calibration`.

Known limit: a replay that blinks and that no other cue catches is judged live and feeds its
score into the calibration. One track is one sample and the threshold is a high quantile of
many, so a few such tracks move it little; an attacker who can replay at one camera dozens of
times unnoticed could raise its threshold. `window` bounds how long that lasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import redis

from watchpost.keys import Keys


def needed_presentations(target_bpcer: float) -> int:
    """The fewest real presentations from which `fit_threshold` can bound BPCER at the target:
    with n scores, the strictest threshold it can set (just above the highest) lets a new real
    presentation reach it with chance 1 / (n + 1)."""
    if not 0 < target_bpcer < 1:
        raise ValueError(f"target BPCER must be between 0 and 1, got {target_bpcer}")
    return math.ceil(1 / target_bpcer - 1e-9) - 1


def fit_threshold(real_scores: list[float], target_bpcer: float) -> float:
    """The threshold just above the k-th lowest of n real presentations' passive scores, with
    k = ceil((n + 1) * (1 - target_bpcer)): a new real presentation from the same camera is
    equally likely to rank anywhere among the n + 1, so it reaches the threshold (is called an
    attack) with chance (n + 1 - k) / (n + 1) <= target_bpcer. (The plain (1 - target) quantile
    of n scores is not: from 20 scores at 5% it lets about 9% through, measured.)"""
    if not real_scores:
        raise ValueError("no real presentation scores to calibrate from")
    needed = needed_presentations(target_bpcer)
    scores = np.sort(np.asarray(real_scores, dtype=np.float64))
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise ValueError("passive scores must be probabilities in [0, 1]")
    if scores.size < needed:
        raise ValueError(
            f"{scores.size} real presentations cannot bound BPCER at {target_bpcer:g}: "
            f"at least {needed} are needed"
        )
    k = math.ceil((scores.size + 1) * (1 - target_bpcer) - 1e-9)
    return float(np.nextafter(scores[k - 1], np.inf))


@dataclass(frozen=True)
class SiteThreshold:
    threshold: float
    presentations: int  # real presentations the camera has recorded (in the window)
    calibrated: bool  # True: the camera's own threshold; False: the model's global one


class SiteCalibration:
    """The passive threshold of each camera, from its real traffic, kept in Redis."""

    def __init__(
        self,
        redis_client: redis.Redis,
        keys: Keys,
        *,
        global_threshold: float,
        target_bpcer: float,
        min_presentations: int,
        window: int,
    ) -> None:
        needed = needed_presentations(target_bpcer)
        if min_presentations < needed or window < min_presentations:
            raise ValueError(
                f"need {needed} <= min_presentations ({min_presentations}) <= window ({window}) "
                f"for a target BPCER of {target_bpcer:g}"
            )
        self.redis = redis_client
        self.keys = keys
        self.global_threshold = global_threshold
        self.target_bpcer = target_bpcer
        self.min_presentations = min_presentations
        self.window = window
        self._cache: dict[str, SiteThreshold] = {}

    def _fit(self, scores: list[float]) -> SiteThreshold:
        if len(scores) < self.min_presentations:
            return SiteThreshold(self.global_threshold, len(scores), False)
        return SiteThreshold(fit_threshold(scores, self.target_bpcer), len(scores), True)

    def _load(self, camera_id: str) -> list[float]:
        raw = self.redis.lrange(self.keys.passive_calibration(camera_id), 0, self.window - 1)
        return [float(v) for v in raw]

    def threshold(self, camera_id: str) -> SiteThreshold:
        """The camera's threshold now (read from Redis once, then kept up to date by record)."""
        site = self._cache.get(camera_id)
        if site is None:
            site = self._cache[camera_id] = self._fit(self._load(camera_id))
        return site

    def record(self, camera_id: str, score: float) -> SiteThreshold:
        """Add one real presentation's mean passive score; the camera's threshold after it."""
        score = float(score)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"a passive score is a probability, got {score}")
        key = self.keys.passive_calibration(camera_id)
        with self.redis.pipeline() as pipe:
            pipe.lpush(key, f"{score:.6f}")
            pipe.ltrim(key, 0, self.window - 1)
            pipe.lrange(key, 0, self.window - 1)
            *_, raw = pipe.execute()
        site = self._cache[camera_id] = self._fit([float(v) for v in raw])
        return site

    def forget(self, camera_id: str) -> None:
        """Drop a camera's calibration (it was moved or re-aimed: its old scores no longer say
        what its real people look like)."""
        self.redis.delete(self.keys.passive_calibration(camera_id))
        self._cache.pop(camera_id, None)
