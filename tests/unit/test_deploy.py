"""What can be checked of the Docker deployment without a Docker engine (tests/e2e/test_compose.py
builds and runs it for real where one runs).

Every check parses the real files (docker-compose.yml and its overrides under deploy/, the shared
deploy/Dockerfile rendered with each service's build arguments, pyproject.toml, .dockerignore,
.env.example) and holds them against the code they start: the settings classes, the CLI, the ops
routes and the import graph. No image is built and no service is started.
"""

from __future__ import annotations

import ast
import fnmatch
import http.server
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.values import present
from watchpost.cli import SECRET_NAMES
from watchpost.cli import main as cli_main
from watchpost.service import BackgroundLoop, add_ops_routes
from watchpost.settings import (
    PROJECT_ROOT,
    SERVICE_LINKS,
    SERVICE_SETTINGS,
    SERVICE_TOKEN_FIELDS,
    DashboardSettings,
)

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
TLS_COMPOSE = yaml.safe_load((PROJECT_ROOT / "deploy/compose.tls.yml").read_text())
STORES_COMPOSE = yaml.safe_load((PROJECT_ROOT / "deploy/compose.debian-stores.yml").read_text())
DOCKERFILE = PROJECT_ROOT / "deploy" / "Dockerfile"
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
EXPECTED = ["aggregator", "capture", "dashboard", "liveness", "recognition"]
SERVICES = sorted(SERVICE_SETTINGS)
LIGHT = ["aggregator", "dashboard"]  # must not carry dlib, OpenCV or TensorFlow
HEAVY_MODULES = {
    "dlib",
    "cv2",
    "tensorflow",
    "keras",
    "face_recognition",
    "face_recognition_models",
    "watchpost.vision",
}
HEAVY_DISTRIBUTIONS = {
    "dlib",
    "dlib-bin",
    "face-recognition",
    "face-recognition-models",
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
}
# What the build stage may copy from the build context (README.md: pyproject's `readme`).
IMAGE_SOURCES = {
    "pyproject.toml",
    "README.md",
    "deploy/constraints.txt",
    "deploy/no-deps.txt",
    "watchpost",
    "services",
}
DEFAULT_BASE = "python:3.11-slim"
# Stand-in for the operator's .env when interpolating the compose file.
DOTENV = {
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef0123456789abcdef",
    "REDIS_PASSWORD": "fedcba9876543210fedcba9876543210fedcba9876543210",
    "WATCHPOST_DASHBOARD_SERVICE_TOKEN": "00112233445566778899aabbccddeeff0011223344556677",
    "WATCHPOST_RECOGNITION_SERVICE_TOKEN": "8899aabbccddeeff00112233445566778899aabbccddeeff",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|PRIVATE", re.IGNORECASE)


# --- Dockerfile parsing ---------------------------------------------------------------------


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, comments dropped and continuations joined."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


DOCKER_VARIABLE = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def docker_substitute(text: str, variables: dict[str, str]) -> str:
    """Docker's own `${VAR}`, `${VAR:-word}`, `${VAR:+word}` and `$VAR` in instructions (not
    RUN or CMD, which the shell expands); unknown variables are left as they are."""

    def replace(match: re.Match) -> str:
        name = match["name"] or match["bare"]
        if name not in variables:
            return match.group(0)
        value = variables[name]
        if match["op"] == "-":
            return value or match["word"]
        if match["op"] == "+":
            return match["word"] if value else ""
        return value

    return DOCKER_VARIABLE.sub(replace, text)


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]]  # after FROM, substituted where Docker substitutes


def render(path: Path, build_args: dict[str, str]) -> list[Stage]:
    """The Dockerfile's stages as Docker sees them with these build arguments: global ARGs
    feed FROM, a stage's ARG brings the argument (or its default) into scope, ENV adds to it."""
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    scope: dict[str, str] = {}
    for keyword, rest in parse_dockerfile(path):
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            value = build_args.get(
                name, json.loads(default) if default.startswith('"') else default
            )
            (scope if stages else global_args)[name] = value
            continue
        if keyword == "FROM":
            image, _, alias = docker_substitute(rest, global_args).partition(" AS ")
            stages.append(Stage(alias.strip() or None, image.strip(), []))
            scope = {}
            continue
        if keyword not in ("RUN", "CMD", "HEALTHCHECK"):
            rest = docker_substitute(rest, scope)
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                scope[key] = value
        stages[-1].instructions.append((keyword, rest))
    return stages


def build_args(name: str) -> dict[str, str]:
    """The service's build arguments in compose, interpolated against the .env stand-in."""
    args = compose_service(name)["build"].get("args") or {}
    return {key: interpolate(str(value), DOTENV) for key, value in args.items()}


def image_stages(name: str) -> list[Stage]:
    return render(DOCKERFILE, build_args(name))


def instructions(name: str) -> list[tuple[str, str]]:
    """The instructions of the image the service runs: the Dockerfile's last stage."""
    return image_stages(name)[-1].instructions


def build_stage(name: str) -> Stage:
    (stage,) = [s for s in image_stages(name) if s.name == "build"]
    return stage


def instruction(name: str, keyword: str) -> list[str]:
    return [rest for kw, rest in instructions(name) if kw == keyword]


def image_env(name: str) -> dict[str, str]:
    env = {}
    for line in instruction(name, "ENV"):
        for item in shlex.split(line):
            assert "=" in item, f"{name}: use ENV KEY=value, not the legacy form: {line}"
            key, value = item.split("=", 1)
            env[key] = value
    return env


def exec_form(text: str) -> list[str]:
    """A JSON-array (exec form) command; Docker runs anything else through /bin/sh."""
    command = json.loads(text)
    assert isinstance(command, list)
    assert all(isinstance(part, str) for part in command)
    return command


def image_healthcheck(name: str) -> list[str]:
    (line,) = instruction(name, "HEALTHCHECK")
    options, separator, command = line.partition("CMD ")
    assert separator, f"{name}: HEALTHCHECK without CMD"
    assert all(option.startswith("--") for option in options.split())
    return exec_form(command)


def pip_install(name: str) -> list[str]:
    """The build stage's `pip install` arguments, the shell's expansions done with the
    service's build arguments (as the RUN's shell does)."""
    runs = [
        rest for kw, rest in build_stage(name).instructions if kw == "RUN" and "pip install" in rest
    ]
    assert len(runs) == 1, f"{name}: expected one pip install, got {runs}"
    command = runs[0].split("&&")[0]
    expanded = subprocess.run(
        ["sh", "-c", f"printf '%s\\n' {command.split('pip install', 1)[1]}"],
        env={"PATH": os.environ["PATH"], **build_args(name)},
        capture_output=True,
        text=True,
        check=True,
    )
    return expanded.stdout.splitlines()


def installed_extras(name: str) -> set[str]:
    targets = [t for t in pip_install(name) if t == "." or t.startswith(".[")]
    assert len(targets) == 1, f"{name}: pip install must install the project itself once"
    match = re.fullmatch(r"\.(?:\[([a-z0-9_,-]*)\])?", targets[0])
    assert match, targets[0]
    return set(filter(None, (match.group(1) or "").split(",")))


# --- compose parsing --------------------------------------------------------------------------

INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` against an .env."""

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        present = name in dotenv and (dotenv[name] != "" or op in ("-", "?"))
        if present:
            return dotenv[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name} is required: {arg}")
        return ""

    return INTERPOLATION.sub(substitute, value)


def compose_service(name: str) -> dict:
    assert name in COMPOSE["services"], f"{name} is not in docker-compose.yml"
    return COMPOSE["services"][name]


def compose_env(name: str) -> dict[str, str]:
    env = compose_service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    for key, value in env.items():
        # Compose rejects booleans (`true` unquoted) in environment maps.
        assert value is None or type(value) in (str, int, float), f"{name}: {key}={value!r}"
    return {key: "" if value is None else str(value) for key, value in env.items()}


def compose_healthcheck(name: str) -> list[str]:
    test = compose_service(name)["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", f"{name}: use the exec (CMD) form"
    return test[1:]


def container_env(name: str) -> dict[str, str]:
    """What the process in the container sees: the image's ENV, overridden by compose's."""
    compose = {key: interpolate(value, DOTENV) for key, value in compose_env(name).items()}
    return {**image_env(name), **compose}


# --- the tests ----------------------------------------------------------------------------------


def test_the_five_services_are_settings_classes_and_compose_services():
    assert set(EXPECTED) <= set(SERVICE_SETTINGS)
    built = {n for n, s in COMPOSE["services"].items() if "build" in s}
    assert built == set(SERVICES), "every service (and only they) is built from this repo"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_builds_each_service_from_the_shared_dockerfile_with_its_arguments(name):
    build = compose_service(name)["build"]
    assert build["context"] == "."
    assert (PROJECT_ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    args = build_args(name)
    assert args["SERVICE"] == name
    assert args["PORT"] == str(SERVICE_SETTINGS[name].default_port)
    # Built from the official slim image unless the .env names another base (the local one).
    assert image_stages(name)[-1].base == build_stage(name).base == DEFAULT_BASE
    assert render(DOCKERFILE, {})[-1].base == DEFAULT_BASE
    local = {**DOTENV, "BASE_IMAGE": "watchpost-base:0123", "WHEELHOUSE_IMAGE": "wheels:0123"}
    rendered = render(
        DOCKERFILE,
        {k: interpolate(str(v), local) for k, v in compose_service(name)["build"]["args"].items()},
    )
    assert [s.base for s in rendered] == [
        "wheels:0123",
        "watchpost-base:0123",
        "watchpost-base:0123",
    ]
    assert compose_service(name)["image"] == f"watchpost-{name}"


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_runs_the_cli_serving_that_service(name, capsys, tmp_path):
    (cmd,) = instruction(name, "CMD")
    command = exec_form(cmd)
    assert PYPROJECT["project"]["scripts"]["watchpost"] == "watchpost.cli:main"
    # Run the image's command with the image's environment and a `watchpost` that reports
    # its arguments: it must be `watchpost serve <this service>`, as PID 1 (exec).
    fake = tmp_path / "watchpost"
    fake.write_text('#!/bin/sh\necho "$$ $*"\n')
    fake.chmod(0o755)
    env = {**image_env(name), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    shell = subprocess.run(
        [*command[:-1], f"echo $$; {command[-1]}"] if command[0] == "sh" else command,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = shell.stdout.splitlines()
    shell_pid, (served_pid, *argv) = lines[0], lines[-1].split()
    assert argv == ["serve", name]
    if command[0] == "sh":
        assert served_pid == shell_pid, "the shell must exec the service, not wrap it"
    # The CLI itself accepts the name (argparse lists its choices in the help and exits).
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["serve", "--help"])
    assert exit_info.value.code == 0
    choices = re.search(r"\{([a-z,]+)\}", capsys.readouterr().out)
    assert choices and name in choices.group(1).split(",")


@pytest.mark.parametrize("name", SERVICES)
def test_every_environment_variable_is_a_real_setting(name):
    fields = SERVICE_SETTINGS[name].model_fields
    variables = [*compose_env(name), *image_env(name)]
    assert any(v.startswith("WATCHPOST_") for v in variables)
    for variable in variables:
        if variable.startswith("WATCHPOST_"):
            field = variable.removeprefix("WATCHPOST_").lower()
            assert field in fields, f"{name}: {variable} is not a {SERVICE_SETTINGS[name].__name__}"
        else:
            # PATH finds the venv; SERVICE names what the image runs (not a setting).
            assert variable.startswith(("PYTHON", "PIP_")) or variable in ("PATH", "SERVICE"), (
                f"{name}: stray variable {variable}"
            )


@pytest.mark.parametrize("name", SERVICES)
def test_the_settings_class_accepts_the_container_environment(name, monkeypatch):
    for key in list(os.environ):
        if key.startswith("WATCHPOST_"):
            monkeypatch.delenv(key)
    env = container_env(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cls = SERVICE_SETTINGS[name]
    settings = cls()
    assert settings.http_host == "0.0.0.0"
    assert settings.port == cls.default_port
    assert settings.log_json is True
    assert settings.redis_url == f"redis://:{DOTENV['REDIS_PASSWORD']}@redis:6379/0"
    for caller, callee in SERVICE_LINKS.items():  # a service token only where it is used
        token = getattr(settings, SERVICE_TOKEN_FIELDS[caller])
        if name in (caller, callee):
            assert (
                settings.service_token(caller)
                == DOTENV[f"WATCHPOST_{caller.upper()}_SERVICE_TOKEN"]
            )
        else:
            assert token is None, f"{name} holds {caller}'s service token"
    password = DOTENV["POSTGRES_PASSWORD"]
    assert settings.database_url == f"postgresql://watchpost:{password}@postgres:5432/watchpost"
    if "WATCHPOST_CONSUMER_NAME" in env:
        assert settings.consumer_name == name


SHARDED = ("recognition", "liveness", "aggregator")


def test_stream_consumers_have_names_of_their_own():
    """The dashboard's consumer name must survive a container re-create (the default is the
    hostname, a fresh container id), or what it had taken stays pending for ever. Replicas of
    the sharded services must not share one: each is its container's host name, and one that
    takes a shard over claims whatever the shard's last owner left pending, whatever its name."""
    consumers = {
        path.parent.name
        for path in (PROJECT_ROOT / "services").glob("*/*.py")
        if "stream_worker(" in path.read_text()
    }
    assert consumers >= {"recognition", "liveness", "aggregator", "dashboard"}
    for name in consumers:
        if name in SHARDED:
            assert "WATCHPOST_CONSUMER_NAME" not in compose_env(name), name
        else:
            assert compose_env(name).get("WATCHPOST_CONSUMER_NAME") == name


@pytest.mark.parametrize("name", SHARDED)
def test_the_sharded_services_scale_with_compose(name):
    """`RECOGNITION_REPLICAS=2` (and so on) in .env: no fixed container name or host port to
    collide, and a crashed replica comes back."""
    service = COMPOSE["services"][name]
    assert "container_name" not in service and "ports" not in service
    assert service.get("restart") in ("unless-stopped", "always", "on-failure")
    assert "WATCHPOST_CONSUMER_NAME" not in compose_env(name)
    assert service["build"]["args"]["SERVICE"] == name


@pytest.mark.parametrize("name", [*SHARDED, "capture"])
def test_replica_counts_are_the_compose_files_own(name):
    """The count is the service's `scale` (from .env, 1 by default), not only `up --scale`:
    that lasts until the next `up` that touches the service, and Debian's compose v1 then scales
    a dependency back to the file's count (`up -d dashboard` removed a recognition replica)."""
    variable = f"{name.upper()}_REPLICAS"
    scale = compose_service(name)["scale"]
    assert scale == f"${{{variable}:-1}}"
    assert interpolate(scale, {}) == "1" and interpolate(scale, {variable: "3"}) == "3"
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert re.search(rf"^# {variable}=1$", example, re.M), variable


@pytest.mark.parametrize("name", SERVICES)
def test_urls_between_containers_point_at_compose_services_and_their_ports(name):
    for key, value in container_env(name).items():
        parts = urlsplit(value)
        if not parts.scheme or not parts.hostname:
            continue
        assert parts.hostname in COMPOSE["services"], f"{name}: {key} points at {parts.hostname}"
        if parts.hostname in SERVICE_SETTINGS:
            assert parts.port == SERVICE_SETTINGS[parts.hostname].default_port, f"{name}: {key}"
    postgres = compose_service("postgres")["environment"]
    database = urlsplit(container_env(name)["WATCHPOST_DATABASE_URL"])
    assert database.username == postgres["POSTGRES_USER"]
    assert database.path == "/" + postgres["POSTGRES_DB"]


def healthcheck_url(command: list[str]) -> tuple[str, str]:
    """The URL a `python -c "...urlopen(url)..."` healthcheck opens, and the snippet."""
    assert command[:2] == ["python", "-c"], command
    snippet = command[2]
    urls = [
        node.value
        for node in ast.walk(ast.parse(snippet))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "://" in node.value
    ]
    assert len(urls) == 1, snippet
    return urls[0], snippet


class _Stub(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def run_healthcheck(command: list[str], status: int, env: dict[str, str] | None = None) -> int:
    """Run a healthcheck against a stub answering /healthz with `status` on a free port: the
    stub's port replaces the service's in a literal URL, or comes as WATCHPOST_HTTP_PORT (what
    the image's healthcheck reads)."""
    handler = type("Stub", (_Stub,), {"status": status})
    with http.server.HTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            snippet = re.sub(r"127\.0\.0\.1:\d+/", f"127.0.0.1:{port}/", command[2])
            done = subprocess.run(
                [sys.executable, "-c", snippet],
                env={**os.environ, **(env or {}), "WATCHPOST_HTTP_PORT": str(port)},
                capture_output=True,
                timeout=30,
            )
        finally:
            server.shutdown()
    return done.returncode


def test_healthz_is_an_ops_route_that_reports_a_crashed_loop():
    crashed = BackgroundLoop("boom", lambda stop: 1 / 0)
    crashed.start()
    crashed.stop()
    loops: list[BackgroundLoop] = []
    app = FastAPI()
    add_ops_routes(app, loops=lambda: loops, dependencies=dict)
    assert "/healthz" in {getattr(route, "path", None) for route in app.routes}
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        loops.append(crashed)
        assert client.get("/healthz").status_code == 503


@pytest.mark.parametrize("name", SERVICES)
def test_healthchecks_hit_healthz_on_the_service_port_and_fail_when_it_fails(name):
    port = SERVICE_SETTINGS[name].default_port
    compose_url, _ = healthcheck_url(compose_healthcheck(name))
    assert compose_url == f"http://127.0.0.1:{port}/healthz"
    # The shared image's healthcheck reads the port the service listens on from its env.
    image = image_healthcheck(name)
    assert image[:2] == ["python", "-c"] and "WATCHPOST_HTTP_PORT" in image[2]
    assert container_env(name)["WATCHPOST_HTTP_PORT"] == str(port)
    for command in (compose_healthcheck(name), image):
        assert "urllib" in command[2] and "/healthz" in command[2]
        assert run_healthcheck(command, 200) == 0
        assert run_healthcheck(command, 503) != 0


@pytest.mark.parametrize("name", SERVICES)
def test_images_bind_all_interfaces_and_run_as_a_non_root_user(name):
    assert image_env(name)["WATCHPOST_HTTP_HOST"] == "0.0.0.0"
    keywords = [kw for kw, _ in instructions(name)]
    users = instruction(name, "USER")
    assert users, f"{name} runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert len(keywords) - 1 - keywords[::-1].index("USER") < keywords.index("CMD")
    made = [r for kw, r in instructions(name) if kw == "RUN" and "useradd" in r]
    assert made and shlex.split(made[0])[-1] == users[-1], "the image makes its user"


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(--from stage or None for the build context, sources, destination) per COPY."""
    result = []
    for keyword, line in stage.instructions:
        if keyword == "COPY":
            *sources, destination = shlex.split(line)
            origin = None
            if sources[0].startswith("--from="):
                origin = sources.pop(0).removeprefix("--from=")
            assert not any(s.startswith("--") for s in sources), line
            result.append((origin, sources, destination))
    return result


@pytest.mark.parametrize("name", SERVICES)
def test_images_copy_only_what_the_install_needs_and_keep_no_wheelhouse(name):
    build = build_stage(name)
    from_context = {
        source.rstrip("/").removeprefix("./")
        for origin, sources, _ in copies(build)
        if origin is None
        for source in sources
    }
    assert from_context == IMAGE_SOURCES
    assert [(o, d) for o, _, d in copies(build) if o is not None] == [("wheelhouse", "/wheels")]
    assert image_stages(name)[0].name == "wheelhouse"
    # The image itself takes the installed venv from the build stage and nothing else: no
    # wheelhouse, no sources, nothing from the build context.
    assert copies(image_stages(name)[-1]) == [("build", ["/opt/watchpost"], "/opt/watchpost")]
    assert image_env(name)["PATH"].startswith("/opt/watchpost/bin:")
    assert PYPROJECT["project"]["readme"] == "README.md"
    ignored = [
        line.strip().rstrip("/")
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for source in from_context:
        for pattern in ignored:
            assert not fnmatch.fnmatch(source, pattern), f".dockerignore drops {source}"
            assert not source.startswith(pattern + "/"), f".dockerignore drops {source}"
    for must in (".git", ".venv", ".env", "tests", "test-artifacts", "**/__pycache__"):
        assert must in ignored


@pytest.mark.parametrize("name", SERVICES)
def test_images_install_from_the_wheelhouse_only_with_the_constraints_and_their_extras(name):
    args = pip_install(name)
    assert "--no-index" in args  # nothing from the network
    assert args[args.index("--find-links") + 1] == "/wheels"
    assert args[args.index("-c") + 1] == "deploy/constraints.txt"
    keywords = [(kw, rest) for kw, rest in build_stage(name).instructions if kw in ("COPY", "RUN")]
    copy_at = next(i for i, (kw, r) in enumerate(keywords) if "deploy/constraints.txt" in r)
    install_at = next(i for i, (kw, r) in enumerate(keywords) if "pip install" in r)
    assert copy_at < install_at
    extras = installed_extras(name)
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])
    assert ("vision" in extras) == (name not in LIGHT)
    assert not extras & {"dev", "embedded", "training"}  # no image runs TensorFlow
    constraints = (PROJECT_ROOT / "deploy/constraints.txt").read_text()
    assert re.search(r"^dlib==0\.0\.0$", constraints, re.M)
    # The wheelhouse holds what these installs need, and no more extras than the images use.
    from deploy.images import IMAGE_EXTRAS, image_requirements

    assert set(IMAGE_EXTRAS) == {e for n in SERVICES for e in installed_extras(n)}
    assert set(PYPROJECT["build-system"]["requires"]) <= set(image_requirements())


def distribution(requirement: str) -> str:
    return present(re.match(r"[A-Za-z0-9_.-]+", requirement)).group(0).lower().replace("_", "-")


def test_the_core_install_has_no_heavy_dependencies():
    core = {distribution(r) for r in PYPROJECT["project"]["dependencies"]}
    assert core
    assert not core & HEAVY_DISTRIBUTIONS
    vision = {distribution(r) for r in PYPROJECT["project"]["optional-dependencies"]["vision"]}
    assert {"dlib-bin", "face-recognition-models", "opencv-python-headless"} <= vision
    assert not vision & {"dlib", "face-recognition", "opencv-python"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute module names `path` imports anywhere (also inside functions); for
    `from a import b` both `a` and `a.b` (b may be a submodule)."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def module_file(module: str) -> Path | None:
    base = PROJECT_ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reached_modules(service: str) -> set[str]:
    """Every module the service's files import, following the project's own transitively."""
    seen: set[Path] = set()
    todo = list((PROJECT_ROOT / "services" / service).rglob("*.py"))
    reached = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imports_of(path):
            reached.add(module)
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
                local = module_file(".".join(parts[:i]))
                if local is not None:
                    todo.append(local)
    return reached


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY_MODULES)}


def test_the_import_scan_finds_heavy_imports_where_they_are():
    assert {"dlib", "cv2"} <= {m.split(".")[0] for m in heavy(reached_modules("capture"))}
    assert "watchpost.vision" in heavy(reached_modules("recognition"))


@pytest.mark.parametrize("name", LIGHT)
def test_light_services_never_import_heavy_libraries(name):
    assert not heavy(reached_modules(name)), f"{name} reaches {heavy(reached_modules(name))}"


def test_light_services_load_without_heavy_modules():
    """Import the light services' apps in a fresh interpreter (nothing is started)."""
    code = (
        "import json, sys\n"
        + "".join(f"import services.{name}.main\n" for name in LIGHT)
        + "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {f"services.{name}.main" for name in LIGHT} <= loaded
    assert not heavy(loaded)


def test_no_secret_is_baked_into_compose_or_images():
    password = compose_service("postgres")["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", password)
    for name, service in COMPOSE["services"].items():
        env = service.get("environment") or {}
        env = dict(i.split("=", 1) for i in env) if isinstance(env, list) else env
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", str(value)), f"{name}: {key}"
            secret = urlsplit(str(value)).password if "://" in str(value) else None
            if secret is not None:
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+", secret), f"{name}: {key}"
    for name in SERVICES:
        assert not [k for k in image_env(name) if SECRET_NAME.search(k)], name
    # Without the operator's .env, compose must refuse rather than fall back to a default.
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(password, {})
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(compose_env("dashboard")["WATCHPOST_DATABASE_URL"], {})
    for name, variable in [
        ("WATCHPOST_REDIS_URL", "REDIS_PASSWORD"),
        ("WATCHPOST_DASHBOARD_SERVICE_TOKEN", "WATCHPOST_DASHBOARD_SERVICE_TOKEN"),
    ]:
        with pytest.raises(KeyError, match=variable):
            interpolate(compose_env("dashboard")[name], {})
    # Redis itself asks for the password (its command line is interpolated the same way).
    command = compose_service("redis")["command"]
    assert (
        interpolate(command[command.index("--requirepass") + 1], DOTENV) == DOTENV["REDIS_PASSWORD"]
    )
    example = (PROJECT_ROOT / ".env.example").read_text()
    for variable in SECRET_NAMES:
        assert re.search(rf"^{variable}=$", example, re.M), variable
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


@pytest.mark.parametrize("name", SERVICES)
def test_services_start_after_healthy_dependencies(name):
    depends = compose_service(name)["depends_on"]
    assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
    needed = {"redis", "postgres"} | (
        {"recognition"} if name in ("dashboard", "capture") else set()
    )
    for other in needed:
        assert depends[other]["condition"] == "service_healthy", f"{name} -> {other}"
    for other, rule in depends.items():
        if rule["condition"] == "service_healthy":
            target = compose_service(other)
            assert target.get("healthcheck", {}).get("test") or (
                other in SERVICE_SETTINGS and instruction(other, "HEALTHCHECK")
            ), f"{other} has no healthcheck, so {name} would never start"
    assert compose_service(name)["restart"] == "unless-stopped"


def test_stores_persist_and_report_health():
    redis = compose_service("redis")
    assert redis["image"].startswith("redis:7")
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    postgres = compose_service("postgres")
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named = set(COMPOSE["volumes"])
    for store, mount in (("redis", "/data"), ("postgres", "/var/lib/postgresql/data")):
        volumes = compose_service(store)["volumes"]
        assert any(v.split(":")[0] in named and v.split(":")[1] == mount for v in volumes)


def test_dashboard_is_published_on_loopback_by_default_and_capture_reads_the_data_read_only():
    port = SERVICE_SETTINGS["dashboard"].default_port
    (mapping,) = compose_service("dashboard")["ports"]
    assert interpolate(mapping, {}) == f"127.0.0.1:{port}:{port}"
    assert interpolate(mapping, {"DASHBOARD_PUBLISH": "0.0.0.0:80"}) == f"0.0.0.0:80:{port}"
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert re.search(r"^# DASHBOARD_PUBLISH=127\.0\.0\.1:8000$", example, re.M)
    published = [n for n in SERVICES if n != "dashboard" and compose_service(n).get("ports")]
    assert not published
    (mount,) = compose_service("capture")["volumes"]
    host, container, mode = mount.rsplit(":", 2)
    assert interpolate(host, {}) == "../shared/data"
    assert (container, mode) == ("/data", "ro")
    env = container_env("capture")
    assert env["WATCHPOST_DATA_DIR"] == container
    assert env["WATCHPOST_CAPTURE_SOURCE"].startswith(container + "/")
    assert env["WATCHPOST_CAPTURE_SOURCE"].endswith("/video/talking_blinks_720p.mp4")


def caddyfile() -> str:
    return (PROJECT_ROOT / "deploy/proxy/Caddyfile").read_text()


def test_the_tls_profile_proxies_the_dashboard_and_turns_secure_cookies_on(monkeypatch):
    tls = TLS_COMPOSE["services"]
    # Secure cookies behind the proxy: a real setting, and the settings class reads it as on.
    secure = {k: interpolate(v, {}) for k, v in tls["dashboard"]["environment"].items()}
    assert set(secure) == {"WATCHPOST_DASHBOARD_SECURE_COOKIES", "WATCHPOST_HTTP_TRUSTED_PROXIES"}
    for key in list(os.environ):
        if key.startswith("WATCHPOST_"):
            monkeypatch.delenv(key)
    for key, value in {**container_env("dashboard"), **secure}.items():
        monkeypatch.setenv(key, value)
    assert DashboardSettings().dashboard_secure_cookies is True
    proxy = tls["https"]
    # The dashboard believes X-Forwarded-For from the proxy's own fixed address, and only from it,
    # an address inside the network's subnet (finding 8 behind the proxy) and outside the range
    # the other containers get theirs from (with replicas, the ninth took it first).
    address = ipaddress.ip_address(interpolate(proxy["networks"]["default"]["ipv4_address"], {}))
    assert DashboardSettings().http_trusted_proxies == [str(address)]
    (subnet,) = TLS_COMPOSE["networks"]["default"]["ipam"]["config"]
    network = ipaddress.IPv4Network(interpolate(subnet["subnet"], {}))
    others = ipaddress.IPv4Network(interpolate(subnet["ip_range"], {}))
    assert address in network and others.subnet_of(network) and address not in others
    assert others.num_addresses >= 64  # room for many replicas
    assert proxy["build"]["context"] == "deploy/proxy"
    assert (
        proxy["build"]["args"]["BASE_IMAGE"]
        == compose_service("dashboard")["build"]["args"]["BASE_IMAGE"]
    )  # the same base as the services
    (stage,) = render(PROJECT_ROOT / "deploy/proxy/Dockerfile", {})
    assert stage.base == DEFAULT_BASE
    assert any("apt-get install" in r and "caddy" in r for kw, r in stage.instructions)
    assert [r for kw, r in stage.instructions if kw == "USER"][-1] == "caddy"
    # Caddy listens where compose publishes, and proxies to the dashboard's port.
    (mapping,) = proxy["ports"]
    assert interpolate(mapping, {}).endswith(":8443")
    assert re.search(r"^\s*https_port 8443$", caddyfile(), re.M)
    port = SERVICE_SETTINGS["dashboard"].default_port
    assert re.search(rf"^\s*reverse_proxy dashboard:{port}$", caddyfile(), re.M)
    assert re.search(r"^\s*tls \{\$HTTPS_TLS:internal\}$", caddyfile(), re.M)
    assert re.search(r"^\s*admin off$", caddyfile(), re.M)
    assert proxy["depends_on"]["dashboard"]["condition"] == "service_healthy"
    assert proxy["restart"] == "unless-stopped"


def test_the_debian_stores_keep_the_official_images_contract():
    """The override swaps only the images; compose's command, environment, volumes and
    healthchecks apply to the stand-ins as they are."""
    for name in ("redis", "postgres"):
        override = STORES_COMPOSE["services"][name]
        assert set(override) == {"image", "build"}
        assert override["build"]["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim}"
        stage = render(
            PROJECT_ROOT / override["build"]["context"] / override["build"]["dockerfile"], {}
        )[-1]
        assert stage.base == DEFAULT_BASE
        users = [r for kw, r in stage.instructions if kw == "USER"]
        assert users and users[-1] not in ("root", "0")
        for volume in compose_service(name)["volumes"]:
            mount = volume.split(":")[1]
            assert any(mount in r for kw, r in stage.instructions if kw == "RUN"), (
                f"{name}: the image must make {mount} for its non-root user"
            )
    entrypoint = (PROJECT_ROOT / "deploy/stores/postgres-entrypoint.sh").read_text()
    for variable in compose_service("postgres")["environment"]:
        assert variable in entrypoint


def test_the_base_and_the_wheelhouse_are_cached_by_what_went_into_them(monkeypatch, tmp_path):
    from deploy import images

    base = images.base_tag()
    assert base == images.base_tag() and base.startswith("watchpost-base:")
    monkeypatch.setattr(images, "BASE_PACKAGES", (*images.BASE_PACKAGES, "curl"))
    assert images.base_tag() != base
    monkeypatch.setattr(images, "MIRROR", "http://mirror.invalid/debian")
    assert images.base_tag() != base

    ids = {"base:1": "sha256:aaa", "base:2": "sha256:bbb"}
    monkeypatch.setattr(images, "image_id", ids.get)
    wheelhouse = images.wheelhouse_tag("base:1")
    assert wheelhouse == images.wheelhouse_tag("base:1")
    assert images.wheelhouse_tag("base:2") != wheelhouse  # another interpreter, other wheels
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(images.CONSTRAINTS.read_text() + "numpy<2\n")
    monkeypatch.setattr(images, "CONSTRAINTS", constraints)
    assert images.wheelhouse_tag("base:1") != wheelhouse
    with pytest.raises(RuntimeError, match="no image"):
        images.wheelhouse_tag("base:missing")


def test_the_compose_test_skips_without_docker_and_fails_under_ci(monkeypatch):
    from deploy import images
    from tests.e2e.test_compose import engine_or_skip

    monkeypatch.setattr(images, "engine_answers", lambda: False)
    monkeypatch.setattr(images, "is_root", lambda: False)
    with pytest.raises(images.DockerUnavailable, match="only root"):
        images.ensure_engine()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Docker cannot run here"):
        engine_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Docker cannot run here"):
        engine_or_skip()
