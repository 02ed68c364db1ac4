"""`watchpost`: run the whole stack locally (`up`), one service (`serve`), migrations, API keys
(`keys`), deployment secrets (`secrets`), bulk enrolment (`enroll`) and threshold calibration
(`calibrate`)."""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from watchpost.db.pool import Conn, Row
    from watchpost.embedded import EmbeddedPostgres, EmbeddedRedis

from watchpost.settings import (
    PROJECT_ROOT,
    SERVICE_LINKS,
    SERVICE_SETTINGS,
    SERVICE_TOKEN_FIELDS,
    CommonSettings,
)

# Start order: the services others call first.
SERVICES = ["recognition", "liveness", "aggregator", "dashboard", "capture"]
# Services whose replicas share the stream shards (watchpost/shards.py).
SHARDED_SERVICES = ["recognition", "liveness", "aggregator"]


def serve(name: str) -> None:
    import uvicorn

    from watchpost.service import configure_logging, uvicorn_options

    settings = SERVICE_SETTINGS[name]()
    configure_logging(settings)
    module = importlib.import_module(f"services.{name}.main")
    app = module.create_app(settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=20,
        **uvicorn_options(settings),
    )


def migrate() -> None:
    from watchpost.db import apply_migrations

    applied = apply_migrations(CommonSettings().require_database_url())
    print(f"applied migrations: {applied or 'none (up to date)'}")


class Stack:
    """The five services as child processes, on given or embedded Redis/Postgres."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.embedded: list[EmbeddedRedis | EmbeddedPostgres] = []
        self.database_url: str | None = None

    def start(self) -> str:
        from watchpost.embedded import EmbeddedPostgres, EmbeddedRedis

        settings = CommonSettings()
        home = Path(self.args.home).resolve()
        redis_url, database_url = settings.redis_url, settings.database_url
        if not redis_url:
            redis_server = EmbeddedRedis(home / "redis")
            self.embedded.append(redis_server)
            redis_url = redis_server.start()
            print(f"embedded Redis: {redis_url}")
        if not database_url:
            server = EmbeddedPostgres(home / "postgres")
            self.embedded.append(server)
            database_url = server.start()
            print(f"embedded PostgreSQL: {database_url}")
        env = dict(os.environ, WATCHPOST_REDIS_URL=redis_url, WATCHPOST_DATABASE_URL=database_url)
        ports = {name: port for name, (_, port) in self.layout().items()}
        env["WATCHPOST_DASHBOARD_RECOGNITION_URL"] = f"http://127.0.0.1:{ports['recognition']}"
        env["WATCHPOST_RECOGNITION_LIVENESS_URL"] = f"http://127.0.0.1:{ports['liveness']}"
        if self.args.camera:
            env["WATCHPOST_CAPTURE_SOURCE"] = self.args.camera
        from watchpost.db import apply_migrations

        apply_migrations(database_url)  # once, before five services race for the lock
        self.database_url = database_url
        first_admin_key(database_url)
        tokens = service_tokens_for_run()
        from watchpost.progress import bar

        children = self.processes(env, tokens)
        # Loading the models takes a while (liveness's TensorFlow most): show which one waits.
        with bar(transient=True, disable=not sys.stdout.isatty()) as progress:
            task = progress.add_task("services", total=len(children))
            for name, service, port, child_env in children:
                progress.update(task, description=f"starting {name}")
                self._spawn(name, service, port, child_env)
                progress.advance(task)
        return f"http://127.0.0.1:{ports['dashboard']}/"

    def layout(self) -> dict[str, tuple[str, int]]:
        """(service, HTTP port) of every child process by name, in start order."""
        # More capture nodes share the cameras (services/capture/leases.py); more replicas of
        # recognition, liveness and the aggregator share the stream shards (watchpost/shards.py).
        # Replica n > 1 of a service is named `<service>-<n>` and serves /readyz, /metrics (and
        # capture's /status) on its default port + 10 * (n - 1); the dashboard and kiosks call
        # the first one's API.
        children: dict[str, tuple[str, int]] = {}
        for service in SERVICES:
            first = SERVICE_SETTINGS[service].default_port + self.args.port_offset
            for n in range(1, self.replicas(service) + 1):
                children[service if n == 1 else f"{service}-{n}"] = (service, first + 10 * (n - 1))
        return children

    def urls(self, service: str) -> dict[str, str]:
        """The base URL of every process of `service` by name (the first one first)."""
        return {
            name: f"http://127.0.0.1:{port}"
            for name, (of, port) in self.layout().items()
            if of == service
        }

    def processes(
        self, env: dict[str, str], tokens: dict[str, dict[str, str]]
    ) -> list[tuple[str, str, int, dict[str, str]]]:
        """(name, service, port, environment) of every child process, in start order; each has
        a name of its own (its consumer name in the streams' groups and in the leases)."""
        node = env.get("WATCHPOST_CONSUMER_NAME") or socket.gethostname()
        return [
            (
                name,
                service,
                port,
                dict(
                    env,
                    WATCHPOST_HTTP_PORT=str(port),
                    WATCHPOST_CONSUMER_NAME=f"{node}-{name}",
                    **tokens[service],
                ),
            )
            for name, (service, port) in self.layout().items()
        ]

    def replicas(self, service: str) -> int:
        """How many processes of `service` this run starts."""
        if service == "capture":
            return int(self.args.capture_processes)
        if service in SHARDED_SERVICES:
            chosen = getattr(self.args, f"{service}_replicas", None)
            return int(chosen if chosen is not None else getattr(self.args, "replicas", 1))
        return 1

    def _spawn(self, name: str, service: str, port: int, env: dict[str, str]) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "watchpost.cli", "serve", service], env=env, cwd=PROJECT_ROOT
        )
        self._wait_ready(name, port)

    def make_key(self, role: str, name: str) -> str:
        """An API key in the running stack's database (for benchmarks and tests)."""
        from watchpost.auth import create_key
        from watchpost.db import open_pool

        if self.database_url is None:
            raise RuntimeError("the stack is not started")
        with open_pool(self.database_url, min_size=1, max_size=1) as pool, pool.connection() as c:
            return create_key(c, name=name, role=role)[0]

    def _wait_ready(self, name: str, port: int, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.children[name].poll() is not None:
                raise RuntimeError(f"{name} exited with code {self.children[name].returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    print(
                        f"  {name:<12} ready on :{port} (pid {self.children[name].pid})", flush=True
                    )
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} was not ready after {timeout:.0f}s")

    def watch(self) -> int:
        """Block until Ctrl-C / SIGTERM or until a service dies; 0 for the former."""
        while True:
            for name, child in self.children.items():
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in 30s; killing it", file=sys.stderr)
                child.kill()
        for server in reversed(self.embedded):
            server.stop()


def service_tokens_for_run() -> dict[str, dict[str, str]]:
    """Per service, the service-token variables it gets: each token (made for this run unless
    the environment names one) only to the caller that presents it and the service that
    accepts it (SERVICE_LINKS); capture and the aggregator call no one and get none."""
    given: dict[str, dict[str, str]] = {name: {} for name in SERVICES}
    for caller, callee in SERVICE_LINKS.items():
        variable = f"WATCHPOST_{SERVICE_TOKEN_FIELDS[caller].upper()}"
        token = os.environ.get(variable) or secrets.token_urlsafe(32)
        for name in (caller, callee):
            given[name][variable] = token
    return given


def first_admin_key(database_url: str) -> None:
    """On a first start there is no way in: make an admin key and show it, once."""
    from watchpost.auth import Role, create_key
    from watchpost.db import open_pool
    from watchpost.db.api_keys import count_admin_keys

    with open_pool(database_url, min_size=1, max_size=1) as pool, pool.connection() as conn:
        if count_admin_keys(conn):
            return
        key, _ = create_key(conn, name="first-admin", role=Role.admin)
    print(
        f"\nNo admin key existed, so one was made. It is shown only now; keep it safe:\n\n"
        f"    {key}\n\nSign in to the dashboard with it, and make keys for people with "
        "`watchpost keys create --name NAME --role viewer|operator|admin` (and for login "
        "kiosks, `--role kiosk`).\n",
        flush=True,
    )


def database_for_cli(home: str) -> tuple[str, list[EmbeddedPostgres]]:
    """WATCHPOST_DATABASE_URL, else the embedded server `watchpost up` uses (started here)."""
    url = CommonSettings().database_url
    if url:
        return url, []
    from watchpost.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(home).resolve() / "postgres")
    return server.start(), [server]


def audit_key_change(conn: Conn, action: str, row: Row, **details: object) -> None:
    """Key changes from the CLI are audited as the operating-system user who made them."""
    from watchpost.db import audit_log

    audit_log.audit(
        conn,
        actor=f"cli:{os.environ.get('USER', 'unknown')}",
        role="admin",
        action=action,
        target_type="api_key",
        target_id=row["key_id"],
        details=details,
    )


def keys_command(args: argparse.Namespace) -> int:
    from watchpost.auth import Role, create_key
    from watchpost.db import api_keys, apply_migrations, open_pool

    url, servers = database_for_cli(args.home)
    try:
        apply_migrations(url)
        with open_pool(url, min_size=1, max_size=1) as pool, pool.connection() as conn:
            if args.action == "create":
                key, row = create_key(conn, name=args.name, role=Role[args.role])
                audit_key_change(conn, "key_create", row, name=args.name, role=args.role)
                print(
                    f"created {args.role} key {row['key_id']} for {args.name!r}; it is shown "
                    "only now:",
                    file=sys.stderr,
                )
                print(key)
            elif args.action == "revoke":
                revoked = api_keys.revoke_key(conn, args.key_id)
                if revoked is None:
                    print(f"no live key {args.key_id!r}", file=sys.stderr)
                    return 1
                audit_key_change(conn, "key_revoke", revoked)
                print(f"revoked {revoked['key_id']} ({revoked['name']}, {revoked['role']})")
            else:
                for row in api_keys.list_keys(conn, include_revoked=args.all):
                    state = "revoked" if row["revoked_at"] else "live"
                    used = row["last_used_at"]
                    used = used.isoformat(timespec="seconds") if used else "never used"
                    role = row["role"]
                    print(f"{row['key_id']}  {role:<8}  {state:<7}  {used:<25}  {row['name']}")
    finally:
        for server in servers:
            server.stop()
    return 0


SECRET_NAMES = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    *(f"WATCHPOST_{field.upper()}" for field in SERVICE_TOKEN_FIELDS.values()),
)


def secrets_command(args: argparse.Namespace) -> int:
    """Write generated secrets into the compose env file; never overwrite one that is set."""
    path = Path(args.env_file)
    text = path.read_text() if path.exists() else ""
    present = {
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#") and line.split("=", 1)[1].strip()
    }
    missing = [name for name in SECRET_NAMES if name not in present]
    if not missing:
        print(f"{path}: every secret is already set")
        return 0
    lines = [line for line in text.splitlines() if line.split("=", 1)[0].strip() not in missing]
    lines += [f"{name}={secrets.token_hex(24)}" for name in missing]
    write_private(path, "\n".join(lines) + "\n")
    print(f"{path}: generated {', '.join(missing)}")
    return 0


def write_private(path: Path, text: str) -> None:
    """Replace `path` with a file only its owner can read, atomically: the text goes into a new
    file created with mode 600 beside it, which is then renamed over the old one. The secrets
    are never in a file anyone else can open, nor written into the old file (whose mode, or a
    hard link to it, another user may have)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", text=True)
    try:
        os.fchmod(fd, 0o600)  # mkstemp makes it 600 already; say so, whatever the platform
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def demo_loop(camera: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """With no camera named (the demo video plays), loop it, so a newcomer who opens the page
    after its few seconds still sees it live; a loop setting of the user's own stands."""
    if camera or environ.get("WATCHPOST_CAPTURE_SOURCE") or "WATCHPOST_CAPTURE_LOOP" in environ:
        return {}
    return {"WATCHPOST_CAPTURE_LOOP": "true"}


def up(args: argparse.Namespace) -> int:
    from watchpost.settings import CaptureSettings

    source = args.camera or CaptureSettings().resolved_source()
    if "://" not in source and not source.isdigit() and not Path(source).is_file():
        print(
            f"watchpost up: no video at {source}. Name a camera with --camera (a file, a webcam "
            "index or an rtsp/http URL), or set WATCHPOST_DATA_DIR to the data folder that holds "
            "the demo video.",
            file=sys.stderr,
        )
        return 2
    # The demo loops for a newcomer's `make up`; the stack itself (benchmarks, tests) plays a
    # file once unless told otherwise.
    os.environ.update(demo_loop(args.camera, os.environ))
    stack = Stack(args)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    code = 0
    try:
        url = stack.start()
        print(f"\nWatchpost is running. Dashboard: {url}\nPress Ctrl-C to stop.", flush=True)
        code = stack.watch()
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except RuntimeError as exc:
        print(f"watchpost up failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C (or the terminal's SIGINT to the whole group) must not cut the
        # orderly shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    print("stopped.", flush=True)
    return code


def enrol(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console

    from watchpost.bulk_enrol import enrol_folder, print_summary

    console = Console()
    folder = Path(args.folder)
    if not folder.is_dir():
        console.print(f"[red]not a folder: {folder}[/red]")
        return 2
    try:
        summary = enrol_folder(
            folder, url=args.url, key=args.key, largest=args.largest, console=console
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]the dashboard at {args.url} failed: {exc}[/red]")
        return 2
    print_summary(summary, console)
    return 0 if summary.accepted or not summary.rejected else 1


def calibrate_command(args: argparse.Namespace) -> int:
    """The enrolled gallery's false-accept / false-reject curve, as JSON and an SVG plot."""
    import json

    from watchpost import calibration
    from watchpost.db import apply_migrations, identities, open_pool
    from watchpost.progress import track
    from watchpost.settings import RecognitionSettings

    settings = RecognitionSettings()
    url, servers = database_for_cli(args.home)
    try:
        apply_migrations(url)
        with open_pool(url, min_size=1, max_size=1) as pool, pool.connection() as conn:
            matrix, ids, _ = identities.load_gallery(conn)
    finally:
        for server in servers:
            server.stop()
    try:
        scores = calibration.gallery_scores(
            matrix,
            ids,
            k=settings.recognition_score_k,
            progress=lambda probes: track(probes, "scoring photos"),
        )
        result = calibration.calibrate(
            scores,
            target_far=args.target_far or settings.recognition_calibration_target_far,
            current_threshold=settings.recognition_threshold,
            gallery_identities=args.identities or scores.identities,
        )
    except calibration.CalibrationError as exc:
        print(f"cannot calibrate: {exc}", file=sys.stderr)
        return 1
    Path(args.json).write_text(json.dumps(result, indent=1))
    Path(args.svg).write_text(calibration.svg(result))
    suggested, current = result["suggested_threshold"], result["at_current"]
    print(
        f"{result['identities']} identities, {result['samples']} photos: "
        f"{result['genuine_scores']} genuine and {result['impostor_scores']} impostor scores"
    )
    print(
        f"current threshold {result['current_threshold']:.3f}: false accepts per "
        f"identification {current['far_identification']:.2e} (fitted "
        f"{current['far_identification_fitted']:.2e}), false rejects {current['frr']:.1%}"
    )
    if suggested is None:
        print(f"no threshold reaches a false-accept rate of {result['target_far']:.0e}")
    else:
        at = result["at_suggested"]
        print(
            f"suggested for {result['target_far']:.0e} false accepts per identification: "
            f"WATCHPOST_RECOGNITION_THRESHOLD={suggested:.3f} (false rejects {at['frr']:.1%})"
        )
    print(f"curve in {args.json}, plot in {args.svg}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="watchpost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="run every service locally")
    up_parser.add_argument(
        "--camera", help="video file, webcam index or rtsp/http URL (default: the demo video)"
    )
    up_parser.add_argument(
        "--home",
        default=str(PROJECT_ROOT / ".watchpost"),
        help="folder for the embedded servers' data (default: .watchpost/)",
    )
    up_parser.add_argument(
        "--port-offset", type=int, default=0, help="add this to every service's port"
    )
    up_parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="replicas of recognition, liveness and the aggregator, sharing the stream shards "
        "(default 1; more than WATCHPOST_STREAM_SHARDS leaves the extra ones idle)",
    )
    for service in SHARDED_SERVICES:
        up_parser.add_argument(
            f"--{service}-replicas",
            type=int,
            default=None,
            choices=range(1, 65),
            metavar="N",
            help=f"replicas of {service} (default: --replicas)",
        )
    up_parser.add_argument(
        "--capture-processes",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="capture nodes sharing the cameras, one process each (default 1; up to the cores)",
    )
    serve_parser = commands.add_parser("serve", help="run one service (what a container runs)")
    serve_parser.add_argument("name", choices=sorted(SERVICE_SETTINGS))
    commands.add_parser("migrate", help="apply database migrations and exit")
    # `enroll` is the command older scripts call; `enrol` is the spelling of the API.
    enrol_parser = commands.add_parser(
        "enroll",
        aliases=["enrol"],
        help="enrol every <name>/*.jpg of a folder through the dashboard's API",
    )
    enrol_parser.add_argument("folder", help="a folder with one sub-folder of photos per person")
    enrol_parser.add_argument("--url", default="http://127.0.0.1:8000", help="the dashboard")
    enrol_parser.add_argument(
        "--largest", action="store_true", help="in group photos, enrol the largest face"
    )
    enrol_parser.add_argument(
        "--key",
        default=os.environ.get("WATCHPOST_API_KEY"),
        required="WATCHPOST_API_KEY" not in os.environ,
        help="an admin API key (default: $WATCHPOST_API_KEY)",
    )
    keys_parser = commands.add_parser("keys", help="create, list or revoke API keys")
    keys_parser.add_argument(
        "--home",
        default=str(PROJECT_ROOT / ".watchpost"),
        help="embedded database folder when WATCHPOST_DATABASE_URL is not set",
    )
    key_actions = keys_parser.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="make a key and print it (shown once)")
    create.add_argument("--name", required=True, help="who or what holds it")
    create.add_argument(
        "--role",
        required=True,
        choices=["kiosk", "viewer", "operator", "admin"],
        help="kiosk: may only verify logins at recognition",
    )
    listing = key_actions.add_parser("list", help="the keys, without their secrets")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = key_actions.add_parser("revoke", help="stop a key working (within 30 s)")
    revoke.add_argument("key_id")
    secrets_parser = commands.add_parser(
        "secrets", help="generate the deployment's secrets into the compose .env file"
    )
    secrets_parser.add_argument("--env-file", default=".env")
    calibrate_parser = commands.add_parser(
        "calibrate", help="false accepts / rejects of the enrolled gallery; suggest a threshold"
    )
    calibrate_parser.add_argument(
        "--target-far",
        type=float,
        help="false accepts per identification to aim for (default: the setting, 1e-4)",
    )
    calibrate_parser.add_argument(
        "--identities", type=int, help="gallery size to plan for (default: the enrolled count)"
    )
    calibrate_parser.add_argument("--json", default="calibration.json", help="the curve")
    calibrate_parser.add_argument("--svg", default="calibration.svg", help="the plot")
    calibrate_parser.add_argument(
        "--home",
        default=str(PROJECT_ROOT / ".watchpost"),
        help="embedded database folder when WATCHPOST_DATABASE_URL is not set",
    )
    args = parser.parse_args(argv)
    if args.command == "calibrate":
        if args.target_far is not None and not 0 < args.target_far < 1:
            parser.error("--target-far must be between 0 and 1")
        return calibrate_command(args)
    if args.command == "up":
        return up(args)
    if args.command == "serve":
        serve(args.name)
        return 0
    if args.command in ("enroll", "enrol"):
        return enrol(args)
    if args.command == "keys":
        return keys_command(args)
    if args.command == "secrets":
        return secrets_command(args)
    migrate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
