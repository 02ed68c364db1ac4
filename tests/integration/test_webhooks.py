"""Outgoing webhooks against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.dashboard.main import create_app as dashboard_app
from tests.integration.test_dashboard import store_alert
from watchpost.keys import Keys
from watchpost.settings import DashboardSettings

SECRET = "test-webhook-secret"


class Receiver:
    """Records POSTs; answers 500 to the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def settings_with(env_settings, hooks: dict, **extra) -> DashboardSettings:
    return env_settings(
        DashboardSettings,
        dashboard_webhooks=hooks,
        dashboard_webhook_secret=SECRET,
        dashboard_webhook_backoff_seconds=0.05,
        **extra,
    )


def test_new_alerts_are_posted_signed_and_retried(env_settings, pool, redis_client, prefix):
    receiver = Receiver(failures=2)
    spoof_only = Receiver()
    try:
        settings = settings_with(
            env_settings, {"unknown_person": [receiver.url], "spoof_attempt": [spoof_only.url]}
        )
        store_alert(pool, redis_client, prefix, "before-start")  # history is not sent
        with TestClient(dashboard_app(settings)):
            time.sleep(0.5)  # the notifier's group starts at the end of the stream
            alert_id = store_alert(pool, redis_client, prefix, "t1")
            receiver.wait(3)
        assert len(receiver.requests) == 3  # two 500s, then delivered
        headers, body = receiver.requests[-1]
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Watchpost-Signature"] == expected
        assert headers["X-Watchpost-Event"] == "unknown_person"
        assert json.loads(body)["alert"]["id"] == alert_id
        assert spoof_only.requests == []  # other kinds go elsewhere
    finally:
        receiver.close()
        spoof_only.close()


def test_a_dead_endpoint_is_recorded_not_retried_forever(env_settings, pool, redis_client, prefix):
    from tests.support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    settings = settings_with(env_settings, {"*": [url]}, dashboard_webhook_attempts=2)
    with TestClient(dashboard_app(settings)):
        time.sleep(0.5)
        store_alert(pool, redis_client, prefix, "t2")
        deadline = time.monotonic() + 15
        while not redis_client.xlen(Keys(prefix).dead_letter) and time.monotonic() < deadline:
            time.sleep(0.05)
    (entry,) = redis_client.xrange(Keys(prefix).dead_letter)
    assert url.encode() in entry[1][b"reason"] and entry[1][b"group"] == b"notifier"


@pytest.mark.parametrize(
    ("hooks", "secret", "reason"),
    [
        ({"spoof_attempt": ["https://x.test/h"]}, None, "WEBHOOK_SECRET"),
        ({"burglary": ["https://x.test/h"]}, SECRET, "unknown alert kinds"),
        ({"*": ["ftp://x.test/h"]}, SECRET, r"not an http\(s\) URL"),
    ],
)
def test_webhook_settings_are_checked(hooks, secret, reason):
    with pytest.raises(ValidationError, match=reason):
        DashboardSettings(dashboard_webhooks=hooks, dashboard_webhook_secret=secret)
