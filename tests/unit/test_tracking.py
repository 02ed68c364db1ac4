import pytest

from watchpost.vision.tracking import iou, match_detections


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_match_detections_is_one_to_one_best_first():
    tracks = {"a": (0, 0, 10, 10), "b": (100, 100, 120, 120)}
    detections = [(101, 101, 121, 121), (1, 1, 11, 11), (300, 300, 320, 320)]
    matched, new, lost = match_detections(tracks, detections, min_iou=0.3)
    assert matched == {"a": 1, "b": 0}
    assert new == [2]
    assert lost == []


def test_a_track_without_overlap_is_lost_and_the_face_is_new():
    matched, new, lost = match_detections({"a": (0, 0, 10, 10)}, [(50, 50, 60, 60)], min_iou=0.3)
    assert (matched, new, lost) == ({}, [0], ["a"])
