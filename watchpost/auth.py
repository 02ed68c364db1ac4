"""Who is calling: API keys with roles, browser sessions, internal service tokens, rate limits.

An API key reads `wp_<key_id>_<secret>`. The key id is public (it names the row and shows in the
audit log); only an argon2id hash of the secret is stored, so a key is shown once, when the CLI
creates it. Checking a hash costs tens of milliseconds on purpose, so a key that checked out is
remembered in memory for `auth_cache_seconds` (a revoked key stops working within that time).

The page logs in with a key and gets a session: a random token in an HttpOnly, SameSite=Strict
cookie, whose sha256 names a Redis entry that expires. Sessions end when their key is revoked.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass

import psycopg
import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from watchpost.db import access


class Role(enum.IntEnum):
    """Each role may do everything the roles below it may."""

    viewer = 1  # read alerts, identities, cameras; watch live
    operator = 2  # acknowledge alerts
    admin = 3  # enrol, delete, cameras, settings


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as the audit log names it."""

    name: str
    role: Role
    key_id: str | None = None  # None for internal service calls

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.key_id})" if self.key_id else self.name

    def may(self, needed: Role) -> bool:
        return self.role >= needed


INTERNAL = Principal(name="internal", role=Role.admin)

_KEY_RE = re.compile(r"^wp_([a-z0-9]{8,32})_([A-Za-z0-9_-]{20,100})$")
# Cheap enough for a login (about 20 ms here), costly enough for offline guessing of a leak.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


class AuthError(Exception):
    """Missing, malformed, unknown, revoked or wrong credentials (always said the same way)."""


def new_key() -> tuple[str, str, str]:
    """(full key to show once, key id, argon2 hash of the secret)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"wp_{key_id}_{secret}", key_id, _HASHER.hash(secret)


def create_key(conn: psycopg.Connection, *, name: str, role: Role | str) -> tuple[str, dict]:
    role = Role[role] if isinstance(role, str) else role
    full, key_id, hashed = new_key()
    row = access.insert_key(conn, key_id=key_id, name=name, role=role.name, secret_hash=hashed)
    return full, row


class KeyVerifier:
    """Checks API keys against the database, remembering good ones for `cache_seconds`."""

    def __init__(self, cache_seconds: float = 30.0) -> None:
        self.cache_seconds = cache_seconds
        self._good: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def check(self, conn: psycopg.Connection, key: str) -> Principal:
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._good.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = self.check_uncached(conn, key)
        with self._lock:
            if len(self._good) > 10_000:
                self._good.clear()
            self._good[fingerprint] = (now + self.cache_seconds, principal)
        return principal

    @staticmethod
    def check_uncached(conn: psycopg.Connection, key: str) -> Principal:
        match = _KEY_RE.match(key.strip())
        if match is None:
            raise AuthError("malformed key")
        key_id, secret = match.groups()
        row = access.key_for_check(conn, key_id)
        if row is None or row["revoked_at"] is not None:
            raise AuthError("unknown or revoked key")
        try:
            _HASHER.verify(row["secret_hash"], secret)
        except (VerificationError, InvalidHashError):
            raise AuthError("wrong key") from None
        access.touch_key(conn, key_id)
        return Principal(name=row["name"], role=Role[row["role"]], key_id=key_id)

    def forget(self) -> None:
        with self._lock:
            self._good.clear()


class Sessions:
    """Browser sessions in Redis: token -> principal, expiring after `ttl_seconds`."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = max(1, int(ttl_seconds))

    def _key(self, token: str) -> str:
        return f"{self.prefix}:session:{hashlib.sha256(token.encode()).hexdigest()}"

    def start(self, principal: Principal) -> str:
        token = secrets.token_urlsafe(32)
        value = {**asdict(principal), "role": principal.role.name}
        self.client.set(self._key(token), json.dumps(value), ex=self.ttl)
        return token

    def get(self, token: str) -> Principal | None:
        raw = self.client.get(self._key(token)) if token else None
        if raw is None:
            return None
        value = json.loads(raw)
        return Principal(name=value["name"], role=Role[value["role"]], key_id=value["key_id"])

    def end(self, token: str) -> None:
        self.client.delete(self._key(token))


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; retry after {retry_after} s")
        self.retry_after = retry_after


def rate_limit(client: redis.Redis, key: str, *, limit: int, window_seconds: int) -> None:
    """Fixed-window counter in Redis (shared by every replica); raises RateLimited past `limit`."""
    window = int(time.time() // window_seconds)
    counter = f"{key}:{window}"
    with client.pipeline() as pipe:
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        count, _ = pipe.execute()
    if count > limit:
        raise RateLimited(retry_after=window_seconds - int(time.time() % window_seconds))


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
