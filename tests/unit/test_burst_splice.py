import numpy as np

from services.recognition.burst import BurstFace, splice_problem
from tests.support.values import present


def take(boxes, embeddings=None):
    embeddings = embeddings or [np.zeros(128)] * len(boxes)
    return [BurstFace(i, b, e) for i, (b, e) in enumerate(zip(boxes, embeddings, strict=True))]


def test_one_steady_face_is_one_take():
    boxes = [(100 + 2 * i, 100, 200 + 2 * i, 200) for i in range(10)]
    assert splice_problem(take(boxes), 10) is None
    assert splice_problem(take(boxes[:1]), 1) is None  # one photo: nothing to splice


def test_another_persons_face_is_a_splice():
    other = np.zeros(128)
    other[0] = 0.7
    embeddings = [np.zeros(128)] * 5 + [other] + [np.zeros(128)] * 4
    problem = splice_problem(take([(100, 100, 200, 200)] * 10, embeddings), 10)
    assert problem is not None and "frames 0 and 5 show different faces" in problem


def test_a_face_that_jumps_or_changes_size_is_a_splice():
    boxes = [(100, 100, 200, 200)] * 5 + [(400, 100, 500, 200)] * 5
    assert "jumps between frames 4 and 5" in present(splice_problem(take(boxes), 10))
    boxes = [(100, 100, 200, 200)] * 5 + [(100, 100, 300, 300)] * 5
    assert "jumps" in present(splice_problem(take(boxes), 10))
    # A face missing for a frame may have moved further in the meantime.
    faces = take([(100, 100, 200, 200), (180, 100, 280, 200)])
    faces[1] = BurstFace(2, faces[1].box, faces[1].embedding)
    assert splice_problem(faces, 2) is None


def test_too_many_frames_without_a_face_is_a_splice():
    faces = take([(100, 100, 200, 200)] * 7)
    assert "3 of 10 frames show no face" in present(splice_problem(faces, 10))
    assert splice_problem(faces, 8) is None
