"""MQTT: alerts, sightings and camera status published to a broker, with Home Assistant discovery.

Where the data comes from (docs/architecture.md says why):
- alerts from the alerts stream, through a consumer group of their own (`mqtt`, created at the
  stream's end like the webhooks' group), so each alert is published once however many dashboard
  replicas run, and one published while the bridge was down is published when it is back;
- camera status and sightings by reading PostgreSQL every `mqtt_poll_seconds`, by one replica at
  a time (a Redis lease), so neither capture nor the aggregator knows MQTT exists.

Nothing waits for the broker. `MqttPublisher.publish` hands a message to paho, whose network
thread sends it; paho holds at most `mqtt_max_queued` unacknowledged messages (QoS 1 and 2) and
refuses more, which is counted (`watchpost_mqtt_messages_total{result="dropped"}`) and logged once
per outage, never retried: a dead or slow broker costs a counter and a log line. paho reconnects
with doubling back-off and, on every connection, we publish again the retained state (availability,
discovery configs, camera status, last person), so a broker restarted without persistence is
whole again.

No pictures and no embeddings go over MQTT; a known person is named, an unknown one is not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import psycopg
import redis
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from prometheus_client import Counter, Gauge

from watchpost.db import cameras, sightings
from watchpost.db.pool import Conn, Pool
from watchpost.keys import Keys
from watchpost.messages import AlertEvent
from watchpost.settings import DashboardSettings
from watchpost.sources import redact
from watchpost.streams import Delivery

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "watchpost_mqtt_messages_total",
    "MQTT publishes: queued (handed to the client), delivered (acknowledged by the broker), "
    "dropped (client's queue full, or QoS 0 while disconnected)",
    ["result"],
)
CONNECT_FAILURES = Counter(
    "watchpost_mqtt_connect_failures_total", "Failed or lost connections to the MQTT broker"
)
CONNECTED = Gauge("watchpost_mqtt_connected", "1 while connected to the MQTT broker")

# Sightings re-read on every poll: a track's sighting is rewritten until it ends, at most about
# 2 x aggregator_track_timeout_seconds (60 s) after its last face; ten minutes covers that.
SIGHTING_WINDOW_SECONDS = 600.0
ONLINE, OFFLINE = "online", "offline"
# The alert kinds each camera has a Home Assistant binary sensor for, and its device class.
EVENT_SENSORS = {
    "unknown_person": ("Unknown person", "occupancy"),
    "spoof_attempt": ("Spoof attempt", "tamper"),
}
try:
    VERSION = version("watchpost")
except PackageNotFoundError:  # run from a checkout that was not installed
    VERSION = "unknown"
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def ha_id(text: str) -> str:
    """Text as a Home Assistant node or object id (letters, digits, _ and - only)."""
    return _NOT_ID.sub("_", text)


class Topics:
    """Every topic the bridge publishes, from the settings' prefixes."""

    def __init__(self, prefix: str, discovery_prefix: str | None) -> None:
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def sightings(self) -> str:
        return f"{self.prefix}/sightings"

    def alert(self, kind: str) -> str:
        return f"{self.prefix}/alerts/{kind}"

    def camera_alert(self, camera_id: str, kind: str) -> str:
        return f"{self.prefix}/cameras/{camera_id}/alerts/{kind}"

    def camera_status(self, camera_id: str) -> str:
        return f"{self.prefix}/cameras/{camera_id}/status"

    def last_person(self, camera_id: str) -> str:
        return f"{self.prefix}/cameras/{camera_id}/last_person"

    def node(self, camera_id: str) -> str:
        return ha_id(f"{self.prefix.replace('/', '_')}_{camera_id}")

    def discovery(self, component: str, camera_id: str, object_id: str) -> str:
        assert self.discovery_prefix is not None
        return f"{self.discovery_prefix}/{component}/{self.node(camera_id)}/{object_id}/config"

    def discovery_topics(self, camera_id: str) -> list[str]:
        return [
            self.discovery("sensor", camera_id, "last_person"),
            self.discovery("sensor", camera_id, "status"),
            *(self.discovery("binary_sensor", camera_id, kind) for kind in EVENT_SENSORS),
        ]


# -- payloads ------------------------------------------------------------------------------------
def _time(value: Any) -> float | None:
    return None if value is None else value.timestamp()


def alert_payload(event: AlertEvent) -> dict[str, Any]:
    """An alert as published: the alert event's fields (those of the webhooks' `alert`)."""
    return event.model_dump(mode="json")


def sighting_payload(row: dict[str, Any]) -> dict[str, Any]:
    """A sighting as published (sightings topic and a camera's last person): the name of a known
    person, "unknown" for anyone else; never the face, the snapshot or an embedding."""
    known = row["identity_id"] is not None
    return {
        "sighting_id": row["id"],
        "camera_id": row["camera_id"],
        "track_id": row["track_id"],
        "known": known,
        "identity_id": row["identity_id"],
        "name": row["display_name"] if known else "unknown",
        "unknown_group_id": row["group_id"],
        "liveness": row["liveness"],
        "first_seen": _time(row["first_seen"]),
        "last_seen": _time(row["last_seen"]),
        "checks": row["checks"],
        "votes": row["votes"],
        "ended": row["ended"],
    }


def no_sighting_payload(camera_id: str) -> dict[str, Any]:
    return {"sighting_id": None, "camera_id": camera_id, "known": False, "name": None}


def camera_payload(row: dict[str, Any]) -> dict[str, Any]:
    """A camera's status as published; its source (which may hold credentials) is not."""
    return {
        "camera_id": row["id"],
        "name": row["name"],
        "enabled": row["enabled"],
        "status": row["status"],
        "fps": row["fps"],
        "last_frame_at": _time(row["last_frame_at"]),
        "last_error": None if row["last_error"] is None else redact(row["last_error"]),
        "updated_at": _time(row["updated_at"]),
    }


def discovery_configs(
    topics: Topics, camera: dict[str, Any], *, event_seconds: int
) -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery configs of one camera's entities, by config topic. Entity
    ids are suggested with `default_entity_id` (`object_id`, its predecessor, was deprecated in
    Home Assistant 2025.10 and removed in 2026.4)."""
    camera_id = camera["id"]
    node = topics.node(camera_id)
    common: dict[str, Any] = {
        "availability": [
            {"topic": topics.status, "payload_available": ONLINE, "payload_not_available": OFFLINE}
        ],
        "device": {
            "identifiers": [node],
            "name": camera["name"] or camera_id,
            "manufacturer": "Watchpost",
            "model": "Camera",
            "sw_version": VERSION,
        },
        "origin": {"name": "Watchpost", "sw_version": VERSION},
    }
    configs = {
        topics.discovery("sensor", camera_id, "last_person"): {
            "name": "Last person seen",
            "unique_id": f"{node}_last_person",
            "default_entity_id": f"sensor.{node}_last_person",
            "icon": "mdi:account-eye",
            "state_topic": topics.last_person(camera_id),
            "value_template": "{{ value_json.name or 'none' }}",
            "json_attributes_topic": topics.last_person(camera_id),
            **common,
        },
        topics.discovery("sensor", camera_id, "status"): {
            "name": "Status",
            "unique_id": f"{node}_status",
            "default_entity_id": f"sensor.{node}_status",
            "icon": "mdi:cctv",
            "entity_category": "diagnostic",
            "state_topic": topics.camera_status(camera_id),
            "value_template": "{{ value_json.status }}",
            "json_attributes_topic": topics.camera_status(camera_id),
            **common,
        },
    }
    for kind, (name, device_class) in EVENT_SENSORS.items():
        configs[topics.discovery("binary_sensor", camera_id, kind)] = {
            "name": name,
            "unique_id": f"{node}_{kind}",
            "default_entity_id": f"binary_sensor.{node}_{kind}",
            "device_class": device_class,
            "state_topic": topics.camera_alert(camera_id, kind),
            "value_template": "ON",  # any alert of the kind turns it on ...
            "payload_on": "ON",
            "off_delay": event_seconds,  # ... and Home Assistant turns it off again
            "json_attributes_topic": topics.camera_alert(camera_id, kind),
            **common,
        }
    return configs


# -- the client ----------------------------------------------------------------------------------
class MqttPublisher:
    """A paho client in its own network thread. `publish` never blocks and never raises."""

    def __init__(self, settings: DashboardSettings, topics: Topics) -> None:
        assert settings.mqtt_url is not None
        url = urlsplit(settings.mqtt_url)
        self.tls = url.scheme == "mqtts"
        self.host = url.hostname or ""
        self.port = url.port or (8883 if self.tls else 1883)
        self.where = redact(settings.mqtt_url)
        self.qos = settings.mqtt_qos
        self.topics = topics
        self.keepalive = settings.mqtt_keepalive_seconds
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # Two connections with one client id throw each other off the broker: the default
            # is this replica's name and a token of this process (no persistent session needs
            # it stable).
            client_id=settings.mqtt_client_id
            or f"watchpost-{settings.consumer_name}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv311,
        )
        if url.username is not None:
            password = unquote(url.password) if url.password is not None else None
            self.client.username_pw_set(unquote(url.username), password)
        if self.tls:
            self.client.tls_set(
                ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
                certfile=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
                keyfile=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
            )
        self.client.will_set(topics.status, OFFLINE, qos=1, retain=True)
        self.client.max_queued_messages_set(settings.mqtt_max_queued)
        self.client.reconnect_delay_set(1, max(1, round(settings.mqtt_reconnect_max_seconds)))
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._retained: dict[str, str] = {}  # topic -> payload, published again on reconnect
        self._lock = threading.Lock()
        self._dropping = False
        self.connected = threading.Event()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop(self, timeout: float = 2.0) -> None:
        """Say offline (a clean disconnect sends no will), then disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not sent: the will covers it
                info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()
        CONNECTED.set(0)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> bool:
        """Hand a message to the client; False (counted, logged once per outage) when it was
        dropped. Retained messages are also kept to publish again after a reconnect (an empty
        payload removes the topic's retained message, and we forget it)."""
        if retain:
            with self._lock:
                if payload:
                    self._retained[topic] = payload
                else:
                    self._retained.pop(topic, None)
        return self._send(topic, payload, retain)

    def retain(self, topic: str, payload: str) -> bool:
        """Publish a retained message unless the same payload is already retained there."""
        with self._lock:
            if self._retained.get(topic) == payload:
                return True
        return self.publish(topic, payload, retain=True)

    def _send(self, topic: str, payload: str, retain: bool) -> bool:
        try:
            rc = self.client.publish(topic, payload, qos=self.qos, retain=retain).rc
        except (ValueError, OSError) as exc:  # a bad topic; a socket error paho let through
            rc, error = MQTTErrorCode.MQTT_ERR_UNKNOWN, repr(exc)
        else:
            error = mqtt.error_string(rc)
        # NO_CONN with QoS 1/2: paho keeps it and sends it when connected again.
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos > 0
        ):
            MESSAGES.labels("queued").inc()
            self._dropping = False
            return True
        MESSAGES.labels("dropped").inc()
        if not self._dropping:
            self._dropping = True
            log.warning("MQTT %s: dropping messages (%s); first: %s", self.where, error, topic)
        return False

    # paho's callbacks, in its network thread
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            CONNECT_FAILURES.inc()
            log.warning("MQTT %s refused the connection: %s", self.where, reason)
            return
        log.info("MQTT connected to %s", self.where)
        self.connected.set()
        CONNECTED.set(1)
        client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        with self._lock:
            retained = list(self._retained.items())
        for topic, payload in retained:
            client.publish(topic, payload, qos=self.qos, retain=True)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        CONNECT_FAILURES.inc()
        log.warning("MQTT %s unreachable; retrying with back-off", self.where)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self.connected.is_set() and reason.is_failure:
            CONNECT_FAILURES.inc()
            log.warning("MQTT connection to %s lost: %s; reconnecting", self.where, reason)
        self.connected.clear()
        CONNECTED.set(0)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        MESSAGES.labels("delivered").inc()


# -- the bridge ----------------------------------------------------------------------------------
class MqttBridge:
    """Alerts from the stream (`handle`), cameras and sightings from PostgreSQL (`poll`)."""

    def __init__(
        self,
        settings: DashboardSettings,
        *,
        redis_client: redis.Redis,
        pool: Pool,
        publisher: MqttPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.pool = pool
        self.keys = Keys(settings.stream_prefix)
        self.topics = Topics(settings.mqtt_topic_prefix, settings.mqtt_discovery_prefix)
        self.publisher = publisher or MqttPublisher(settings, self.topics)
        self._next_poll = 0.0
        self._sightings: dict[int, tuple] | None = None  # id -> what was published of it
        self._latest_rows: dict[str, dict[str, Any]] | None = None  # camera -> last sighting
        self._announced: set[str] = set()  # cameras this bridge added to mqtt_discovered

    def handle(self, delivery: Delivery) -> None:
        event = delivery.message
        assert isinstance(event, AlertEvent)
        payload = json.dumps(alert_payload(event))
        self.publisher.publish(self.topics.alert(event.kind), payload)
        self.publisher.publish(self.topics.camera_alert(event.camera_id, event.kind), payload)

    def housekeeping(self) -> None:
        """Poll when due (called by the stream worker whenever it is idle)."""
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + self.settings.mqtt_poll_seconds
        try:
            if self._lead():
                self.poll()
        except (psycopg.Error, redis.RedisError) as exc:  # try again next round
            log.warning("MQTT poll failed: %s", exc)

    def _lead(self) -> bool:
        """Hold the poller lease (one replica polls); True while we hold it."""
        me = self.settings.consumer_name.encode()
        ttl = round(max(10.0, 3 * self.settings.mqtt_poll_seconds) * 1000)
        if self.redis.set(self.keys.mqtt_poller, me, nx=True, px=ttl):
            return True
        if self.redis.get(self.keys.mqtt_poller) == me:
            self.redis.pexpire(self.keys.mqtt_poller, ttl)
            return True
        return False

    def poll(self) -> None:
        with self.pool.connection() as conn:
            rows = cameras.list_cameras(conn)
            recent = sightings.recent(conn, seconds=SIGHTING_WINDOW_SECONDS)
            latest = self._latest(conn, recent)
        present = {row["id"] for row in rows}
        for camera_id in self._discovered() - present:
            self.forget_camera(camera_id)
        for row in rows:
            camera_id = row["id"]
            self._discover(row)
            status = json.dumps(camera_payload(row))
            self.publisher.retain(self.topics.camera_status(camera_id), status)
            sighting = latest.get(camera_id)
            last = sighting_payload(sighting) if sighting else no_sighting_payload(camera_id)
            self.publisher.retain(self.topics.last_person(camera_id), json.dumps(last))
        self._publish_sightings(recent)

    def _latest(self, conn: Conn, recent: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each camera's last sighting: all of them at the first poll; then the newest recent
        one, else the one found before if it still exists (erased or purged: look again)."""
        if self._latest_rows is None:
            self._latest_rows = sightings.latest_per_camera(conn)
            return self._latest_rows
        latest = dict(self._latest_rows)
        fresh: set[str] = set()
        for row in recent:  # newest first
            if row["camera_id"] not in fresh:
                fresh.add(row["camera_id"])
                latest[row["camera_id"]] = row
        kept = {c: r["id"] for c, r in latest.items() if c not in fresh}
        alive = sightings.existing(conn, list(kept.values())) if kept else set()
        gone = [camera for camera, sighting_id in kept.items() if sighting_id not in alive]
        if gone:
            for camera in gone:
                del latest[camera]
            latest.update(sightings.latest_per_camera(conn, gone))
        self._latest_rows = latest
        return latest

    def _publish_sightings(self, recent: list[dict[str, Any]]) -> None:
        """Each sighting when it starts and when its identity, liveness or end changes. The first
        poll only notes what is there: a restart does not send the last ten minutes again."""
        seen = {row["id"]: (row["identity_id"], row["liveness"], row["ended"]) for row in recent}
        if self._sightings is not None:
            for row in reversed(recent):  # oldest first
                if self._sightings.get(row["id"]) != seen[row["id"]]:
                    self.publisher.publish(self.topics.sightings, json.dumps(sighting_payload(row)))
        self._sightings = seen

    def _discovered(self) -> set[str]:
        members = cast(set[bytes], self.redis.smembers(self.keys.mqtt_discovered))
        return {m.decode() for m in members}

    def _discover(self, camera: dict[str, Any]) -> None:
        if self.settings.mqtt_discovery_prefix is None:
            return
        configs = discovery_configs(
            self.topics, camera, event_seconds=self.settings.mqtt_event_seconds
        )
        if camera["id"] not in self._announced:  # before the configs: never lose track of one
            self.redis.sadd(self.keys.mqtt_discovered, camera["id"])
            self._announced.add(camera["id"])
        for topic, config in configs.items():
            self.publisher.retain(topic, json.dumps(config))

    def forget_camera(self, camera_id: str) -> None:
        """A deleted camera: remove its discovery configs and retained state (empty retained
        payloads), so Home Assistant drops its entities."""
        topics = [self.topics.camera_status(camera_id), self.topics.last_person(camera_id)]
        if self.settings.mqtt_discovery_prefix is not None:
            topics += self.topics.discovery_topics(camera_id)
        for topic in topics:
            self.publisher.publish(topic, "", retain=True)
        self.redis.srem(self.keys.mqtt_discovered, camera_id)
        self._announced.discard(camera_id)
        if self._latest_rows is not None:
            self._latest_rows.pop(camera_id, None)
        log.info("MQTT: camera %s removed", camera_id)
