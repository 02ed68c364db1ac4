"""The benchmarks run (on a few frames) so they cannot rot; their figures are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import require_data
from watchpost.settings import PROJECT_ROOT, RecognitionSettings


def run_benchmark(*args: str, progress: str | None = None) -> dict:
    """Run `python -m <args>`; its last stdout line is its figures. With `progress`, that bar
    (its description) must be on stderr and no bar on stdout (figures stay parseable when
    redirected)."""
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    if progress is not None:
        assert progress in result.stderr and BAR in result.stderr, result.stderr
        assert BAR not in result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


BAR = "\u2501"  # the bar's line character


def make_pairs(folder) -> None:
    """An LFW-format pairs file and its images under `folder`, from the shared faces."""
    require_data("faces")
    subprocess.run(
        [sys.executable, "-m", "benchmarks.make_pairs", str(folder)],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.data
def test_stage_costs_prints_its_figures_as_json():
    video = require_data("video/talking_blinks_720p.mp4")
    figures = run_benchmark(
        "benchmarks.stage_costs", str(video), "--frames", "12", progress="attack cues"
    )
    assert figures["frames"] == 12 and figures["frame_size"] == "640x360"
    assert figures["naive_fps"] > 0 and figures["watchpost_fps"] > 0 and figures["embed_ms"] > 0


@pytest.mark.data
def test_detectors_prints_its_table_and_json():
    require_data("video")
    figures = run_benchmark(
        "benchmarks.detectors",
        "--every",
        "100",
        "--max-per-source",
        "1",
        "--embed-max",
        "1",
        progress="every detector",
    )
    rows = figures["rows"]
    assert {r["detector"] for r in rows} >= {
        "hog, upsample 1 (reference)",
        "blazeface short, tiled",
    }
    assert all(r["cost_vs_hog"] > 0 for r in rows)
    assert all(r["recall_of_hog"] == 1 for r in rows if r["detector"].startswith("hog, upsample 1"))


@pytest.mark.data
def test_levers_prints_every_lever_as_json():
    video = require_data("video/talking_blinks_720p.mp4")
    figures = run_benchmark(
        "benchmarks.levers", str(video), "--frames", "6", progress=f"{video.name}: jpeg"
    )
    result = figures[video.name]
    assert {r["detect_every"] for r in result["detect_interval"]} == {1, 3, 5, 10, 15}
    assert [r["quality"] for r in result["jpeg"]] == [50, 70, 85, 95]
    assert len(result["detection"]) == 6 and figures["shipped"]["jpeg_quality"] == 85


def test_search_latency_runs_on_small_galleries():
    figures = run_benchmark(
        "benchmarks.search_latency", "--sizes", "2000", "--queries", "20", progress="gallery sizes"
    )
    (result,) = figures["results"]
    assert result["size"] == 2000 and result["disagreements"] == 0


@pytest.mark.data
def test_embedding_levers_benchmark_scores_each_lever_against_the_shipped_one(tmp_path):
    make_pairs(tmp_path)
    args = (
        "benchmarks.embedding_levers",
        str(tmp_path / "pairs.txt"),
        str(tmp_path / "images"),
        "--levers",
        "pad0.30",
        "--cache",
        str(tmp_path / "cache"),
        "--cost-faces",
        "3",
    )
    figures = run_benchmark(*args, progress="shipped")
    levers = figures["levers"]
    assert {"shipped", "pad0.30", "flip-mean", "flip-one-side", "cosine"} <= set(levers)
    assert levers["shipped"]["gain"] == 0 and levers["shipped"]["cost_ratio"] == 1
    assert levers["flip-mean"]["cost_ratio"] > 1  # two network passes per face
    # The cache makes a second run score the same embeddings.
    again = run_benchmark(*args)
    assert again["levers"]["pad0.30"]["accuracy"] == levers["pad0.30"]["accuracy"]


@pytest.mark.slow  # about a minute on the shared machine: 5 network passes per first image
@pytest.mark.data
def test_enrolment_jitter_lever_jitters_the_first_image_of_each_pair_only(tmp_path):
    make_pairs(tmp_path)
    # One matched and one mismatched pair per fold keeps the jittered embeddings few.
    header, *lines = (tmp_path / "pairs.txt").read_text().splitlines()
    folds, per_fold = (int(x) for x in header.split())
    kept = [
        line
        for fold in range(folds)
        for line in (lines[2 * per_fold * fold], lines[2 * per_fold * fold + per_fold])
    ]
    (tmp_path / "pairs.txt").write_text("\n".join([f"{folds} 1", *kept]) + "\n")
    figures = run_benchmark(
        "benchmarks.embedding_levers",
        str(tmp_path / "pairs.txt"),
        str(tmp_path / "images"),
        "--levers",
        "enrol-jitter5",
        "--cache",
        str(tmp_path / "cache"),
        "--cost-faces",
        "2",
    )
    levers = figures["levers"]
    assert "jitter5" not in levers  # both sides were not embedded, so not scored
    assert levers["enrol-jitter5"]["cost_paid_at"] == "enrolment"
    assert levers["shipped"]["cost_paid_at"] == "every face"
    firsts = {f"{line.split()[0]}-{line.split()[0]}_{int(line.split()[1]):04d}" for line in kept}
    jittered = {p.name.removesuffix(".npz") for p in (tmp_path / "cache" / "jitter5").iterdir()}
    assert jittered == firsts
    assert len(list((tmp_path / "cache" / "shipped").iterdir())) > len(firsts)


@pytest.mark.slow
@pytest.mark.data
def test_verification_benchmark_on_a_pairs_file_built_from_the_shared_faces(tmp_path):
    make_pairs(tmp_path)
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
    data = require_data("faces").parent
    figures = run_benchmark(
        "benchmarks.identification", "--data", str(data), progress="impostor probes"
    )
    assert figures["agreement_with_brute_force"] == 1.0 and figures["genuine_probes"] > 0


@pytest.mark.slow
@pytest.mark.data
def test_eye_state_benchmark_on_a_folder_of_patches(tmp_path):
    import zipfile

    archive = require_data("eyes/cew_dataset_B_Eye_Images.zip")
    with zipfile.ZipFile(archive) as bundle:
        for kind, prefix in (("open", "openLeftEyes/"), ("closed", "closedLeftEyes/")):
            (tmp_path / kind).mkdir()
            names = [n for n in bundle.namelist() if prefix in n and n.endswith(".jpg")][:15]
            for name in names:
                (tmp_path / kind / name.split("/")[-1]).write_bytes(bundle.read(name))
    figures = run_benchmark("benchmarks.eye_state_accuracy", str(tmp_path), progress="eye images")
    assert figures["patches"] == 30 and figures["closed"] == 15
    assert figures["accuracy"] > figures["majority_baseline_accuracy"]


@pytest.mark.slow
@pytest.mark.data
def test_pad_benchmark_on_real_and_attack_folders(tmp_path):
    """Presentations of every shape: an image sequence (a folder), a single image, a video."""
    nuaa = require_data("liveness/nuaa_train")
    replay = require_data("liveness/extra/lestari15__CNN-face-detection/spoof/videos/fake.mp4")
    for kind, source in (("real", "ClientRaw/0003"), ("print", "ImposterRaw/0003")):
        sequence = tmp_path / kind / "session"
        sequence.mkdir(parents=True)
        photos = sorted((nuaa / source).glob("*.jpg"))
        for photo in photos[:12]:
            (sequence / photo.name).symlink_to(photo)
        (tmp_path / kind / photos[-1].name).symlink_to(photos[-1])
    (tmp_path / "replay").mkdir()
    (tmp_path / "replay" / "fake.mp4").symlink_to(replay)
    saved = tmp_path / "evidence.pkl"
    figures = run_benchmark(
        "benchmarks.pad_evaluation",
        str(tmp_path),
        "--save-evidence",
        str(saved),
        progress="presentations",
    )
    assert figures["presentations"] == 5
    assert figures["kinds"]["real"]["presentations"] == 2
    assert set(figures["apcer_per_type"]) == {"print", "replay"}
    assert figures["kinds"]["replay"]["spoof"] == 1.0  # the phone replay is caught
    assert 0 <= figures["bpcer"] <= 1 and figures["worst_attack_type"] in ("print", "replay")
    modes = figures["groups"]["all"]["verdict"]
    assert set(modes) == {  # judged on the same evidence, with and without head motion
        f"{mode}{variant}"
        for mode in ("off", "corroborates", "decides")
        for variant in ("", "/blink-only")
    }
    assert modes["off"]["kinds"]["replay"]["spoof"] == 1.0
    # The saved evidence judged again without reading a frame, and the parallax cue read off it.
    again = run_benchmark("benchmarks.pad_evaluation", "--evidence", str(saved))
    assert again["groups"] == figures["groups"]
    parallax = run_benchmark("benchmarks.parallax", "--evidence", str(saved))
    assert set(parallax["per_presentation"]) == {
        "session",
        "fake.mp4",
        *(p.name for p in tmp_path.glob("*/*.jpg")),
    }
    assert parallax["cost"]["parallax_ms_per_pair"] < parallax["cost"]["landmarks_ms_per_face"]


@pytest.mark.slow
@pytest.mark.data
def test_blink_count_benchmark_on_a_video():
    data = require_data("video/talking_blinks_720p.mp4").parent.parent
    figures = run_benchmark(
        "benchmarks.blink_count",
        "talking_blinks_720p.mp4",
        "--data",
        str(data),
        "--eye-px",
        "--max-frames",
        "60",
        progress="talking_blinks_720p",
    )
    (result,) = figures["results"]
    assert result["frames"] == 60 and len(result["people"]) == 1
    assert any(30 <= f <= 43 for f in result["people"][0]["read_fused"])  # the blink at 30-34


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.data
def test_pipeline_benchmark_on_a_short_clip(tmp_path):
    import cv2

    source = cv2.VideoCapture(str(require_data("video/talking_blinks_720p.mp4")))
    writer = cv2.VideoWriter(
        str(tmp_path / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 30, (640, 360)
    )
    frames = []
    for _ in range(45):
        ok, bgr = source.read()
        assert ok
        frames.append(cv2.resize(bgr, (640, 360)))
        writer.write(frames[-1])
    writer.release()
    (tmp_path / "enrol" / "Speaker").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "enrol" / "Speaker" / "speaker.jpg"), frames[10])
    figures = run_benchmark(
        "benchmarks.pipeline",
        str(tmp_path / "clip.avi"),
        str(tmp_path / "enrol"),
        "--detectors",
        "blazeface",
    )
    (run,) = figures["runs"]
    assert run["detector"] == "blazeface"
    assert figures["reference"]["frames"] == 45 and run["watchpost"]["frames_with_faces"] > 0
    # Every decoded frame counts, as in the reference loop.
    assert run["watchpost"]["frames_read"] == run["watchpost"]["frames_in_clips"] == 45
    assert run["identities_reference"] == ["Speaker"]
    # People are compared by sightings too: the speaker's track is on record by name.
    assert run["identities_sightings"] == ["Speaker"]
    assert run["same_people_by_sightings"] is True
    speaker = next(p for p in run["people"] if p["name"] == "Speaker")
    assert speaker["reference_faces"] > 0 and speaker["sightings"] >= 1
    assert 1 <= speaker["votes"] <= speaker["checks"]
    assert all(s["ended"] for s in run["watchpost"]["sightings"])
    assert set(run["watchpost"]["cpu_share_of_one_core"]) == {
        "recognition",
        "liveness",
        "aggregator",
        "dashboard",
        "capture",
    }
    assert run["watchpost"]["cameras_by_capture_process"] == {"capture": ["bench-0"]}


def test_pipeline_sums_the_frames_of_every_capture_node_and_waits_for_all_their_cameras():
    from benchmarks.pipeline import capture_totals

    def camera(camera_id: str, status: str, read: int) -> dict:
        return {
            "camera_id": camera_id,
            "status": status,
            "frames_read": read,
            "frames_published": 1,
        }

    statuses = {
        "capture": [camera("bench-0", "ended", 301), camera("bench-3", "ended", 300)],
        "capture-2": [camera("bench-1", "ended", 299), camera("bench-2", "running", 10)],
    }
    totals = capture_totals(statuses, cameras=4)
    assert (totals["decoded"], totals["published"], totals["ended"]) == (910, 4, False)
    assert totals["cameras_by_node"] == {
        "capture": ["bench-0", "bench-3"],
        "capture-2": ["bench-1", "bench-2"],
    }
    statuses["capture-2"][1]["status"] = "ended"
    assert capture_totals(statuses, cameras=4)["ended"]
    # A camera no node has taken yet is not ended, though every camera a node shows is.
    assert not capture_totals({"capture": statuses["capture"], "capture-2": []}, cameras=4)["ended"]


def test_verification_reads_view_1_and_cuts_it_into_folds(tmp_path):
    from benchmarks.verification_accuracy import best_threshold, read_pairs

    view1 = tmp_path / "pairsDevTest.txt"
    matched = [f"P{i:02d}\t1\t2" for i in range(20)]
    mismatched = [f"P{i:02d}\t1\tQ{i:02d}\t1" for i in range(20)]
    view1.write_text("\n".join(["20", *matched, *mismatched]) + "\n")
    folds, pairs, fold_of = read_pairs(view1, view1_folds=10)
    assert folds == 10 and len(pairs) == 40
    # Every fold has its share of matched and mismatched pairs.
    for fold in range(10):
        kinds = [p[4] for p, f in zip(pairs, fold_of, strict=True) if f == fold]
        assert sorted(kinds) == [False, False, True, True]
    view1.write_text("\n".join(["20", *mismatched, *matched]) + "\n")
    with pytest.raises(SystemExit, match="20 matched then 20 mismatched"):
        read_pairs(view1)
    view1.write_text("pairs\n")
    with pytest.raises(SystemExit, match="first line must be"):
        read_pairs(view1)
    # The threshold sits between the classes, midway to the next distance.
    distances = np.array([0.3, 0.4, 0.7, 0.8])
    assert best_threshold(distances, np.array([True, True, False, False])) == pytest.approx(0.55)


def test_mqtt_alert_path_benchmark_runs_against_a_real_broker(mqtt_broker):
    host, port = mqtt_broker
    figures = run_benchmark(
        "benchmarks.mqtt_alert_path",
        "--alerts",
        "5",
        "--broker",
        f"{host}:{port}",
        progress="hung_broker",
    )
    runs = {r["run"]: r for r in figures["runs"]}
    assert set(runs) == {"mqtt_off", "live_broker", "refusing_port", "hung_broker"}
    assert runs["live_broker"]["reached_broker"] == 2 * 5 and runs["mqtt_off"]["median_vs_off"] == 1


def test_verification_embeds_the_face_nearest_the_centre_where_there_are_several():
    # LFW centres the labelled person; a neighbour's face can be as large or larger (HOG boxes
    # come in a few sizes), so "largest first" embedded the wrong person in some pairs.
    from benchmarks.faces import nearest_centre

    neighbour, person, corner = (155, -13, 245, 86), (106, 76, 195, 166), (16, 7, 106, 96)
    assert nearest_centre([neighbour, person, corner], 250, 250) == person
    assert nearest_centre([(163, 44, 270, 152), (79, 80, 187, 187)], 250, 250) == (79, 80, 187, 187)
    assert nearest_centre([corner], 250, 250) == corner


@pytest.mark.data
def test_gallery_scale_runs_on_a_small_gallery(env_settings, monkeypatch):
    """Real Postgres and Redis (this test's own); the LFW statistics from the shared photos."""
    require_data("faces/lfw_view1_devtest")
    settings = env_settings(RecognitionSettings)
    monkeypatch.setenv("WATCHPOST_DATABASE_URL", settings.require_database_url())
    monkeypatch.setenv("WATCHPOST_REDIS_URL", settings.require_redis_url())
    monkeypatch.setenv("WATCHPOST_DATA_DIR", str(settings.data_dir))
    figures = run_benchmark(
        "benchmarks.gallery_scale", "--sizes", "3000", "--queries", "10", "--lfw-images", "40"
    )
    (result,) = figures["results"]
    assert result["size"] == 3000 and result["identities"] == 750
    assert result["load_binary_s"] > 0 and result["load_rows_s"] > 0
    assert 0 <= result["recall_at_1_decision"] <= 1 and result["enrol_to_recognisable_ms_max"] > 0


@pytest.mark.data
def test_bus_capacity_reads_back_every_frame_and_prints_its_figures():
    clip = require_data("video/talking_blinks_720p.mp4")
    figures = run_benchmark(
        "benchmarks.bus_capacity", "--frames", "60", "--alerts", "20", "--clients", "1", "2",
        "--clip", str(clip), progress="sighting updates x2",
    )  # fmt: skip
    redis_figures = figures["redis"]
    # A frame entry holds the bus JPEG and a camera-resolution crop: tens of kB, not bytes.
    assert 10_000 < redis_figures["bytes_per_entry"] < 500_000
    assert redis_figures["frames_per_redis_core"] > 0 and redis_figures["ratio_to_raw"] > 0
    assert set(figures["postgres"]) == {"clients_1", "clients_2"}
    assert all(f["alerts_per_s"] > 0 for f in figures["postgres"].values())
