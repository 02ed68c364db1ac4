"""BlazeFace's decoder on made-up network outputs: anchors, box regression, scores, weighted NMS,
tiling and the mapping to HOG-like boxes (the real model on real images: tests/integration)."""

from __future__ import annotations

import numpy as np

from watchpost.vision import blazeface
from watchpost.vision.blazeface import NETWORKS, BoxFit, Detection


def test_the_anchor_grids_have_the_networks_output_sizes():
    short, full = blazeface.anchors(NETWORKS["short"]), blazeface.anchors(NETWORKS["full"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8 on 128 px: 16x16 cells of two anchors, the first at the first cell's centre
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8])  # stride 16 starts after 16*16*2
    assert np.allclose(full[-1], [47.5 / 48, 47.5 / 48])


def test_a_regressed_box_is_decoded_around_its_anchor_in_input_units():
    net = NETWORKS["short"]
    centres = blazeface.anchors(net)
    regressors = np.zeros((1, 896, 16), np.float32)
    scores = np.full((1, 896, 1), -10.0, np.float32)
    regressors[0, 600, :4] = [6.4, -3.2, 32.0, 38.4]  # pixels of the 128-px input
    regressors[0, 600, 4:6] = [-6.4, 0.0]  # the first keypoint
    scores[0, 600, 0] = 3.0
    boxes, probability, points = blazeface.decode(regressors, scores, centres, 128, 0.5)
    assert boxes.shape == (1, 4)
    cx, cy = centres[600] + [0.05, -0.025]
    assert np.allclose(boxes[0], [cx - 0.125, cy - 0.15, cx + 0.125, cy + 0.15], atol=1e-6)
    assert np.isclose(probability[0], 1 / (1 + np.exp(-3.0)))
    assert np.allclose(points[0, 0], centres[600] + [-0.05, 0.0])


def test_scores_far_out_of_range_neither_overflow_nor_pass():
    net = NETWORKS["short"]
    scores = np.full((1, 896, 1), -1e6, np.float32)
    boxes, _, _ = blazeface.decode(
        np.zeros((1, 896, 16), np.float32), scores, blazeface.anchors(net), 128, 0.5
    )
    assert boxes.shape == (0, 4)


def test_weighted_nms_merges_overlapping_boxes_by_score_and_keeps_apart_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    found = blazeface.weighted_nms(boxes, scores, points)
    assert [round(d.score, 2) for d in found] == [0.9, 0.7]
    expected = (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5
    assert np.allclose(found[0].box, expected)
    assert np.allclose(found[1].box, boxes[2])


def test_tiles_cover_a_wide_and_a_tall_frame_with_squares():
    assert blazeface.tiles(640, 360) == [(0, 0, 360), (280, 0, 360)]
    assert blazeface.tiles(360, 360) == [(0, 0, 360)]
    assert blazeface.tiles(300, 1000) == [(0, 0, 300), (0, 233, 300), (0, 467, 300), (0, 700, 300)]


def test_the_hog_box_is_the_fitted_square_clipped_to_the_frame():
    detection = Detection(np.array([100, 100, 200, 220], np.float32), 0.9, np.zeros((6, 2)))
    box = blazeface.to_hog_box(detection, 640, 360, BoxFit(dx=0.1, dy=-0.05, scale=0.8))
    # side 120 (the longer side), centre (150 + 12, 160 - 6), HOG side 96
    assert box == (114, 106, 210, 202)
    edge = Detection(np.array([600, 300, 700, 400], np.float32), 0.9, np.zeros((6, 2)))
    assert blazeface.to_hog_box(edge, 640, 360, BoxFit(0, 0, 1)) == (600, 300, 640, 360)
    outside = Detection(np.array([700, 400, 720, 420], np.float32), 0.9, np.zeros((6, 2)))
    assert blazeface.to_hog_box(outside, 640, 360, BoxFit(0, 0, 1)) is None
