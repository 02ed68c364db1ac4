"""What can be checked of the Docker deployment without a Docker engine (none runs here)."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI

from watchpost.service import add_ops_routes
from watchpost.settings import PROJECT_ROOT, SERVICE_SETTINGS

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = sorted(SERVICE_SETTINGS)
LIGHT = ["aggregator", "dashboard"]  # must not carry dlib, OpenCV or TensorFlow
HEAVY_MODULES = {
    "dlib",
    "cv2",
    "tensorflow",
    "keras",
    "face_recognition_models",
    "watchpost.vision",
}


def dockerfile(name: str) -> str:
    return (PROJECT_ROOT / "services" / name / "Dockerfile").read_text()


def instruction(text: str, keyword: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line[len(keyword) + 1 :].strip()
        for line in joined.splitlines()
        if line.startswith(keyword + " ")
    ]


def test_every_service_is_in_compose_with_its_own_dockerfile():
    assert set(SERVICES) <= set(COMPOSE["services"])
    for name in SERVICES:
        build = COMPOSE["services"][name]["build"]
        assert build["context"] == "."
        assert (
            PROJECT_ROOT / build["dockerfile"]
        ).resolve() == PROJECT_ROOT / "services" / name / "Dockerfile"


@pytest.mark.parametrize("name", SERVICES)
def test_each_container_runs_a_real_entry_point(name):
    (cmd,) = instruction(dockerfile(name), "CMD")
    assert ast.literal_eval(cmd) == ["watchpost", "serve", name]
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["watchpost"] == "watchpost.cli:main"


@pytest.mark.parametrize("name", SERVICES)
def test_every_environment_variable_is_a_real_setting(name):
    fields = SERVICE_SETTINGS[name].model_fields
    env = COMPOSE["services"][name]["environment"]
    env_in_image = [
        e.split("=")[0] for line in instruction(dockerfile(name), "ENV") for e in shlex.split(line)
    ]
    for variable in [*env, *env_in_image]:
        if not variable.startswith("WATCHPOST_"):
            continue
        assert variable.removeprefix("WATCHPOST_").lower() in fields, (
            f"{name}: {variable} is no setting"
        )


@pytest.mark.parametrize("name", SERVICES)
def test_healthchecks_hit_the_real_healthz_on_the_service_port(name):
    app = FastAPI()
    add_ops_routes(app, loops=list, dependencies=dict)
    assert "/healthz" in {route.path for route in app.routes}
    port = SERVICE_SETTINGS[name].default_port
    url = f"http://127.0.0.1:{port}/healthz"
    assert url in " ".join(COMPOSE["services"][name]["healthcheck"]["test"])
    assert url in " ".join(instruction(dockerfile(name), "HEALTHCHECK"))
    assert f"WATCHPOST_HTTP_PORT={port}" in " ".join(instruction(dockerfile(name), "ENV"))


@pytest.mark.parametrize("name", SERVICES)
def test_images_install_with_the_constraints_and_only_what_they_need(name):
    (install,) = [r for r in instruction(dockerfile(name), "RUN") if "pip install" in r]
    assert "-c deploy/constraints.txt" in install
    extras = re.search(r'"\.(?:\[([a-z,]+)\])?"', install)
    installed = set((extras.group(1) or "").split(",")) - {""}
    assert ("vision" in installed) == (name not in LIGHT)
    assert ("liveness" in installed) == (name == "liveness")  # only it needs TensorFlow
    assert "dlib==0.0.0" in (PROJECT_ROOT / "deploy/constraints.txt").read_text()


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def module_file(module: str) -> Path | None:
    base = PROJECT_ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@pytest.mark.parametrize("name", LIGHT)
def test_light_services_never_import_heavy_libraries(name):
    """Follows the project's own imports transitively from the service's package."""
    seen: set[Path] = set()
    todo = list((PROJECT_ROOT / "services" / name).rglob("*.py"))
    reached = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imports_of(path):
            reached.add(module)
            local = module_file(module)
            if local is not None:
                todo.append(local)
    heavy = {m for m in reached if any(m == h or m.startswith(h + ".") for h in HEAVY_MODULES)}
    assert not heavy, f"{name} reaches {heavy}"


def test_no_secret_is_baked_into_compose():
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    password = COMPOSE["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", password)
    assert re.search(r"postgresql://watchpost:\$\{POSTGRES_PASSWORD:\?", text)
    assert "POSTGRES_PASSWORD=\n" in (PROJECT_ROOT / ".env.example").read_text()


@pytest.mark.parametrize("name", SERVICES)
def test_services_start_after_healthy_stores(name):
    depends = COMPOSE["services"][name]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"
    for store in ("redis", "postgres"):
        assert COMPOSE["services"][store]["healthcheck"]["test"]
