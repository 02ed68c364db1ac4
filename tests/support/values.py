"""Small helpers tests share."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, asserting it is there (a row found, a picture stored, a reading taken)."""
    assert value is not None
    return value
