"""The benchmarks run (on a few frames) so they cannot rot; their figures are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import require_data
from watchpost.settings import PROJECT_ROOT


@pytest.mark.data
def test_stage_costs_prints_its_figures_as_json():
    video = require_data("video/talking_blinks_720p.mp4")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.stage_costs", str(video), "--frames", "12"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["frames"] == 12 and figures["frame_size"] == "640x360"
    assert figures["naive_fps"] > 0 and figures["watchpost_fps"] > 0 and figures["embed_ms"] > 0


def run_benchmark(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_search_latency_runs_on_small_galleries():
    figures = run_benchmark("benchmarks.search_latency", "--sizes", "2000", "--queries", "20")
    (result,) = figures["results"]
    assert result["size"] == 2000 and result["disagreements"] == 0


@pytest.mark.slow
@pytest.mark.data
def test_verification_benchmark_on_a_pairs_file_built_from_the_shared_faces(tmp_path):
    require_data("faces")
    subprocess.run(
        [sys.executable, "-m", "benchmarks.make_pairs", str(tmp_path)],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    header = (tmp_path / "pairs.txt").read_text().splitlines()[0].split()
    assert header[0] == "10"
    figures = run_benchmark(
        "benchmarks.verification_accuracy",
        str(tmp_path / "pairs.txt"),
        str(tmp_path / "images"),
        "--roc",
        str(tmp_path / "roc.png"),
    )
    assert figures["folds"] == 10 and figures["pairs"] == 20 * int(header[1])
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.data
def test_identification_benchmark():
    require_data("faces")
    figures = run_benchmark("benchmarks.identification")
    assert figures["agreement_with_brute_force"] == 1.0 and figures["genuine_probes"] > 0
