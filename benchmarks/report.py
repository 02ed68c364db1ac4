"""Shared by the benchmarks: the last line every one prints is its figures as one JSON object."""

from __future__ import annotations

import json


def rounded(value, digits: int = 3):
    """Floats rounded, at any depth of dicts and lists."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def print_json(figures: dict, digits: int = 3) -> None:
    print(json.dumps(rounded(figures, digits)))
