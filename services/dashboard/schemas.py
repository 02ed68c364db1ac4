"""Request and response shapes of the dashboard API (separate from storage rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from watchpost.messages import AlertKind, LivenessState


class IdentityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=200)
    login_name: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class IdentityPublic(BaseModel):
    id: int
    display_name: str
    login_name: str | None
    metadata: dict[str, Any]
    face_count: int = 0
    created_at: datetime
    updated_at: datetime


class FaceSamplePublic(BaseModel):
    id: int
    identity_id: int
    box: list[int]
    created_at: datetime


class AlertPublic(BaseModel):
    id: int
    kind: AlertKind
    camera_id: str
    track_id: str
    identity_id: int | None
    display_name: str | None
    claimed_login: str | None
    distance: float | None
    liveness: LivenessState
    reason: str
    details: dict[str, Any]
    captured_at: datetime
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    has_snapshot: bool
    snapshot_url: str | None = None


class CameraPublic(BaseModel):
    id: str
    name: str
    source: str
    enabled: bool
    claimed_login: str | None
    status: str
    fps: float | None
    last_frame_at: datetime | None
    last_error: str | None


class Problem(BaseModel):
    detail: str
