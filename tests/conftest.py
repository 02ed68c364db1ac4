"""Shared fixtures: real Redis and PostgreSQL (the local servers, else embedded ones), a fresh
stream prefix and a fresh database schema per test, and the real data set."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

from watchpost.auth import create_key
from watchpost.settings import SERVICE_LINKS, SERVICE_TOKEN_FIELDS, default_data_dir

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


# Services authenticate to each other with these in tests (`watchpost up` makes them per run):
# the dashboard's token for recognition, recognition's for liveness.
SERVICE_TOKENS = {caller: f"test-{caller}-" + secrets.token_hex(16) for caller in SERVICE_LINKS}
SERVICE_TOKEN_SETTINGS: dict[str, Any] = {
    SERVICE_TOKEN_FIELDS[c]: t for c, t in SERVICE_TOKENS.items()
}
SERVICE_TOKEN_ENV = {f"WATCHPOST_{k.upper()}": v for k, v in SERVICE_TOKEN_SETTINGS.items()}
# What the dashboard sends to recognition, and recognition to liveness.
DASHBOARD_HEADERS = {"Authorization": f"Bearer {SERVICE_TOKENS['dashboard']}"}
RECOGNITION_HEADERS = {"Authorization": f"Bearer {SERVICE_TOKENS['recognition']}"}


def data_dir() -> Path:
    return Path(os.environ.get("WATCHPOST_DATA_DIR") or default_data_dir())


def require_data(relative: str) -> Path:
    """The data file or folder, or skip with the reason; under CI a missing file fails instead,
    so data-dependent tests can never pass by skipping there."""
    path = data_dir() / relative
    if not path.exists():
        reason = f"real data missing: {path} (set WATCHPOST_DATA_DIR; see ../shared/data/README.md)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _reachable_redis(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _reachable_postgres(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("WATCHPOST_TEST_REDIS_URL", LOCAL_REDIS)
    if _reachable_redis(url):
        yield url
        return
    from watchpost.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    url = os.environ.get("WATCHPOST_TEST_DATABASE_URL", LOCAL_POSTGRES)
    if _reachable_postgres(url):
        yield url
        return
    from watchpost.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """(host, port) of a real MQTT broker: the local Mosquitto (WATCHPOST_TEST_MQTT_BROKER,
    default 127.0.0.1:1883), else Debian's `mosquitto` binary started on a free port for the
    session. Tests keep to topics of their own (`mqtt_topics`)."""
    from tests.support.mosquitto import LOCAL_BROKER, Mosquitto, reachable

    host, _, port = os.environ.get("WATCHPOST_TEST_MQTT_BROKER", LOCAL_BROKER).rpartition(":")
    if reachable(host, int(port)):
        yield (host, int(port))
        return
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield ("127.0.0.1", broker.port)
    broker.stop()


@pytest.fixture
def mqtt_topics() -> tuple[str, str]:
    """A topic prefix and a discovery prefix of this test's own."""
    name = uuid.uuid4().hex[:10]
    return f"wpt/{name}", f"wpt-ha/{name}"


@pytest.fixture
def prefix(redis_url) -> Iterator[str]:
    """A stream/key prefix of this test's own; its keys are deleted afterwards."""
    name = f"wpt-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_client(redis_url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def database_url(postgres_url) -> Iterator[str]:
    """A conninfo whose search_path is a schema of this test's own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield make_conninfo(postgres_url, options=f"-csearch_path={schema}")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def migrated_url(database_url) -> str:
    from watchpost.db import apply_migrations

    apply_migrations(database_url)
    return database_url


@pytest.fixture
def pool(migrated_url):
    from watchpost.db import open_pool

    pool = open_pool(migrated_url)
    pool.wait(10)
    yield pool
    pool.close()


@pytest.fixture
def env_settings(redis_url, migrated_url, prefix):
    """Build any service's settings against this test's Redis prefix and database schema."""

    def build(cls, **overrides):
        values = {
            "redis_url": redis_url,
            "database_url": migrated_url,
            "stream_prefix": prefix,
            "frame_max_age_seconds": 0,  # replayed files run faster than real time
            "consumer_name": "test",
            **SERVICE_TOKEN_SETTINGS,
        }
        values.update(overrides)
        return cls(**values)

    return build


@pytest.fixture
def make_key(pool):
    """Create an API key with a role in this test's database; returns the full key."""

    def make(role: str = "admin", name: str | None = None) -> str:
        with pool.connection() as conn:
            key, _ = create_key(conn, name=name or f"test-{role}", role=role)
        return key

    return make


@pytest.fixture
def admin_key(make_key) -> str:
    return make_key("admin")


@pytest.fixture
def kiosk_key(make_key) -> str:
    return make_key("kiosk")


def key_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
