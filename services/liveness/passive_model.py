"""The passive presentation-attack model: a logistic regression over `texture.features`.

    model = PassiveModel.load()              # services/liveness/models/passive.json
    p_attack = model.scores([crop, ...])     # one P(attack) per RGB uint8 face crop, any size
    attack = p_attack >= model.threshold

Crops are `watchpost.images.cut_square(frame, face_box)` at camera resolution; the features resize
them. The JSON (written by `python -m services.liveness.training.passive`) holds the feature
groups, the scaler, the weights, the threshold chosen on leave-one-source-out scores, `decides`
and the card of measured figures; applying it needs NumPy and OpenCV only (no scikit-learn).

`decides` is True only if, at the shipped threshold, BPCER per presentation was at most 5% on
every leave-one-source-out fold; when False the score should be treated as evidence to combine
with the other checks, not as a verdict on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.liveness import texture

DEFAULT_PATH = Path(__file__).parent / "models" / "passive.json"
FORMAT = "watchpost-passive-lr-1"


@dataclass
class PassiveModel:
    groups: list[str]
    normalise: bool
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    decides: bool
    card: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._mask = texture.group_mask(self.groups)
        size = int(self._mask.sum())
        if not (self.mean.shape == self.scale.shape == self.coef.shape == (size,)):
            raise ValueError(
                f"model arrays must have {size} values for groups {self.groups}; got "
                f"{self.mean.shape}, {self.scale.shape}, {self.coef.shape}"
            )

    @classmethod
    def load(cls, path: Path | None = None) -> PassiveModel:
        path = Path(path) if path is not None else DEFAULT_PATH
        if not path.exists():
            raise FileNotFoundError(
                f"no passive model at {path}; train it with "
                "`python -m services.liveness.training.passive`"
            )
        return cls.from_dict(json.loads(path.read_text()))

    @classmethod
    def from_dict(cls, data: dict) -> PassiveModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a passive model file (format {data.get('format')!r})")
        return cls(
            groups=list(data["groups"]),
            normalise=bool(data["normalise"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            decides=bool(data["decides"]),
            card=dict(data.get("card", {})),
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "groups": self.groups,
            "normalise": self.normalise,
            "mean": [round(float(v), 8) for v in self.mean],
            "scale": [round(float(v), 8) for v in self.scale],
            "coef": [round(float(v), 8) for v in self.coef],
            "intercept": float(self.intercept),
            "threshold": float(self.threshold),
            "decides": bool(self.decides),
            "card": self.card,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    def features(self, crop: np.ndarray) -> np.ndarray:
        """The model's feature vector of one crop (ValueError for a bad crop, see texture)."""
        return texture.features(crop, normalise=self.normalise, groups=self.groups)

    def scores_from_features(self, rows: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(rows) - self.mean) / self.scale
        logits = z @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))

    def scores(self, crops: list[np.ndarray]) -> np.ndarray:
        """P(attack) per RGB uint8 crop. An empty list gives an empty array; a crop that is not
        RGB uint8 of at least texture.MIN_SIDE pixels a side raises ValueError."""
        if len(crops) == 0:
            return np.zeros(0)
        return self.scores_from_features(np.stack([self.features(c) for c in crops]))
