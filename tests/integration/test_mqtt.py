"""The MQTT bridge against a real Mosquitto (the local one, or Debian's binary started by the
tests), with real paho subscribers: alerts from the stream, retained Home Assistant discovery,
availability through the will, credentials and TLS, and a dead broker that costs only a counter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.dashboard.main import create_app as dashboard_app
from services.dashboard.mqtt import MqttBridge, Topics
from tests.conftest import key_headers
from tests.integration.test_dashboard import store_alert
from tests.support.mosquitto import Mosquitto, Subscriber
from watchpost.db import cameras, identities, sightings
from watchpost.settings import PROJECT_ROOT, DashboardSettings


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def mqtt_settings(env_settings, url: str, mqtt_topics, **extra) -> DashboardSettings:
    topic_prefix, discovery_prefix = mqtt_topics
    return env_settings(
        DashboardSettings,
        mqtt_url=url,
        mqtt_topic_prefix=topic_prefix,
        mqtt_discovery_prefix=discovery_prefix,
        mqtt_poll_seconds=0.2,
        mqtt_reconnect_max_seconds=1,
        **extra,
    )


def wait_until(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def add_camera(pool, camera_id: str = "door", name: str = "Front door") -> None:
    with pool.connection() as conn:
        cameras.upsert_camera(conn, camera_id=camera_id, name=name, source="rtsp://10.0.0.9/s")


def test_the_broker_fixture_runs_a_real_mosquitto(tmp_path, mqtt_broker):
    """Debian's mosquitto starts on a free port and carries messages; so does the session's."""
    own = Mosquitto(tmp_path).start()
    try:
        for host, port in (("127.0.0.1", own.port), mqtt_broker):
            topic = f"wpt/fixture/{port}"
            subscriber = Subscriber(port, [topic], host=host)
            try:
                import paho.mqtt.publish as single

                single.single(topic, "hello", qos=1, hostname=host, port=port)
                assert subscriber.wait_for(topic) == [b"hello"]
            finally:
                subscriber.close()
    finally:
        own.stop()
    assert own.process is not None and own.process.returncode is not None


def test_an_alert_on_the_stream_is_published_with_the_documented_payload(
    env_settings, pool, redis_client, prefix, mqtt_broker, mqtt_topics, admin_key
):
    host, port = mqtt_broker
    settings = mqtt_settings(env_settings, f"mqtt://{host}:{port}", mqtt_topics)
    topics = Topics(*mqtt_topics)
    subscriber = Subscriber(port, [f"{mqtt_topics[0]}/#"], host=host)
    try:
        store_alert(pool, redis_client, prefix, "before-start")  # history is not sent
        with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
            assert subscriber.wait_for(topics.status) == [b"online"]
            time.sleep(0.5)  # the group starts at the stream's end
            alert_id = store_alert(pool, redis_client, prefix, "t1")
            (body,) = subscriber.wait_for(topics.alert("unknown_person"))
            (per_camera,) = subscriber.wait_for(topics.camera_alert("door", "unknown_person"))
            assert client.get("/metrics").status_code == 200
            rest = client.get(f"/api/v1/alerts/{alert_id}").json()
        payload = json.loads(body)
        # The one public alert: what the REST API answers, the websocket and the webhooks send.
        assert payload == rest
        assert (payload["id"], payload["kind"], payload["camera_id"]) == (
            alert_id,
            "unknown_person",
            "door",
        )
        assert payload["captured_at"].startswith("2023-11-14T22:13:20")  # ISO, 1_700_000_000
        assert payload["identity_id"] is None and payload["display_name"] is None
        assert json.loads(per_camera) == payload
        # A clean stop says offline (the will is only for a dead publisher).
        assert subscriber.wait_for(topics.status, 2) == [b"online", b"offline"]
        assert not any(b"before-start" in p for _, p, _ in subscriber.messages)
    finally:
        subscriber.close()


def test_discovery_is_retained_follows_sightings_and_is_removed_with_the_camera(
    env_settings, pool, redis_client, mqtt_broker, mqtt_topics
):
    host, port = mqtt_broker
    settings = mqtt_settings(env_settings, f"mqtt://{host}:{port}", mqtt_topics)
    topics = Topics(*mqtt_topics)
    add_camera(pool)
    bridge = MqttBridge(settings, redis_client=redis_client, pool=pool)
    bridge.publisher.start()
    try:
        assert bridge.publisher.connected.wait(10)
        watched = [f"{mqtt_topics[1]}/#", f"{mqtt_topics[0]}/cameras/#"]
        first = Subscriber(port, watched, host=host)
        try:
            bridge.poll()
            assert wait_until(lambda: len(first.messages) >= 6)  # the broker has them all now
        finally:
            first.close()
        # A subscriber that comes later gets the configs as retained messages.
        later = Subscriber(port, watched, host=host)
        try:
            assert wait_until(lambda: len(later.messages) >= 6)
            assert all(retained for _, _, retained in later.messages)
            configs = {t: json.loads(p) for t, p, _ in later.messages if t.endswith("/config")}
            assert set(configs) == set(topics.discovery_topics("door"))
            node = topics.node("door")
            for config in configs.values():
                assert config["device"]["identifiers"] == [node]
                assert config["device"]["name"] == "Front door"
                assert config["availability"] == [
                    {
                        "topic": topics.status,
                        "payload_available": "online",
                        "payload_not_available": "offline",
                    }
                ]
                assert config["unique_id"].startswith(node) and config["state_topic"]
                domain = config["default_entity_id"].split(".")[0]
                assert config["default_entity_id"] == f"{domain}.{config['unique_id']}"
                assert f"/{domain}/{node}/" in next(t for t, c in configs.items() if c is config)
            unknown = configs[topics.discovery("binary_sensor", "door", "unknown_person")]
            spoof = configs[topics.discovery("binary_sensor", "door", "spoof_attempt")]
            assert unknown["state_topic"] == topics.camera_alert("door", "unknown_person")
            assert spoof["state_topic"] == topics.camera_alert("door", "spoof_attempt")
            assert unknown["off_delay"] == spoof["off_delay"] == settings.mqtt_event_seconds
            assert unknown["value_template"] == unknown["payload_on"] == "ON"
            last = configs[topics.discovery("sensor", "door", "last_person")]
            assert last["state_topic"] == topics.last_person("door")
            status = json.loads(later.on(topics.camera_status("door"))[0])
            assert status["camera_id"] == "door" and status["status"] == "unknown"
            assert "source" not in status  # it may hold credentials
            nobody = json.loads(later.on(topics.last_person("door"))[0])
            assert nobody["name"] is None and nobody["sighting_id"] is None
        finally:
            later.close()

        live = Subscriber(port, [f"{mqtt_topics[0]}/#"], host=host)
        try:
            with pool.connection() as conn:
                ada = identities.create_identity(conn, display_name="Ada Lovelace")
                sighting = sightings.upsert_sighting(
                    conn,
                    camera_id="door",
                    track_id="tk-1",
                    identity_id=ada["id"],
                    first_seen=time.time() - 2,
                    last_seen=time.time(),
                    checks=3,
                    votes=3,
                    best_distance=0.3,
                    liveness="live",
                    ended=False,
                )
            assert sighting is not None
            bridge.poll()
            (last_person,) = live.wait_for(topics.last_person("door"), 2)[-1:]
            shown = json.loads(last_person)
            assert (shown["name"], shown["known"], shown["sighting_id"]) == (
                "Ada Lovelace",
                True,
                sighting["id"],
            )
            (announced,) = live.wait_for(topics.sightings)
            assert json.loads(announced)["sighting_id"] == sighting["id"]
            assert b"embedding" not in announced and b"jpeg" not in announced
            # Erasing the person takes their name off the retained last-person topic.
            with pool.connection() as conn:
                identities.delete_identity(conn, ada["id"])
            bridge.poll()
            assert len(live.wait_for(topics.last_person("door"), 3)) == 3
            erased = json.loads(live.on(topics.last_person("door"))[-1])
            assert erased["name"] is None and erased["sighting_id"] is None
        finally:
            live.close()

        with pool.connection() as conn:
            cameras.delete_camera(conn, "door")
        bridge.poll()
        time.sleep(0.5)
        after = Subscriber(port, [f"{mqtt_topics[1]}/#", f"{mqtt_topics[0]}/cameras/#"], host=host)
        try:
            time.sleep(1.0)  # retained messages arrive at once; there should be none
            assert after.messages == []
        finally:
            after.close()
        assert not redis_client.smembers(bridge.keys.mqtt_discovered)
    finally:
        bridge.publisher.stop()


PUBLISHER = """
import sys, time
from services.dashboard.mqtt import MqttPublisher, Topics
from watchpost.settings import DashboardSettings
settings = DashboardSettings(mqtt_url=sys.argv[1], mqtt_topic_prefix=sys.argv[2])
publisher = MqttPublisher(settings, Topics(sys.argv[2], None))
publisher.start()
assert publisher.connected.wait(10)
print("connected", flush=True)
time.sleep(600)
"""


def test_availability_goes_offline_through_the_will_when_the_publisher_dies(
    mqtt_broker, mqtt_topics
):
    host, port = mqtt_broker
    topics = Topics(*mqtt_topics)
    subscriber = Subscriber(port, [topics.status], host=host)
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, f"mqtt://{host}:{port}", mqtt_topics[0]],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "connected"
        assert subscriber.wait_for(topics.status) == [b"online"]
        process.kill()  # no goodbye: the broker publishes the will
        assert subscriber.wait_for(topics.status, 2) == [b"online", b"offline"]
    finally:
        process.kill()
        process.wait(10)
        subscriber.close()
    retained = Subscriber(port, [topics.status], host=host)
    try:
        assert retained.wait_for(topics.status) == [b"offline"]  # and it stays retained
    finally:
        retained.close()


@pytest.mark.parametrize("broker", ["refusing", "silent"])
def test_a_dead_broker_costs_a_counter_and_never_the_alert_path(
    broker, env_settings, pool, redis_client, prefix, mqtt_topics, admin_key
):
    """Nobody listens on the port (refused), or a listener takes the connection and never
    answers (a hung broker): alerts reach PostgreSQL and the websocket all the same."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    if broker == "silent":
        silent.listen(8)  # connections complete in the backlog; nothing ever reads them
    url = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
    settings = mqtt_settings(env_settings, url, mqtt_topics, mqtt_max_queued=2)
    dropped = counter("watchpost_mqtt_messages_total", result="dropped")
    failures = counter("watchpost_mqtt_connect_failures_total")
    try:
        with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
            time.sleep(0.5)
            with client.websocket_connect("/api/v1/alerts/ws") as ws:
                stored = [store_alert(pool, redis_client, prefix, f"t{n}") for n in range(5)]
                assert [ws.receive_json()["alert"]["id"] for _ in stored] == stored
            assert [a["id"] for a in client.get("/api/v1/alerts").json()] == stored[::-1]
            # 5 alerts x 2 topics, 2 held for the broker: 8 dropped.
            assert wait_until(
                lambda: counter("watchpost_mqtt_messages_total", result="dropped") - dropped >= 8
            )
            if broker == "refusing":
                assert counter("watchpost_mqtt_connect_failures_total") > failures
            assert client.get("/healthz").json()["status"] == "ok"
    finally:
        silent.close()


def test_a_broker_killed_mid_run_gets_what_was_held_when_it_returns(
    tmp_path, env_settings, pool, redis_client, prefix, mqtt_topics, admin_key
):
    broker = Mosquitto(tmp_path / "broker").start()
    topics = Topics(*mqtt_topics)
    settings = mqtt_settings(env_settings, f"mqtt://127.0.0.1:{broker.port}", mqtt_topics)
    try:
        with TestClient(dashboard_app(settings), headers=key_headers(admin_key)) as client:
            bridge = client.app.state.mqtt  # type: ignore[attr-defined]
            assert bridge.publisher.connected.wait(10)
            time.sleep(0.5)
            broker.kill()
            assert wait_until(lambda: not bridge.publisher.connected.is_set())
            with client.websocket_connect("/api/v1/alerts/ws") as ws:
                held = store_alert(pool, redis_client, prefix, "while-down")
                assert ws.receive_json()["alert"]["id"] == held  # the alert path goes on
            broker.start()  # same port; the bridge reconnects within its back-off (1 s)
            subscriber = Subscriber(broker.port, [f"{mqtt_topics[0]}/alerts/#"])
            try:
                (body,) = subscriber.wait_for(topics.alert("unknown_person"))
                assert json.loads(body)["id"] == held
            finally:
                subscriber.close()
    finally:
        broker.stop()


def test_credentials_are_required_and_used(tmp_path, env_settings, pool, redis_client, mqtt_topics):
    password = "s3cret-" + os.urandom(6).hex()
    broker = Mosquitto(tmp_path / "broker", users={"watchpost": password}).start()
    topics = Topics(*mqtt_topics)
    try:
        subscriber = Subscriber(
            broker.port, [topics.status], username="watchpost", password=password
        )
        try:
            refused = counter("watchpost_mqtt_connect_failures_total")
            wrong = MqttBridge(
                mqtt_settings(
                    env_settings,
                    f"mqtt://watchpost:wrong-{password}@127.0.0.1:{broker.port}",
                    mqtt_topics,
                ),
                redis_client=redis_client,
                pool=pool,
            )
            wrong.publisher.start()
            try:
                assert wait_until(
                    lambda: counter("watchpost_mqtt_connect_failures_total") > refused
                )
                assert not wrong.publisher.connected.is_set()
            finally:
                wrong.publisher.stop()
            right = MqttBridge(
                mqtt_settings(
                    env_settings,
                    f"mqtt://watchpost:{password}@127.0.0.1:{broker.port}",
                    mqtt_topics,
                ),
                redis_client=redis_client,
                pool=pool,
            )
            right.publisher.start()
            try:
                assert right.publisher.connected.wait(10)
                assert subscriber.wait_for(topics.status) == [b"online"]
            finally:
                right.publisher.stop()
        finally:
            subscriber.close()
    finally:
        broker.stop()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem")
    )

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=watchpost test CA",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(folder / "ext"),
    )
    return ca, cert, key


def test_tls_with_the_brokers_ca(tmp_path, env_settings, pool, redis_client, mqtt_topics):
    ca, cert, key = make_certificates(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "broker", tls=(ca, cert, key)).start()
    try:
        url = f"mqtts://127.0.0.1:{broker.port}"
        trusted = MqttBridge(
            mqtt_settings(env_settings, url, mqtt_topics, mqtt_ca_file=ca),
            redis_client=redis_client,
            pool=pool,
        )
        trusted.publisher.start()
        try:
            assert trusted.publisher.connected.wait(10)
        finally:
            trusted.publisher.stop()
        failures = counter("watchpost_mqtt_connect_failures_total")
        untrusted = MqttBridge(  # the system's CAs do not know this one
            mqtt_settings(env_settings, url, mqtt_topics), redis_client=redis_client, pool=pool
        )
        untrusted.publisher.start()
        try:
            assert wait_until(lambda: counter("watchpost_mqtt_connect_failures_total") > failures)
            assert not untrusted.publisher.connected.is_set()
        finally:
            untrusted.publisher.stop()
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://broker:1883", "not mqtt:// or mqtts://"),
        ("mqtt://", "not mqtt:// or mqtts://"),
        ("mqtt://broker:99999", "Port out of range"),
        ("mqtt://watchpost:changeme@broker", "placeholder password"),
    ],
)
def test_mqtt_settings_are_checked(url, reason):
    with pytest.raises(ValidationError, match=reason):
        DashboardSettings(mqtt_url=url)


@pytest.mark.parametrize("setting", ["mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"])
def test_a_missing_tls_file_is_refused_at_start_not_at_the_first_connect(setting, tmp_path):
    with pytest.raises(ValidationError, match=f"{setting}[\\s\\S]*Path does not point to a file"):
        DashboardSettings(mqtt_url="mqtts://broker", **{setting: tmp_path / "absent.pem"})
    present = tmp_path / "present.pem"
    present.write_text("-----BEGIN CERTIFICATE-----\n")
    assert getattr(DashboardSettings(mqtt_url="mqtts://broker", **{setting: present}), setting)


def test_mqtt_is_off_unless_a_url_is_set():
    assert DashboardSettings(mqtt_url="").mqtt_url is None
    assert DashboardSettings().mqtt_url is None
    assert DashboardSettings(mqtt_discovery_prefix="").mqtt_discovery_prefix is None
    with pytest.raises(ValidationError, match="mqtt_topic_prefix"):
        DashboardSettings(mqtt_topic_prefix="watchpost/#")  # no wildcards in a topic


def test_two_replicas_of_one_name_stay_connected_side_by_side(
    env_settings, pool, redis_client, mqtt_broker, mqtt_topics
):
    """One client id would make the broker throw the first off when the second connects."""
    host, port = mqtt_broker
    settings = mqtt_settings(env_settings, f"mqtt://{host}:{port}", mqtt_topics)
    first, second = (MqttBridge(settings, redis_client=redis_client, pool=pool) for _ in range(2))
    first.publisher.start()
    second.publisher.start()
    try:
        assert first.publisher.connected.wait(10) and second.publisher.connected.wait(10)
        time.sleep(1.0)
        assert first.publisher.connected.is_set() and second.publisher.connected.is_set()
    finally:
        first.publisher.stop()
        second.publisher.stop()


def test_a_camera_deleted_while_the_bridge_was_down_is_removed_when_it_returns(
    env_settings, pool, redis_client, mqtt_broker, mqtt_topics
):
    host, port = mqtt_broker
    settings = mqtt_settings(env_settings, f"mqtt://{host}:{port}", mqtt_topics)
    topics = Topics(*mqtt_topics)
    add_camera(pool, "yard", "Yard")
    before = MqttBridge(settings, redis_client=redis_client, pool=pool)
    before.publisher.start()
    try:
        assert before.publisher.connected.wait(10)
        before.poll()
    finally:
        before.publisher.stop()
    with pool.connection() as conn:
        cameras.delete_camera(conn, "yard")
    after = MqttBridge(settings, redis_client=redis_client, pool=pool)
    after.publisher.start()
    try:
        assert after.publisher.connected.wait(10)
        after.poll()
        time.sleep(0.5)
    finally:
        after.publisher.stop()
    left = Subscriber(port, [f"{mqtt_topics[1]}/#", f"{mqtt_topics[0]}/cameras/#"], host=host)
    try:
        time.sleep(1.0)  # retained messages arrive at once; there should be none
        assert left.messages == [], [t for t, _, _ in left.messages]
    finally:
        left.close()
    assert topics.discovery("sensor", "yard", "last_person").endswith("/last_person/config")


def test_without_a_discovery_prefix_no_configs_are_published(
    env_settings, pool, redis_client, mqtt_broker, mqtt_topics
):
    host, port = mqtt_broker
    settings = mqtt_settings(env_settings, f"mqtt://{host}:{port}", (mqtt_topics[0], ""))
    add_camera(pool)
    bridge = MqttBridge(settings, redis_client=redis_client, pool=pool)
    node = bridge.topics.node("door")
    bridge.publisher.start()
    try:
        assert bridge.publisher.connected.wait(10)
        bridge.poll()
        time.sleep(0.5)
        seen = Subscriber(port, [f"homeassistant/+/{node}/#", f"{mqtt_topics[0]}/#"], host=host)
        try:
            assert seen.wait_for(bridge.topics.camera_status("door"))  # the state is there
            time.sleep(0.5)
            assert not [t for t, _, _ in seen.messages if t.endswith("/config")]
        finally:
            seen.close()
    finally:
        bridge.publisher.stop()
