"""Progress of long work (benchmarks, training, CLI commands), always on stderr.

Stdout stays for results: a benchmark's last stdout line is its figures as one JSON object, so
`python -m benchmarks.x > figures.json` keeps the bars on the terminal and the figures in the file.
On a terminal the bars are live; elsewhere (a pipe, CI's log) rich prints each finished bar
once, when it ends, so a log still shows what ran and for how long.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

STDERR = Console(stderr=True)


def bar(*, transient: bool = False, auto_refresh: bool = True, disable: bool = False) -> Progress:
    """A progress display on stderr: description, bar, done/total, elapsed, remaining. Use it
    as a context manager and `add_task` / `advance` for work in several parts. It redraws four
    times a second from a thread of its own; around timed work pass `auto_refresh=False`, and it
    redraws only when advanced (between the timed parts, never during them). `disable` shows
    nothing (e.g. when stdout is not a terminal: on a terminal, lines printed while a bar is shown
    go above it, through stderr)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=STDERR,
        transient=transient,
        refresh_per_second=4,
        auto_refresh=auto_refresh,
        disable=disable,
    )


def track(
    items: Iterable[T], description: str, total: int | None = None, *, auto_refresh: bool = True
) -> Iterator[T]:
    """Iterate over `items` with a progress bar on stderr (`total` when `items` has no len).
    `auto_refresh=False` redraws only between items (for loops whose items are timed)."""
    if total is None and isinstance(items, Sequence):
        total = len(items)
    with bar(auto_refresh=auto_refresh) as progress:
        yield from progress.track(items, total=total, description=description)
