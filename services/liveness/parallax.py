"""Landmark parallax: does the face move like a flat picture? (pure NumPy, no I/O, no models)

A printed photo moved, tilted or bent by hand is a plane (or nearly one) seen by the camera: its
68 landmarks in one frame map onto the same landmarks a moment later by an affine map, up to
landmark noise. A real head that turns or nods is not flat: the nose tip, the eyes and the jaw
line sit at different depths, so they shift by different amounts (parallax), which no affine map
explains; a face that talks or smiles moves its landmarks in ways no affine map explains either.

So between two landmark sets of one track about `PARALLAX_LAG_S` apart, fit (least squares) a
similarity (rotation, scale, shift: 4 parameters) and an affine map (6 parameters). The
similarity's residual is everything that is not a rigid in-plane move; **flatness** is the share
of that residual the affine map also explains:

    flatness = (residual_similarity - residual_affine) / residual_similarity   (sums of squares)

A planar print bent or tilted by hand reads high (its extra motion is foreshortening, which is
affine); a real head reads low (its extra motion is parallax and expression). A face that does
not move leaves only landmark noise, of which the affine's two extra parameters explain about
2 / 132 (~0.015): a still print reads like a real face here, and is left to the blink window.
A phone replaying a video of a real person reads like a real face too (the screen shows that
person's own parallax): replays are the motion and texture cues' job.

A track's score pools its pairs: sum of the explained residuals over sum of the similarity
residuals, over the pairs whose similarity residual is above landmark noise (`MIN_RESIDUAL`), so
pairs with more non-rigid motion weigh more and still pairs say nothing. Cost: two 136x4 and
136x6 least-squares fits per pair, about 0.05 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from watchpost.messages import AttackCue

PARALLAX_LAG_S = 0.3  # seconds between the two landmark sets of a pair
PARALLAX_MAX_LAG_S = 0.6  # no partner this close: no pair
# RMS of the similarity residual, in inter-ocular distances, below which a pair is landmark
# noise (dlib's 68 points jitter by about 1-2% of the eye distance on a still face).
MIN_RESIDUAL = 0.02
EYES = (slice(36, 42), slice(42, 48))


@dataclass(frozen=True)
class ParallaxSample:
    """One pair of landmark sets: the similarity fit's residual (RMS, in inter-ocular distances)
    and the share of its sum of squares the affine fit also explains."""

    residual: float
    flatness: float
    at: float = 0.0  # source time (s) of the pair's later landmarks, set by ParallaxTally

    @property
    def explained(self) -> float:
        return self.flatness * self.residual**2


def _normalised(points: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    return (points.astype(np.float64) - centre) / scale


def parallax(before: np.ndarray, after: np.ndarray) -> ParallaxSample | None:
    """Flatness of the motion from landmarks `before` to `after` ((68, 2) each, one face, image
    pixels); None when the landmarks are degenerate (eyes on one point)."""
    before = np.asarray(before, np.float64)
    after = np.asarray(after, np.float64)
    if before.shape != (68, 2) or after.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {before.shape} and {after.shape}")
    # Both sets in units of the first set's inter-ocular distance, about its eyes' midpoint, so
    # the residuals read the same at any face size and the fits are well conditioned.
    right, left = before[EYES[0]].mean(axis=0), before[EYES[1]].mean(axis=0)
    scale = float(np.linalg.norm(left - right))
    if not np.isfinite(scale) or scale < 1e-6:
        return None
    centre = (left + right) / 2
    x = _normalised(before, centre, scale)
    y = _normalised(after, centre, scale)
    n = len(x)
    target = y.reshape(-1)  # x0', y0', x1', y1', ...
    # Similarity: x' = a x - b y + tx, y' = b x + a y + ty.
    similarity = np.zeros((2 * n, 4))
    similarity[0::2] = np.column_stack([x[:, 0], -x[:, 1], np.ones(n), np.zeros(n)])
    similarity[1::2] = np.column_stack([x[:, 1], x[:, 0], np.zeros(n), np.ones(n)])
    # Affine: x' = a x + b y + tx, y' = c x + d y + ty.
    affine = np.zeros((2 * n, 6))
    affine[0::2, 0:3] = np.column_stack([x, np.ones(n)])
    affine[1::2, 3:6] = np.column_stack([x, np.ones(n)])
    ss = []
    for design in (similarity, affine):
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        ss.append(float(np.sum((design @ solution - target) ** 2)))
    ss_similarity, ss_affine = ss
    if ss_similarity <= 0:
        return ParallaxSample(residual=0.0, flatness=0.0)
    flatness = float(np.clip((ss_similarity - ss_affine) / ss_similarity, 0.0, 1.0))
    return ParallaxSample(residual=float(np.sqrt(ss_similarity / n)), flatness=flatness)


def pooled_flatness(samples: list[ParallaxSample], min_residual: float = MIN_RESIDUAL) -> float:
    """A track's flatness: the explained share of the summed similarity residuals of its pairs
    with more than landmark noise (0 when it has none)."""
    moving = [s for s in samples if s.residual >= min_residual]
    total = sum(s.residual**2 for s in moving)
    return float(sum(s.explained for s in moving) / total) if total > 0 else 0.0


@dataclass
class ParallaxTally:
    """One track's landmark history and parallax samples (the stream, bursts and benchmarks
    feed it the landmarks of each frame with their source time)."""

    lag: float = PARALLAX_LAG_S
    max_lag: float = PARALLAX_MAX_LAG_S
    keep: int = 120  # newest pairs the track's score pools (a camera track can last hours)
    history: list[tuple[float, np.ndarray]] = field(default_factory=list)
    samples: list[ParallaxSample] = field(default_factory=list)

    def observe(self, at: float, landmarks: np.ndarray | None) -> ParallaxSample | None:
        """Add a frame's landmarks (None: no landmarks this frame); pair it with the newest
        earlier frame at least `lag` before it (and at most `max_lag`)."""
        if landmarks is None:
            return None
        self.history = [(t, p) for t, p in self.history if 0 <= at - t <= self.max_lag]
        partner = next((p for t, p in reversed(self.history) if at - t >= self.lag), None)
        self.history.append((at, np.asarray(landmarks, np.float32)))
        if partner is None:
            return None
        sample = parallax(partner, landmarks)
        if sample is not None:
            sample = replace(sample, at=at)
            self.samples.append(sample)
            del self.samples[: -self.keep]
        return sample

    def moving_pairs(self, min_residual: float = MIN_RESIDUAL) -> int:
        return sum(s.residual >= min_residual for s in self.samples)

    def moving_span(self, min_residual: float = MIN_RESIDUAL) -> float:
        """Seconds from the first to the last kept pair that moved beyond landmark noise."""
        times = [s.at for s in self.samples if s.residual >= min_residual]
        return max(times) - min(times) if times else 0.0

    def cue(
        self,
        threshold: float,
        min_pairs: int,
        *,
        decides: bool,
        min_seconds: float = 0.0,
        min_residual: float = MIN_RESIDUAL,
    ) -> AttackCue | None:
        """The `parallax` cue: the track's pooled flatness against `threshold`, flagged once at
        least `min_pairs` pairs over at least `min_seconds` moved more than landmark noise (a
        frame's landmarks pair with those `lag` before, so with a detection on every frame five
        pairs are a sixth of a second: one moment of a turning head); None before any pair
        moved."""
        moving = self.moving_pairs(min_residual)
        if moving == 0:
            return None
        score = pooled_flatness(self.samples, min_residual)
        return AttackCue(
            name="parallax",
            score=round(score, 3),
            threshold=threshold,
            samples=moving,
            flagged=moving >= min_pairs
            and self.moving_span(min_residual) >= min_seconds
            and score >= threshold,
            decides=decides,
        )
