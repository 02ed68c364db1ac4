"""The landmark-parallax cue on real NUAA frames: a printed photo moved by hand reads flat, a
real person in front of the same webcam does not. The landmarks are fitted as the liveness
reader fits them; 4 s of each session at 10 fps, the service's levels (settings)."""

from __future__ import annotations

import pytest

from services.liveness.eyes import face_landmarks
from services.liveness.parallax import ParallaxTally
from tests.conftest import require_data
from tests.support.frames import load_rgb
from tests.support.nuaa import sessions
from watchpost.images import to_grey
from watchpost.settings import LivenessSettings
from watchpost.vision.faces import detect_faces

pytestmark = pytest.mark.data
FRAMES = 40  # 4 s at 10 fps


def read_session(folder: str, session: str) -> ParallaxTally:
    frames = sessions(require_data(folder))[session][:FRAMES]
    tally = ParallaxTally()
    for index, path in enumerate(frames):
        rgb = load_rgb(path)
        boxes = detect_faces(rgb, upsample=1)[:1]
        if boxes:
            tally.observe(index / 10, face_landmarks(to_grey(rgb), boxes[0]))
    return tally


@pytest.mark.parametrize(
    ("subject", "session"),
    [("0003", "0003_01_01_02"), ("0007", "0007_01_03_02")],  # tuning / held-out subject
)
def test_a_print_moved_by_hand_reads_flat(subject, session):
    settings = LivenessSettings()
    tally = read_session(f"liveness/nuaa_train/ImposterRaw/{subject}", session)
    cue = tally.cue(
        settings.liveness_parallax_threshold,
        settings.liveness_parallax_min_pairs,
        decides=True,
        min_seconds=settings.liveness_parallax_min_seconds,
    )
    assert cue is not None and cue.flagged, cue


@pytest.mark.parametrize(
    ("subject", "session"),
    [("0003", "0003_01_00_01"), ("0007", "0007_01_00_02")],
)
def test_a_real_person_does_not_read_flat(subject, session):
    settings = LivenessSettings()
    tally = read_session(f"liveness/nuaa_train/ClientRaw/{subject}", session)
    cue = tally.cue(
        settings.liveness_parallax_threshold,
        settings.liveness_parallax_min_pairs,
        decides=True,
        min_seconds=settings.liveness_parallax_min_seconds,
    )
    assert len(tally.samples) >= 30  # the face was found and paired all along
    assert cue is None or not cue.flagged, cue
    assert cue is None or cue.score < settings.liveness_parallax_threshold / 2
