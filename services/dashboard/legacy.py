"""`POST /dashboard`: the alert shape older capture clients send,
`{"login_name", "time", "type", "image"}` with the image as a base64 JPEG. Validated, stored as
an alert like any other (camera `legacy`) and pushed to the live page. Senders hold operator
keys; the alert records which key sent it (`details.sender`) and the audit log has an entry."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.dashboard.auth import Operator, audit, require
from services.dashboard.deps import ConnDep, KeysDep, RedisDep, SettingsDep
from services.dashboard.schemas import AlertPublic, Name, Problem
from watchpost.auth import Role
from watchpost.db import alerts
from watchpost.images import ImageError, decode_upload
from watchpost.messages import AlertKind
from watchpost.streams import publish

# Legacy senders are machines holding an operator key.
router = APIRouter(dependencies=[Depends(require(Role.operator))])

# What older clients call each kind.
LEGACY_KINDS: dict[str, AlertKind] = {
    "unknown": AlertKind.UNKNOWN_PERSON,
    "unknown_person": AlertKind.UNKNOWN_PERSON,
    "intruder": AlertKind.UNKNOWN_PERSON,
    "spoof": AlertKind.SPOOF_ATTEMPT,
    "spoof_attempt": AlertKind.SPOOF_ATTEMPT,
    "fake": AlertKind.SPOOF_ATTEMPT,
    "mismatch": AlertKind.IDENTITY_MISMATCH,
    "identity_mismatch": AlertKind.IDENTITY_MISMATCH,
    "granted": AlertKind.ACCESS_GRANTED,
    "access_granted": AlertKind.ACCESS_GRANTED,
}


class LegacyAlert(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    login_name: Name
    time: datetime = Field(description="ISO 8601 or Unix seconds")
    type: str = Field(description=f"one of {sorted(LEGACY_KINDS)}")
    image: str = Field(min_length=4, description="base64 JPEG")

    @field_validator("time")
    @classmethod
    def _utc_when_naive(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value.lower() not in LEGACY_KINDS:
            raise ValueError(f"unknown type {value!r}; expected one of {sorted(LEGACY_KINDS)}")
        return value.lower()


@router.post(
    "/dashboard",
    status_code=201,
    response_model=AlertPublic,
    tags=["legacy"],
    responses={422: {"model": Problem}},
)
def legacy_alert(
    body: LegacyAlert,
    conn: ConnDep,
    redis_client: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    who: Operator,
    request: Request,
) -> AlertPublic:
    """Store an alert sent in the legacy shape; the same post twice is one alert."""
    try:
        jpeg = base64.b64decode(body.image, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, detail="image is not valid base64") from None
    if not jpeg.startswith(b"\xff\xd8"):
        raise HTTPException(422, detail="image is not a JPEG")
    try:
        decode_upload(jpeg, max_bytes=settings.dashboard_max_upload_bytes)
    except ImageError as exc:
        raise HTTPException(422, detail=f"image: {exc}") from None
    kind = LEGACY_KINDS[body.type]
    # The natural key of a legacy alert is its content, so a client that retries a post
    # (it cannot know whether the first one landed) does not make a second alert.
    digest = hashlib.sha256(
        f"{body.login_name}|{body.time.isoformat()}|{kind}".encode()
    ).hexdigest()
    row, created = alerts.upsert_alert(
        conn,
        kind=kind,
        camera_id="legacy",
        track_id=f"legacy-{digest[:24]}",
        captured_at=body.time.timestamp(),
        claimed_login=body.login_name,
        # No name in free text: erasing the person clears claimed_login, not sentences.
        reason="reported by a legacy client",
        details={"sender": who.actor},
        snapshot_jpeg=jpeg,
    )
    if created:
        audit(conn, request, who, "legacy_alert", "alert", row["id"], kind=kind)
    conn.commit()
    if created:
        publish(redis_client, keys.alerts, alerts.alert_from_row(row))
    return alerts.alert_from_row(row)
