"""Request and response shapes of the dashboard API (separate from storage rows)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from watchpost.db.cameras import CameraStatus
from watchpost.messages import AlertEvent, AlertKind, LivenessState

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # names and sources are one line


def printable(value: str) -> str:
    """Refuse control characters (PostgreSQL cannot store NUL; the rest only hide things)."""
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _no_nul_anywhere(value: Any) -> Any:
    """JSON metadata: no NUL in any key or string (jsonb cannot store it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and "\x00" in item:
            raise ValueError("NUL characters are not allowed")
    return value


# A person's or a camera's name: trimmed, 1-200 printable characters.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(printable),
]
Metadata = Annotated[dict[str, Any], AfterValidator(_no_nul_anywhere)]


class IdentityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: Name
    login_name: Name | None = None
    metadata: Metadata = Field(default_factory=dict)


class IdentityUpdate(BaseModel):
    """Fields to change; a field left out stays as it is (send null to clear a login name)."""

    model_config = ConfigDict(extra="forbid")

    display_name: Name | None = None
    login_name: Name | None = None
    metadata: Metadata | None = None


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


class FaceRejection(BaseModel):
    filename: str
    reason: str


class EnrolmentResult(BaseModel):
    """Per photo: accepted ones are stored, rejected ones say why (status 422 if any)."""

    detail: str = ""
    accepted: list[FaceSamplePublic]
    rejected: list[FaceRejection]


class AlertEnrol(BaseModel):
    """Enrol the face of an alert: into an existing identity, or a new one by name."""

    model_config = ConfigDict(extra="forbid")

    identity_id: int | None = None
    display_name: Name | None = None
    login_name: Name | None = None

    @model_validator(mode="after")
    def _one_target(self) -> AlertEnrol:
        if (self.identity_id is None) == (self.display_name is None):
            raise ValueError("give either identity_id or display_name (for a new identity)")
        return self


class AlertEnrolled(BaseModel):
    identity: IdentityPublic
    face: FaceSamplePublic


class EnrolTarget(AlertEnrol):
    """Name a group of unknown faces: enrol them into an existing identity, or a new one."""


class SightingPublic(BaseModel):
    """One track on record: who (None: an unknown face), where, from when to when."""

    id: int
    camera_id: str
    track_id: str
    identity_id: int | None
    display_name: str | None
    group_id: int | None = Field(description="The unknown group the face joined, if any.")
    first_seen: datetime
    last_seen: datetime
    checks: int = Field(description="Recognition checks of the track.")
    votes: int = Field(description="Checks that agree with the track's identity.")
    best_distance: float | None
    liveness: LivenessState
    ended: bool = Field(description="False while the track may still be in view.")
    face_width: int | None
    has_snapshot: bool
    snapshot_url: str | None = None
    has_face: bool = False
    face_url: str | None = None


class IdentityDetail(IdentityPublic):
    last_sightings: list[SightingPublic] = Field(
        default_factory=list, description="Where the person was seen last, newest first."
    )


class UnknownGroupPublic(BaseModel):
    """Unknown faces close enough to be one person, from one or several tracks and cameras."""

    id: int
    named_identity_id: int | None
    named_at: datetime | None
    created_at: datetime
    sightings: int
    faces: int
    first_seen: datetime | None
    last_seen: datetime | None
    cameras: list[str]
    best_sighting_id: int | None
    face_url: str | None = None


class GroupMerge(BaseModel):
    """Merge other unknown groups into this one: the same stranger, seen on several tracks."""

    group_ids: list[int] = Field(
        min_length=1, max_length=100, description="Unnamed groups whose sightings move here."
    )


class GroupNamed(BaseModel):
    identity: IdentityPublic
    sightings: int = Field(description="Sightings of the group now on record as the person.")
    accepted: list[FaceSamplePublic]
    rejected: list[FaceRejection]


class IdentityPage(BaseModel):
    items: list[IdentityPublic]
    total: int
    limit: int
    offset: int


# The public alert: one model for the REST API, the alerts stream and the websocket.
AlertPublic = AlertEvent


class CameraPublic(BaseModel):
    id: str
    name: str
    source: str
    enabled: bool
    claimed_login: str | None
    status: CameraStatus
    fps: float | None
    last_frame_at: datetime | None
    last_error: str | None


class Problem(BaseModel):
    """An error: a sentence, or (for a request that fails validation) the list of what is
    wrong with it, as FastAPI reports it."""

    detail: str | list[dict[str, Any]]


class Acknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        None, max_length=500, description="What was done (the audit log keeps it)"
    )


class AlertCount(BaseModel):
    hour: datetime
    kind: AlertKind
    count: int


CameraId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class CameraCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: CameraId
    name: Name
    source: str = Field(
        min_length=1, max_length=2000, description="file path, webcam index, rtsp/http URL"
    )
    enabled: bool = True
    claimed_login: Name | None = Field(None, description="kiosk: who should be here")

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        return check_source(value)


class CameraUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    source: str | None = Field(None, min_length=1, max_length=2000)
    enabled: bool | None = None
    claimed_login: Name | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> CameraUpdate:
        for field in ("name", "source", "enabled"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null (leave it out to keep it)")
        return self

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        return None if value is None else check_source(value)


def check_source(value: str) -> str:
    printable(value)
    if "://" in value and not value.lower().startswith(
        ("rtsp://", "rtsps://", "http://", "https://")
    ):
        raise ValueError("a stream URL must be rtsp://, rtsps://, http:// or https://")
    return value


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict
    client: str | None
