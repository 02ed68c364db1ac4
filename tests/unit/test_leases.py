"""The fair-share plan of capture nodes (pure): who gives back and who takes which camera."""

from __future__ import annotations

import pytest

from services.capture.leases import fair_share, plan, rendezvous_order

CAMERAS = [f"cam{n}" for n in range(7)]


def test_a_lone_node_takes_every_camera():
    todo = plan("a", CAMERAS, set(), live_nodes=1)
    assert todo.release == [] and sorted(todo.candidates) == CAMERAS and todo.room == 7


def test_a_node_gives_back_beyond_its_share_keeping_the_ones_it_prefers():
    todo = plan("a", CAMERAS, set(CAMERAS), live_nodes=2)
    assert len(todo.release) == len(CAMERAS) - fair_share(7, 2) == 3
    assert todo.room == 0
    preferred = rendezvous_order("a", CAMERAS)
    assert set(todo.release) == set(preferred[4:])


def test_a_removed_camera_is_given_back_even_within_the_share():
    todo = plan("a", ["cam1"], {"cam1", "gone"}, live_nodes=1)
    assert todo.release == ["gone"] and todo.room == 0


def test_nodes_rank_cameras_differently():
    orders = {tuple(rendezvous_order(node, CAMERAS)) for node in "abcdef"}
    assert len(orders) > 1


@pytest.mark.parametrize("nodes", [1, 2, 3, 5, 9])
def test_nodes_settle_on_one_holder_per_camera_within_the_share(nodes):
    """Nodes taking turns against one lease table (what Redis is) end with every camera held
    exactly once and no node above its share, however many there are."""
    names = [f"node{n}" for n in range(nodes)]
    leases: dict[str, str] = {}
    for _ in range(3):
        for node in names:
            held = {c for c, holder in leases.items() if holder == node}
            todo = plan(node, CAMERAS, held, live_nodes=nodes)
            for camera in todo.release:
                del leases[camera]
            free = [c for c in todo.candidates if c not in leases]
            for camera in free[: todo.room]:
                leases[camera] = node
    assert sorted(leases) == CAMERAS
    counts = [list(leases.values()).count(node) for node in names]
    assert max(counts) <= fair_share(len(CAMERAS), nodes)
    assert sum(counts) == len(CAMERAS)


def test_a_lease_shorter_than_two_checks_is_refused():
    from pydantic import ValidationError

    from watchpost.settings import CaptureSettings

    with pytest.raises(ValidationError, match="at least twice"):
        CaptureSettings(capture_lease_seconds=3, capture_cameras_check_seconds=2)
    assert CaptureSettings(capture_lease_seconds=4, capture_cameras_check_seconds=2)
