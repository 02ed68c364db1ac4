"""What the service images are built from, made on this host (docs/deploy.md).

- The base image: Debian bookworm from the Debian mirror (debootstrap), with Debian's Python 3.11,
  imported into the local Docker engine. For a machine that cannot pull `python:3.11-slim`.
- The wheelhouse image: every Python package the images install, as wheels (and the build
  backend, setuptools), resolved by the base image's own interpreter, so environment markers and
  platform tags are the image's, not the host's (Debian's 3.11.2 needs `async-timeout` for redis,
  a later 3.11 does not). pip runs in a throw-away container of the base image with this host's
  network and CA bundle (a container does not trust a TLS-intercepting proxy's certificate);
  the service builds then install with `--no-index` and need no network at all.

Both are tagged by a hash of what went into them, so a second run on the same machine reuses
them, and a change of recipe, requirements or base makes a new one.

    python3 deploy/images.py engine                  # install and start Docker if needed (root)
    python3 deploy/images.py base                    # prints the base image's tag
    python3 deploy/images.py wheelhouse [--base IMAGE]
    python3 deploy/images.py all >> .env             # both, as BASE_IMAGE=... WHEELHOUSE_IMAGE=...

Only the standard library: this runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
NO_DEPS = ROOT / "deploy" / "no-deps.txt"  # wheels taken without their dependencies

SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
# python3-venv: the build stage's `python3 -m venv` (with pip); netbase: /etc/services etc.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "netbase")
# The extras the images install between them (deploy/Dockerfile's EXTRAS); not dev or embedded.
IMAGE_EXTRAS = ("vision", "mqtt")
BASE_REPOSITORY = "watchpost-base"
WHEELHOUSE_REPOSITORY = "watchpost-wheelhouse"
DOCKERD_LOG = Path("/var/log/watchpost-dockerd.log")
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


class DockerUnavailable(RuntimeError):
    """No Docker engine answers, and this process cannot install or start one."""


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def run(
    command: Sequence[str], *, capture: bool = False, timeout: float = 1800, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output (the last 4000 characters)."""
    done = subprocess.run(
        list(command), text=True, capture_output=capture, timeout=timeout, check=False, **kwargs
    )
    if done.returncode != 0:
        output = ((done.stdout or "") + (done.stderr or ""))[-4000:]
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}\n{output}")
    return done


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(*packages: str) -> None:
    log(f"apt-get install {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], capture=True, env=env)
    run(["apt-get", "install", "-y", "-qq", *packages], capture=True, env=env)


# -- the engine ---------------------------------------------------------------------------------


def engine_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=30, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_engine(timeout: float = 90) -> None:
    """A Docker engine that answers: the running one, else (as root) Debian's docker.io
    installed if missing and `dockerd` started in the background (it outlives this process)."""
    if engine_answers():
        return
    if not is_root():
        raise DockerUnavailable("no Docker engine answers `docker info`, and only root starts one")
    if shutil.which("dockerd") is None:
        apt_install("docker.io", "docker-compose")
    log(f"starting dockerd (log: {DOCKERD_LOG})")
    with DOCKERD_LOG.open("ab") as output:
        subprocess.Popen(
            ["dockerd"], stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while not engine_answers():
        if time.monotonic() > deadline:
            tail = DOCKERD_LOG.read_text(errors="replace")[-2000:]
            raise DockerUnavailable(f"dockerd did not answer within {timeout:.0f} s:\n{tail}")
        time.sleep(1)


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin exists, else Debian's `docker-compose` (v1)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is None:
        if not is_root():
            raise DockerUnavailable("neither `docker compose` nor `docker-compose` is installed")
        apt_install("docker-compose")
    return ["docker-compose"]


def image_id(tag: str) -> str | None:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# -- the base image -----------------------------------------------------------------------------


def base_tag() -> str:
    """The tag names the recipe: the suite, mirrors, packages and the code below."""
    recipe = json.dumps([SUITE, MIRROR, SECURITY_MIRROR, BASE_PACKAGES])
    source = "".join(inspect.getsource(f) for f in (build_rootfs, slim_rootfs, import_directory))
    return f"{BASE_REPOSITORY}:{content_hash(recipe, source)}"


def base_image(rebuild: bool = False) -> str:
    """The local Debian base image's tag, built if this machine does not have it yet."""
    tag = base_tag()
    if image_id(tag) and not rebuild:
        log(f"base image {tag}: cached")
        return tag
    if not is_root():
        raise DockerUnavailable("building the base image needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="watchpost-base-", dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        build_rootfs(rootfs)
        slim_rootfs(rootfs)
        log(f"importing {tag}")
        import_directory(rootfs, ".", tag, "ENV LANG=C.UTF-8", 'CMD ["python3"]')
    run(["docker", "tag", tag, f"{BASE_REPOSITORY}:{SUITE}"], capture=True)
    log(f"base image {tag}: built in {time.monotonic() - started:.0f} s")
    return tag


def import_directory(parent: Path, name: str, tag: str, *changes: str) -> None:
    """`docker import` a directory as a one-layer image (no build context to send twice)."""
    tar = subprocess.Popen(["tar", "-C", str(parent), "-c", name], stdout=subprocess.PIPE)
    options = [option for change in changes for option in ("--change", change)]
    run(["docker", "import", *options, "-", tag], stdin=tar.stdout, capture=True)
    if tar.wait() != 0:
        raise RuntimeError(f"tar of {parent / name} failed")


def build_rootfs(rootfs: Path) -> None:
    """debootstrap a minimal Debian with Python, then bring it up to date with the security and
    updates suites (debootstrap installs the point release only)."""
    log(f"debootstrap {SUITE} from {MIRROR} (a few minutes)")
    # dpkg without an fsync per file, as Debian's own container images do: a crash mid-build
    # leaves a rootfs nobody uses, and the speed-up is large on a busy disk.
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/watchpost-unsafe-io").write_text("force-unsafe-io\n")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(rootfs),
            MIRROR,
        ],
        capture=True,
    )
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    )
    # Images built on this base install Debian packages without docs, manuals or translations
    # and without recommended packages, as the official slim images do.
    (rootfs / "etc/dpkg/dpkg.cfg.d/watchpost-slim").write_text(
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n"
    )
    (rootfs / "etc/apt/apt.conf.d/watchpost-no-recommends").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
    )
    # No package caches left in a layer: apt's binary caches (tens of MB after an update) and
    # downloaded packages go as soon as apt is done, as in the official images.
    clean = (
        '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true";'
    )
    (rootfs / "etc/apt/apt.conf.d/watchpost-clean").write_text(
        f"DPkg::Post-Invoke {{ {clean} }};\nAPT::Update::Post-Invoke {{ {clean} }};\n"
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    )
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
    log("apt-get upgrade from the security and updates suites")
    run(["chroot", str(rootfs), "apt-get", "update", "-qq"], capture=True, env=env)
    run(["chroot", str(rootfs), "apt-get", "upgrade", "-y", "-qq"], capture=True, env=env)


def slim_rootfs(rootfs: Path) -> None:
    """Drop what a container never reads: package caches and lists (derived images run
    `apt-get update` themselves), documentation, manuals, translations, logs."""
    run(["chroot", str(rootfs), "apt-get", "clean"], capture=True)
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/debconf/*-old",
        "var/log/*.log",
        "var/log/apt/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/doc/*/*",
    ):
        for path in rootfs.glob(pattern):
            if path.name == "copyright" and path.parent.parent.name == "doc":
                continue  # the licences stay
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    (rootfs / "etc/resolv.conf").write_text("")  # the engine mounts its own at run time


# -- the wheelhouse image ---------------------------------------------------------------------


def image_requirements() -> list[str]:
    """What the images install, from pyproject.toml: the build backend, the core and the
    image extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    return [
        *project["build-system"]["requires"],
        *project["project"]["dependencies"],
        *(requirement for extra in IMAGE_EXTRAS for requirement in extras[extra]),
    ]


def host_ca_bundle() -> str | None:
    named = (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"))
    for candidate in (*named, *HOST_CA_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def wheelhouse_tag(base: str) -> str:
    base_id = image_id(base)
    if base_id is None:
        raise RuntimeError(f"no image {base}: build or pull it first")
    return f"{WHEELHOUSE_REPOSITORY}:" + content_hash(
        base_id,
        "\n".join(image_requirements()),
        CONSTRAINTS.read_text(),
        NO_DEPS.read_text(),
        inspect.getsource(build_wheels),
    )


def wheelhouse_image(base: str, rebuild: bool = False) -> str:
    """The wheelhouse image for `base` (one layer: /wheels/*.whl, nothing else), built
    if this machine does not have it yet."""
    if image_id(base) is None:
        log(f"pulling {base}")
        run(["docker", "pull", base], capture=True)
    tag = wheelhouse_tag(base)
    if image_id(tag) and not rebuild:
        log(f"wheelhouse image {tag}: cached")
        return tag
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="watchpost-wheels-", dir="/var/tmp") as work:
        wheels = Path(work) / "wheels"
        build_wheels(base, Path(work), wheels)
        log(f"importing {tag}")
        import_directory(Path(work), "wheels", tag)
    run(["docker", "tag", tag, f"{WHEELHOUSE_REPOSITORY}:latest"], capture=True)
    log(f"wheelhouse image {tag}: built in {time.monotonic() - started:.0f} s")
    return tag


def build_wheels(base: str, work: Path, wheels: Path) -> None:
    """`pip wheel` everything into `wheels`, run by the base image's Python, as this user."""
    wheels.mkdir()
    (work / "requirements.txt").write_text("\n".join(image_requirements()) + "\n")
    shutil.copy(CONSTRAINTS, work / "constraints.txt")
    shutil.copy(NO_DEPS, work / "no-deps.txt")
    command = [
        "docker",
        "run",
        "--rm",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--env",
        "HOME=/tmp",
        "--env",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
        "--volume",
        f"{work}:/work",
    ]
    bundle = host_ca_bundle()
    if bundle:
        command += ["--volume", f"{bundle}:/etc/watchpost-host-ca.crt:ro"]
        command += ["--env", "PIP_CERT=/etc/watchpost-host-ca.crt"]
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "PIP_INDEX_URL"):
        for variable in (name, name.lower()):
            if os.environ.get(variable):
                command += ["--env", variable]
    # Debian's bundled pip (23.0) cannot build face-recognition-models' sdist: upgrade it first.
    script = (
        "python3 -m venv /tmp/pip && /tmp/pip/bin/pip install --quiet --upgrade pip && "
        "/tmp/pip/bin/pip wheel --quiet --wheel-dir /work/wheels "
        "-r /work/requirements.txt -c /work/constraints.txt && "
        "/tmp/pip/bin/pip wheel --quiet --no-deps --wheel-dir /work/wheels -r /work/no-deps.txt"
    )
    log(f"pip wheel in {base} ({len(image_requirements())} requirements; about a minute)")
    run([*command, base, "sh", "-c", script], capture=True)
    log(f"{len(list(wheels.glob('*.whl')))} wheels")


# -- the command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["engine", "base", "wheelhouse", "all"])
    parser.add_argument(
        "--base", help="build the wheelhouse for this image (default: the local Debian base)"
    )
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached images")
    args = parser.parse_args(argv)
    try:
        ensure_engine()
        if args.what == "engine":
            return 0
        if args.what == "base":
            print(base_image(args.rebuild))
            return 0
        base = args.base or base_image(args.rebuild and args.what == "all")
        wheelhouse = wheelhouse_image(base, args.rebuild)
        if args.what == "wheelhouse":
            print(wheelhouse)
        else:
            print(f"BASE_IMAGE={base}\nWHEELHOUSE_IMAGE={wheelhouse}")
    except (DockerUnavailable, RuntimeError) as exc:
        print(f"deploy/images.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
