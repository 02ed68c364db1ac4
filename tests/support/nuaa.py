"""NUAA frames as camera streams: the frames of one capture session, in time order."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

NAME = re.compile(r"^(\d{4}_\d{2}_\d{2}_\d{2})_(\d+)\.jpg$")


def sessions(folder: Path) -> dict[str, list[Path]]:
    """Session id (ID_glasses_pos_session) -> its frames sorted by picture number."""
    found: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for path in folder.iterdir():
        match = NAME.match(path.name)
        if match:
            found[match[1]].append((int(match[2]), path))
    return {key: [p for _, p in sorted(frames)] for key, frames in sorted(found.items())}
