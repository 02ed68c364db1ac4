"""Outgoing notifications: every new alert POSTed as JSON to the URLs configured for its kind.

A consumer group (`notifier`) on the alerts stream, so each alert is sent once however many
dashboard replicas run, and a restarted dashboard sends what it had not sent. Each body is signed:
`X-Watchpost-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>`. A
failing endpoint is retried with doubling back-off; after the last attempt the delivery is
recorded in the dead-letter stream (so nothing is silently dropped) and the next alert goes on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time

import httpx
import redis
from prometheus_client import Counter

from watchpost.keys import DEAD_LETTER_MAXLEN, Group
from watchpost.messages import AlertEvent
from watchpost.settings import DashboardSettings
from watchpost.streams import Delivery

log = logging.getLogger(__name__)

SENT = Counter("watchpost_webhooks_total", "Webhook deliveries", ["result"])


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    def __init__(
        self, settings: DashboardSettings, *, redis_client: redis.Redis, stop: threading.Event
    ) -> None:
        assert settings.dashboard_webhook_secret is not None  # enforced by the settings
        self.settings = settings
        self.redis = redis_client
        self.keys = settings.keys
        self.secret = settings.dashboard_webhook_secret.get_secret_value().encode()
        self.stop = stop
        self.client = httpx.Client(timeout=10.0)

    def urls_for(self, kind: str) -> list[str]:
        hooks = self.settings.dashboard_webhooks
        return list(dict.fromkeys([*hooks.get(kind, []), *hooks.get("*", [])]))

    def handle(self, delivery: Delivery[AlertEvent]) -> None:
        event = delivery.message
        body = json.dumps({"type": "alert", "alert": event.model_dump(mode="json")}).encode()
        for url in self.urls_for(event.kind):
            self._send(url, body, event)

    def _send(self, url: str, body: bytes, event: AlertEvent) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Watchpost-Event": event.kind,
            "X-Watchpost-Delivery": str(event.alert_id),
            "X-Watchpost-Signature": signature(self.secret, body),
        }
        delay = self.settings.dashboard_webhook_backoff_seconds
        error = ""
        for attempt in range(1, self.settings.dashboard_webhook_attempts + 1):
            try:
                response = self.client.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    SENT.labels("delivered").inc()
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = repr(exc)
            SENT.labels("retried").inc()
            log.warning(
                "webhook %s for alert %s failed (attempt %d): %s",
                url,
                event.alert_id,
                attempt,
                error,
            )
            if attempt < self.settings.dashboard_webhook_attempts and self.stop.wait(delay):
                break  # shutting down: record it rather than hold the process
            delay *= 2
        SENT.labels("failed").inc()
        self.redis.xadd(
            self.keys.dead_letter,
            {
                b"source_stream": self.keys.alerts.encode(),
                b"group": Group.NOTIFIER.encode(),
                b"data": body,
                b"reason": f"webhook {url} failed: {error}".encode()[:2000],
                b"dead_at": str(time.time()).encode(),
            },
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )
