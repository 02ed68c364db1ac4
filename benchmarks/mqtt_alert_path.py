"""Does MQTT cost the alert path anything? Alert latency, stored to the dashboard's websocket.

    .venv/bin/python -m benchmarks.mqtt_alert_path [--alerts 200] [--broker 127.0.0.1:1883]

Each alert is written as the aggregator writes one (INSERT into PostgreSQL, XADD to the alerts
stream) and timed until it arrives on a websocket of a dashboard running in this process, in
runs on the same Redis and PostgreSQL (a fresh key prefix and schema each): MQTT off (the
reference), a live broker, a port where nobody listens, and a listener that takes the connection
and never answers (a hung broker); each twice, the second round in the reverse order. Reported
per run: median and p95 latency over both rounds and their ratios to the reference's; with the
live broker, how many of the 2 x N alerts reached a subscriber. The first 10 alerts of each run
are not timed. Needs the local Redis and PostgreSQL (WATCHPOST_TEST_REDIS_URL /
WATCHPOST_TEST_DATABASE_URL). Last line: JSON.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import redis
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.conninfo import make_conninfo

from benchmarks.report import print_json
from services.dashboard.main import create_app
from watchpost.auth import create_key
from watchpost.db import alerts, apply_migrations, open_pool
from watchpost.keys import Keys
from watchpost.messages import AlertKind
from watchpost.progress import bar
from watchpost.settings import DashboardSettings
from watchpost.streams import publish

REDIS = os.environ.get("WATCHPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get(
    "WATCHPOST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def received(host: str, port: int, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, 1)
    client.on_message = lambda c, u, message: got.append(bytes(message.payload))
    client.connect(host, port)
    client.loop_start()
    time.sleep(0.5)
    return client, got


WARM_UP = 10  # alerts per run not timed (connections, first queries)


def run(
    name: str, url: str | None, count: int, progress, task, broker: str = ""
) -> tuple[list[float], int | None]:
    """The timed latencies (ms) of one run, and how many alerts reached the live broker's
    subscriber (None without one)."""
    prefix, schema = f"wpb-{uuid.uuid4().hex[:8]}", f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    database = make_conninfo(POSTGRES, options=f"-csearch_path={schema}")
    client = redis.Redis.from_url(REDIS)
    subscriber = None
    try:
        apply_migrations(database)
        topics = f"wpb/{prefix}"
        if url and broker and url == f"mqtt://{broker}":
            host, _, port = broker.rpartition(":")
            subscriber, got = received(host, int(port), f"{topics}/alerts/#")
        settings = DashboardSettings(
            redis_url=REDIS,
            database_url=database,
            stream_prefix=prefix,
            consumer_name="bench",
            dashboard_service_token="bench-" + uuid.uuid4().hex,
            mqtt_url=url,
            mqtt_topic_prefix=topics,
            mqtt_discovery_prefix=None,
        )
        with open_pool(database, min_size=1, max_size=2) as pool:
            with pool.connection() as conn:
                key, _ = create_key(conn, name="bench", role="admin")
            headers = {"Authorization": f"Bearer {key}"}
            latencies = []
            with TestClient(create_app(settings), headers=headers) as http:
                time.sleep(1.0)  # the consumer groups start at the stream's end
                with http.websocket_connect("/api/v1/alerts/ws") as ws:
                    for n in range(WARM_UP + count):
                        started = time.perf_counter()
                        with pool.connection() as conn:
                            row, _ = alerts.upsert_alert(
                                conn,
                                kind=AlertKind.UNKNOWN_PERSON,
                                camera_id="door",
                                track_id=f"t{n}",
                                captured_at=time.time(),
                            )
                        publish(client, Keys(prefix).alerts, alerts.alert_from_row(row))
                        assert ws.receive_json()["alert"]["id"] == row["id"]
                        if n >= WARM_UP:
                            latencies.append((time.perf_counter() - started) * 1000)
                        progress.update(task, advance=1)
                time.sleep(1.0)  # let the bridge hand over the last ones
        return latencies, (len(got) - WARM_UP) if subscriber is not None else None
    finally:
        if subscriber is not None:
            subscriber.disconnect()
            subscriber.loop_stop()
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--broker", default="127.0.0.1:1883", help="a live broker, host:port")
    args = parser.parse_args()
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # connections complete in the backlog; nothing ever answers
    runs = {
        "mqtt_off": None,
        "live_broker": f"mqtt://{args.broker}",
        "refusing_port": f"mqtt://127.0.0.1:{refusing.getsockname()[1]}",
        "hung_broker": f"mqtt://127.0.0.1:{hung.getsockname()[1]}",
    }
    # Twice each, the second round in the reverse order, so neither a slow start nor the
    # machine's load drifting over the minute favours one run.
    timed: dict[str, list[float]] = {name: [] for name in runs}
    reached: dict[str, int] = {}
    order = list(runs)
    with bar() as progress:
        for round_ in (order, order[::-1]):
            for name in round_:
                task = progress.add_task(name, total=WARM_UP + args.alerts)
                latencies, got = run(
                    name, runs[name], args.alerts, progress, task, broker=args.broker
                )
                timed[name] += latencies
                if got is not None:
                    reached[name] = reached.get(name, 0) + got
    results: list[dict[str, Any]] = []
    for name in order:
        latencies = sorted(timed[name])
        result = {
            "run": name,
            "median_ms": statistics.median(latencies),
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        }
        if name in reached:
            result["reached_broker"] = reached[name]
        results.append(result)
    refusing.close()
    hung.close()
    reference = results[0]
    for r in results:
        r["median_vs_off"] = r["median_ms"] / reference["median_ms"]
        r["p95_vs_off"] = r["p95_ms"] / reference["p95_ms"]
        print(
            f"{r['run']:>14}: median {r['median_ms']:.2f} ms (x{r['median_vs_off']:.2f}), "
            f"p95 {r['p95_ms']:.2f} ms (x{r['p95_vs_off']:.2f})"
            + (f", {r['reached_broker']} at the broker" if "reached_broker" in r else "")
        )
    print_json({"alerts": args.alerts, "runs": results})


if __name__ == "__main__":
    main()
