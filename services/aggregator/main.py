"""Aggregator service: verdicts in, alerts out (Postgres first, then the alerts stream)."""

from __future__ import annotations

from fastapi import FastAPI

from services.aggregator.stream import AlertAggregator
from watchpost.consumers import stream_worker
from watchpost.keys import Group
from watchpost.service import BackgroundLoop, Resources, service_app
from watchpost.settings import AggregatorSettings


def create_app(settings: AggregatorSettings | None = None) -> FastAPI:
    settings = settings or AggregatorSettings()

    def build(resources: Resources) -> list[BackgroundLoop]:
        aggregator = AlertAggregator(
            settings, redis_client=resources.redis, pool=resources.require_pool()
        )
        worker = stream_worker(
            settings,
            resources.redis,
            settings.keys.verdicts,  # the shards this replica owns
            group=Group.AGGREGATOR,
            handle=aggregator.handle,
            housekeeping=aggregator.expire,
            state=aggregator,
        )
        return [BackgroundLoop("aggregator", worker.run)]

    return service_app(settings, needs_db=True, build_loops=build, title="Watchpost aggregator")
