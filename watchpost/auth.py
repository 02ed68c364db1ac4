"""Who is calling: API keys with roles, browser sessions, rate limits.

An API key reads `wp_<key_id>_<secret>`. The key id is public (it names the row and shows in the
audit log); only an argon2id hash of the secret is stored, so a key is shown once, when the CLI
creates it. Checking a hash costs tens of milliseconds on purpose, so a key that checked out is
remembered in memory for `auth_cache_seconds` (a revoked key stops working within that time), no
database connection is held while hashing, and failed checks are counted per client address
(`FailureThrottle`), so guessing keys is slow and cannot exhaust the connection pool.

The page logs in with a key and gets a session: a random token in an HttpOnly, SameSite=Strict
cookie, whose sha256 names a Redis entry that expires. Sessions end when their key is revoked.

Services calling each other present per-link service tokens (`watchpost.service.service_auth`),
never API keys; kiosks present API keys with the `kiosk` role, which can only verify a login.
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

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from watchpost.db import api_keys
from watchpost.db.pool import Conn, Pool, Row
from watchpost.keys import Keys


class Role(enum.IntEnum):
    """viewer < operator < admin: each may do everything the roles below it may. `kiosk` stands
    outside that order: a login kiosk's key may verify a claimed login at recognition and do
    nothing else (no dashboard route, no page sign-in), and no other role may act as a kiosk."""

    kiosk = 0  # POST /v1/verify at recognition, only
    viewer = 1  # read alerts, identities, cameras; watch live
    operator = 2  # acknowledge alerts, send legacy alerts
    admin = 3  # enrol, delete, cameras, settings


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as the audit log names it."""

    name: str
    role: Role
    key_id: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.key_id})" if self.key_id else self.name

    def may(self, needed: Role) -> bool:
        if Role.kiosk in (self.role, needed):
            return self.role is needed
        return self.role >= needed


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


def create_key(conn: Conn, *, name: str, role: Role | str) -> tuple[str, Row]:
    """Store a new key with the role; (the full key, shown once; its row)."""
    role = Role[role] if isinstance(role, str) else role
    full, key_id, hashed = new_key()
    row = api_keys.insert_key(conn, key_id=key_id, name=name, role=role.name, secret_hash=hashed)
    return full, row


class KeyVerifier:
    """Checks API keys against the database, remembering good ones for `cache_seconds`.

    A check takes a pooled connection only to read the key's row and (after a good check) to
    note its use; the argon2 hash is computed with no connection held, so slow hashes cannot
    starve the pool."""

    def __init__(self, pool: Pool, cache_seconds: float = 30.0) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self._good: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> Principal:
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._good.get(fingerprint)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = self.check_uncached(key)
        with self._lock:
            if len(self._good) > 10_000:
                self._good.clear()
            self._good[fingerprint] = (now + self.cache_seconds, principal)
        return principal

    def check_uncached(self, key: str) -> Principal:
        match = _KEY_RE.match(key.strip())
        if match is None:
            raise AuthError("malformed key")
        key_id, secret = match.groups()
        with self.pool.connection() as conn:
            row = api_keys.key_for_check(conn, key_id)
        if row is None or row["revoked_at"] is not None:
            raise AuthError("unknown or revoked key")
        try:
            _HASHER.verify(row["secret_hash"], secret)
        except (VerificationError, InvalidHashError):
            raise AuthError("wrong key") from None
        with self.pool.connection() as conn:
            api_keys.touch_key(conn, key_id)
        return Principal(name=row["name"], role=Role[row["role"]], key_id=key_id)

    def key_live(self, key_id: str) -> bool:
        """Whether the key exists and is not revoked, asked of the database now (no cache)."""
        with self.pool.connection() as conn:
            row = api_keys.key_for_check(conn, key_id)
        return row is not None and row["revoked_at"] is None

    def forget(self) -> None:
        with self._lock:
            self._good.clear()


WINDOW_S = 60  # failures are counted over a minute from an address's first failure


class FailureThrottle:
    """Failed credential checks per client address, counted in Redis per minute (shared by every
    replica and service). Past `per_minute` failures, `guard` refuses that address outright,
    before any key is hashed, until the minute is over."""

    def __init__(self, client: redis.Redis, prefix: str, per_minute: int) -> None:
        self.client = client
        self.prefix = prefix
        self.per_minute = per_minute

    def _counter(self, address: str) -> str:
        return Keys(self.prefix).auth_failures(address)

    def guard(self, address: str) -> None:
        counter = self._counter(address)
        failures = self.client.get(counter)
        if failures is not None and int(failures) >= self.per_minute:
            ttl = int(self.client.ttl(counter))
            raise RateLimited(retry_after=min(WINDOW_S, max(1, ttl)))

    def failed(self, address: str) -> None:
        """Count a failure. The minute starts at the address's first failure (SET NX with the
        expiry, then INCR, which keeps it): a wall-clock minute would let failures that straddle
        its boundary count twice over, so a slow guesser got twice the allowance."""
        counter = self._counter(address)
        with self.client.pipeline() as pipe:
            pipe.set(counter, 0, ex=WINDOW_S, nx=True)
            pipe.incr(counter)
            pipe.execute()


def check_key(
    verifier: KeyVerifier, throttle: FailureThrottle, key: str, address: str
) -> Principal:
    """The key's principal; AuthError for a bad key (counted against the address), RateLimited
    when the address has failed too often this minute."""
    throttle.guard(address)
    try:
        return verifier.check(key)
    except AuthError:
        throttle.failed(address)
        raise


class Sessions:
    """Browser sessions in Redis: token -> principal, expiring after `ttl_seconds`."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = max(1, int(ttl_seconds))

    def _key(self, token: str) -> str:
        return Keys(self.prefix).session(token)

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
    """At most `limit` attempts per `window_seconds`, counted in Redis (shared by every replica)
    from the first attempt of a window (SET NX with the expiry, then INCR, which keeps it; a
    wall-clock window let a burst that straddles its boundary through twice); raises
    RateLimited past the limit."""
    with client.pipeline() as pipe:
        pipe.set(key, 0, ex=window_seconds, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    if count > limit:
        raise RateLimited(retry_after=min(window_seconds, max(1, int(ttl))))


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
