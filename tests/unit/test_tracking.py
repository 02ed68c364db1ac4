import numpy as np
import pytest

from watchpost.vision.tracking import FaceTracker, iou, match_detections


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


def square_frames(count: int, step: int = 3) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Frames of a textured square moving right `step` px a frame, with its box."""
    texture = np.random.default_rng(7).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    frames = []
    for i in range(count):
        rgb = np.full((240, 320, 3), 40, dtype=np.uint8)
        left = 40 + step * i
        rgb[80:160, left : left + 80] = texture
        frames.append((rgb, (left, 80, left + 80, 160)))
    return frames


def test_a_track_follows_its_face_between_detections_and_keeps_its_id_when_detected():
    frames = square_frames(12)
    tracker = FaceTracker()
    (first,) = tracker.update(frames[0][0], [frames[0][1]])
    for rgb, box in frames[1:6]:  # no detection: the tracker, seeded on the first frame, follows
        (followed,) = tracker.update(rgb, None)
        assert followed.track_id == first.track_id and not followed.detected
        assert iou(followed.box, box) > 0.7
    for rgb, box in frames[6:]:  # a detection on every frame: matched to the frame before's box
        (detected,) = tracker.update(rgb, [box])
        assert detected.track_id == first.track_id and detected.detected and detected.box == box


def test_with_a_detector_step_a_missed_face_is_left_out_and_taken_back_by_the_next_detection():
    """`follow` (a detector's own step) replaces the correlation tracker: a face it finds moves
    the track's box; one it misses is not reported on that frame, but the track keeps its last
    box, so the next detection frame takes the face back under the same id."""
    frames = square_frames(8)
    looks: list = []

    def follow(rgb, box):
        looks.append(box)
        index = len(looks)
        return None if index == 3 else frames[index][1]  # misses the face on the third look

    tracker = FaceTracker(follow=follow)
    (first,) = tracker.update(frames[0][0], [frames[0][1]])
    for index in (1, 2):
        (followed,) = tracker.update(frames[index][0], None)
        assert followed.track_id == first.track_id and not followed.detected
        assert followed.box == frames[index][1]
    assert tracker.update(frames[3][0], None) == []  # missed: left out, not ended
    assert looks[-1] == frames[2][1]  # looked for where it was last seen
    (again,) = tracker.update(frames[4][0], [frames[4][1]])
    assert again.track_id == first.track_id and again.detected
