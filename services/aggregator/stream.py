"""Join recognition and liveness verdicts per (camera, track), decide alerts, store them with a
snapshot in Postgres, then publish them. The verdict is acked only after that (by the worker).

Evidence is per (camera, track) in this process: a camera's verdicts are on one shard, which one
replica owns at a time (watchpost/shards.py). A replica that takes a shard over rebuilds its
tracks from the shard's recent verdicts already handled (`take_over`), raising nothing: the
alerts they led to are stored and published. Alert ids are the rows' ids, one row per (camera,
track, kind), so a decision taken again finds its alert, and an alert is published once
(`publish_once`, a marker per alert id)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
import redis
from prometheus_client import Counter

from services.aggregator.policy import (
    AlertDecision,
    AlertPolicy,
    Claim,
    TrackEvidence,
    cooldown_key,
    decide_alerts,
    recognition_of,
    vote_identity,
)
from services.aggregator.sightings import SightingRecorder, SightingState
from watchpost.db import alerts, cameras
from watchpost.db.pool import Pool
from watchpost.images import crop_jpeg, draw_box
from watchpost.keys import shard_of
from watchpost.messages import AlertKind, LivenessVerdict, RecognitionVerdict
from watchpost.settings import AggregatorSettings
from watchpost.streams import Delivery, entry_ms, publish_once

log = logging.getLogger(__name__)

ALERTS = Counter("watchpost_alerts_total", "Alerts stored", ["kind"])
SUPPRESSED = Counter(
    "watchpost_alerts_suppressed_total", "Alerts held back by a cool-down", ["kind"]
)
COLOURS = {
    AlertKind.UNKNOWN_PERSON: "#d97706",
    AlertKind.SPOOF_ATTEMPT: "#dc2626",
    AlertKind.IDENTITY_MISMATCH: "#9333ea",
    AlertKind.ACCESS_GRANTED: "#16a34a",
    AlertKind.IMPOSSIBLE_TRAVEL: "#0891b2",
}


def policy_from(settings: AggregatorSettings) -> AlertPolicy:
    return AlertPolicy(
        min_unknown_votes=settings.aggregator_unknown_min_checks,
        grant_min_checks=settings.aggregator_grant_min_checks,
        grant_min_margin=settings.aggregator_grant_min_margin,
        grant_min_share=settings.aggregator_grant_min_share,
        min_face_px=settings.aggregator_min_face_px,
        min_sharpness=settings.aggregator_min_sharpness,
        max_yaw=settings.aggregator_max_yaw,
    )


@dataclass
class _Track:
    evidence: TrackEvidence
    snapshot: RecognitionVerdict | None = None
    snapshot_jpeg: bytes | None = None
    touched: float = 0.0
    counted: set[bytes] = field(default_factory=set)  # stream entries already in the evidence
    sighting: SightingState = field(default_factory=SightingState)


class AlertAggregator:
    def __init__(
        self, settings: AggregatorSettings, *, redis_client: redis.Redis, pool: Pool
    ) -> None:
        self.settings = settings
        self.redis = redis_client
        self.pool = pool
        self.keys = settings.keys
        self.policy = policy_from(settings)
        self.tracks: dict[tuple[str, str], _Track] = {}
        self._claims: dict[str, tuple[float, Claim | None]] = {}
        self._orphans_checked = float("-inf")  # sightings left open: checked at the start
        self._groups_merged = float("-inf")  # close unknown groups: merged at the start too
        self.sightings = SightingRecorder(
            settings,
            redis_client=redis_client,
            pool=pool,
            publish_alert=self._published,
            policy=self.policy,
        )

    def handle(self, delivery: Delivery[RecognitionVerdict | LivenessVerdict]) -> None:
        self._absorb(delivery, resume=False)

    def take_over(
        self, shard: int, replay: Sequence[Delivery[RecognitionVerdict | LivenessVerdict]]
    ) -> None:
        """This replica now owns `shard`: rebuild its tracks' evidence (and which alerts they
        raised) from verdicts already handled, raising, labelling and writing nothing."""
        self.give_up(shard)
        if not replay:
            return
        # Tracks quiet for the track timeout before the newest verdict are over: the replica
        # that had them ended their sightings already.
        cutoff = (
            entry_ms(replay[-1].entry_id) - self.settings.aggregator_track_timeout_seconds * 1000
        )
        last: dict[tuple[str, str], int] = {}
        for delivery in replay:
            key = (delivery.message.camera_id, delivery.message.track_id)
            last[key] = entry_ms(delivery.entry_id)
        for delivery in replay:
            if last[(delivery.message.camera_id, delivery.message.track_id)] >= cutoff:
                self._absorb(delivery, resume=True)

    def give_up(self, shard: int) -> None:
        """Forget the shard's tracks (their sightings stay open for the next owner)."""
        mine = self.keys.shards
        for key in [k for k in self.tracks if shard_of(k[0], mine) == shard]:
            del self.tracks[key]

    def _absorb(
        self, delivery: Delivery[RecognitionVerdict | LivenessVerdict], *, resume: bool
    ) -> None:
        verdict = delivery.message
        track = self._track(verdict.camera_id, verdict.track_id)
        fresh = delivery.entry_id not in track.counted
        if not fresh:
            pass  # retried after an outage: its evidence is in already, only the alert is due
        elif isinstance(verdict, RecognitionVerdict):
            track.evidence.recognitions.append(recognition_of(verdict))
            if track.snapshot is None or verdict.box.width > track.snapshot.box.width:
                track.snapshot, track.snapshot_jpeg = verdict, delivery.image
        elif isinstance(verdict, LivenessVerdict):
            track.evidence.liveness = verdict.state
            track.evidence.liveness_reason = verdict.reason
        track.counted.add(delivery.entry_id)
        claim = self._claim(verdict.camera_id)
        for decision in decide_alerts(track.evidence, self.policy, claim):
            if not resume:  # replayed: it was raised (or held back) the first time
                self._raise(track, decision, claim, trigger=verdict)
            track.evidence.alerted.add(decision.kind)
        if resume:
            if fresh:
                self.sightings.resume(track.sighting, verdict, delivery.image)
            return
        self._label(verdict.camera_id, verdict.track_id, track.evidence)
        if fresh:  # every identified track on record, alarm or not
            self.sightings.observe(track.sighting, track.evidence, verdict, delivery.image)

    def _label(self, camera_id: str, track_id: str, evidence: TrackEvidence) -> None:
        """What the live view draws next to this track's box."""
        vote = vote_identity(evidence.recognitions)
        label = {"name": vote.display_name if vote else None, "liveness": evidence.liveness}
        self.redis.set(self.keys.track_label(camera_id, track_id), json.dumps(label), ex=60)

    def expire(self) -> None:
        """Tracks without news for the timeout are over: their sightings are written a last
        time (unknown ones grouped), then their evidence is forgotten."""
        now = time.monotonic()
        cutoff = now - self.settings.aggregator_track_timeout_seconds
        for key in [k for k, t in self.tracks.items() if t.touched < cutoff]:
            self._end(key)
        if now - self._orphans_checked >= self.settings.aggregator_track_timeout_seconds:
            self._orphans_checked = now
            if ended := self.sightings.finish_orphans():
                log.info("ended %d sightings left open by a stopped aggregator", ended)
        every = self.settings.aggregator_unknown_group_merge_seconds
        if every > 0 and now - self._groups_merged >= every:
            self._groups_merged = now
            self.sightings.merge_groups()

    def end_all(self) -> None:
        """End every open track now (at shutdown, and when a replay is over)."""
        for key in list(self.tracks):
            self._end(key)

    def _end(self, key: tuple[str, str]) -> None:
        track = self.tracks[key]
        try:
            self.sightings.end(track.sighting, track.evidence)
        except psycopg.OperationalError:
            raise  # the database is away: the track is kept and ended on a later round
        except psycopg.Error:  # anything else would fail again: log it, do not block the rest
            log.exception("the sighting of track %s/%s could not be finished", *key)
        del self.tracks[key]

    def _published(self, row: dict, created: bool) -> None:
        """Announce a stored alert, once (a redelivery finds it published)."""
        self._publish(row)
        if created:
            ALERTS.labels(row["kind"]).inc()
            log.info(
                "alert %s %s on %s/%s", row["id"], row["kind"], row["camera_id"], row["track_id"]
            )

    def _publish(self, row: dict) -> None:
        event = alerts.alert_from_row(row)
        publish_once(
            self.redis, self.keys.alerts, event, marker=self.keys.alert_published(event.alert_id)
        )

    def _track(self, camera_id: str, track_id: str) -> _Track:
        track = self.tracks.setdefault((camera_id, track_id), _Track(TrackEvidence()))
        track.touched = time.monotonic()
        return track

    def _claim(self, camera_id: str) -> Claim | None:
        cached = self._claims.get(camera_id)
        refresh = self.settings.aggregator_claims_refresh_seconds
        if cached is None or time.monotonic() - cached[0] > refresh:
            with self.pool.connection() as conn:
                found = cameras.claimed_identity(conn, camera_id)
            cached = (time.monotonic(), Claim(*found) if found else None)
            self._claims[camera_id] = cached
        return cached[1]

    def _raise(
        self,
        track: _Track,
        decision: AlertDecision,
        claim: Claim | None,
        *,
        trigger: RecognitionVerdict | LivenessVerdict,
    ) -> None:
        shot = track.snapshot
        # The policy decides nothing before a recognition verdict, which carries the frame.
        assert shot is not None and track.snapshot_jpeg is not None
        # Who the alert names is the track's vote, not whichever verdict had the best frame.
        vote = vote_identity(track.evidence.recognitions)
        known = vote if decision.kind != AlertKind.UNKNOWN_PERSON else None
        identity = known.identity_id if known else None
        distance = known.best_distance if known else shot.distance
        if decision.identity_id is not None:  # an access grant names its evidence's winner
            identity, distance = decision.identity_id, decision.distance
        cooldown = self.keys.cooldown(cooldown_key(decision.kind, shot.camera_id, identity))
        if self.redis.exists(cooldown):
            SUPPRESSED.labels(decision.kind).inc()
            log.info(
                "%s on %s/%s held back by its cool-down",
                decision.kind,
                shot.camera_id,
                shot.track_id,
            )
            return
        voted_name = vote.display_name if vote else None
        name = (decision.display_name or voted_name) if identity else None
        label = f"{decision.kind}: {name}" if name else decision.kind
        snapshot = draw_box(track.snapshot_jpeg, shot.box.as_tuple(), label, COLOURS[decision.kind])
        with self.pool.connection() as conn:
            row, created = alerts.upsert_alert(
                conn,
                kind=decision.kind,
                camera_id=shot.camera_id,
                track_id=shot.track_id,
                captured_at=shot.captured_at,
                identity_id=identity,
                display_name=name,
                claimed_login=claim.login_name if claim else None,
                distance=distance,
                liveness=track.evidence.liveness,
                reason=decision.reason,
                details={
                    "box": shot.box.as_tuple(),
                    "frame_seq": shot.frame_seq,
                    "runner_up_distance": shot.runner_up_distance,
                    "threshold": shot.threshold,
                    # When the frame that completed the evidence was captured, and when its
                    # verdict was published: the pipeline's latency, stage by stage.
                    "evidence_at": trigger.captured_at,
                    "verdict_at": trigger.decided_at,
                    "verdict_kind": trigger.kind,
                },
                snapshot_jpeg=snapshot,
                face_jpeg=crop_jpeg(track.snapshot_jpeg, shot.box.as_tuple()),
            )
        # Published when the row existed too (a redelivery after a crash between the write and
        # the publish), but once per alert id.
        self._publish(row)
        seconds = self.settings.aggregator_cooldowns.get(decision.kind, 0)
        if seconds > 0:  # set only once the alert is stored: a crash before it loses nothing
            self.redis.set(cooldown, row["id"], ex=max(1, round(seconds)))
        if created:
            ALERTS.labels(decision.kind).inc()
            log.info(
                "alert %s %s on %s/%s", row["id"], decision.kind, shot.camera_id, shot.track_id
            )
