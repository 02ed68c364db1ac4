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
