import subprocess
import sys

import pytest

from watchpost.settings import PROJECT_ROOT


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "watchpost.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_up_refuses_a_camera_file_that_does_not_exist():
    result = run_cli("up", "--camera", "/nonexistent/door.mp4")
    assert result.returncode == 2
    assert "no video at /nonexistent/door.mp4" in result.stderr and "--camera" in result.stderr


def test_serve_refuses_an_unknown_service():
    result = run_cli("serve", "mailer")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_a_service_without_its_urls_says_which_setting_is_missing():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHPOST_")}
    result = run_cli("serve", "aggregator", env=env)
    assert result.returncode != 0 and "WATCHPOST_REDIS_URL is not set" in result.stderr


@pytest.mark.parametrize(
    ("camera", "environ", "expected"),
    [
        (None, {}, {"WATCHPOST_CAPTURE_LOOP": "true"}),  # the demo video: looped
        ("rtsp://cam/1", {}, {}),  # a camera named on the command line
        (None, {"WATCHPOST_CAPTURE_SOURCE": "/videos/door.mp4"}, {}),  # or in the environment
        (None, {"WATCHPOST_CAPTURE_LOOP": "false"}, {}),  # the user's own choice stands
    ],
)
def test_make_up_loops_the_demo_video_only(camera, environ, expected, monkeypatch):
    from watchpost.cli import demo_loop
    from watchpost.settings import CaptureSettings

    assert demo_loop(camera, environ) == expected
    for name, value in expected.items():  # and capture reads it as a loop
        monkeypatch.setenv(name, value)
    assert CaptureSettings().capture_loop is bool(expected)


def test_up_starts_the_replicas_asked_for_with_names_and_ports_of_their_own():
    import argparse

    from watchpost.cli import Stack

    args = argparse.Namespace(
        replicas=2,
        recognition_replicas=None,
        liveness_replicas=3,
        aggregator_replicas=None,
        capture_processes=2,
        port_offset=100,
    )
    tokens: dict[str, dict[str, str]] = {
        name: {} for name in ["recognition", "liveness", "aggregator", "dashboard", "capture"]
    }
    env = {"WATCHPOST_CONSUMER_NAME": "box"}
    stack = Stack(args)
    children = stack.processes(env, tokens)
    names = [name for name, *_ in children]
    assert names == [
        "recognition",
        "recognition-2",
        "liveness",
        "liveness-2",
        "liveness-3",
        "aggregator",
        "aggregator-2",
        "dashboard",
        "capture",
        "capture-2",
    ]
    assert len({port for _, _, port, _ in children}) == len(children)
    # Every capture node's status is on a port of its own (what the pipeline benchmark reads).
    assert stack.urls("capture") == {
        "capture": "http://127.0.0.1:8102",
        "capture-2": "http://127.0.0.1:8112",
    }
    assert [child_env["WATCHPOST_HTTP_PORT"] for name, *_, child_env in children[-2:]] == [
        "8102",
        "8112",
    ]
    consumers = [child_env["WATCHPOST_CONSUMER_NAME"] for *_, child_env in children]
    assert len(set(consumers)) == len(children) and consumers[1] == "box-recognition-2"
    assert {service for _, service, *_ in children if service != "dashboard"} >= {"liveness"}


def test_up_offers_replicas():
    result = run_cli("up", "--help")
    assert result.returncode == 0
    assert "--replicas" in result.stdout and "--aggregator-replicas" in result.stdout
