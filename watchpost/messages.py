"""Every message that crosses Redis, defined once.

On the wire a message is a Redis stream entry with the fields `type` (the model's name), `v` (its
schema version), `data` (the model as JSON) and, for messages that carry a picture, `image` (raw
JPEG bytes, kept out of the JSON so it is never base64-inflated). A message may name further
pictures (a frame's camera-resolution face crops): each travels in a field `att:<name>`.
Nothing is pickled.

Versions (how a message type evolves; see docs/architecture.md, "Message versions"):

- **Additive changes keep the version.** A new field must be optional, with a default that
  means what consumers assumed before it existed. Decoding ignores fields a model does not
  declare (nested models too, see `watchpost.wire`), so an older consumer reads a newer
  producer's messages during a rolling upgrade, and a newer consumer reads old ones (the default).
- **Anything else bumps `schema_version`**: removing, renaming or retyping a field, a new required
  field, a changed meaning. The class then registers an `upgrades[old]` step that rewrites a
  version-`old` payload into version `old + 1`; decoding applies the steps in turn, so a
  consumer reads every version it has steps for. A version newer than the consumer's is refused
  (dead-lettered) with a reason: for a bump, upgrade the consumers before the producers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar, overload

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from watchpost.geometry import Box, BoxTuple, face_square
from watchpost.wire import TOLERANT, WireModel

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class AlertKind(StrEnum):
    """What an alert is about: the policy's decisions, plus what a legacy client reports."""

    UNKNOWN_PERSON = "unknown_person"
    SPOOF_ATTEMPT = "spoof_attempt"
    IDENTITY_MISMATCH = "identity_mismatch"
    ACCESS_GRANTED = "access_granted"
    IMPOSSIBLE_TRAVEL = "impossible_travel"


LivenessState = Literal["live", "spoof", "undecided"]


# Every Message subclass by its wire name (`type`), registered as it is defined.
MESSAGE_TYPES: dict[str, type[Message]] = {}
M = TypeVar("M", bound="Message")


class MessageError(ValueError):
    """A stream entry that is not a valid message of the expected kind."""


Payload = dict[str, Any]


class Message(WireModel):
    schema_version: ClassVar[int] = 1
    # upgrades[v] rewrites a version-v payload (the JSON object) into version v + 1.
    upgrades: ClassVar[dict[int, Callable[[Payload], Payload]]] = {}
    carries_image: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MESSAGE_TYPES[cls.__name__] = cls

    def attachment_names(self) -> list[str]:
        """Names of the extra pictures this message needs beside it (fields `att:<name>`)."""
        return []


class TrackedFace(WireModel):
    track_id: Id
    box: Box
    detected: bool = Field(description="True when the detector found it in this very frame.")


class FaceCrop(WireModel):
    """A square around one tracked face cut from the camera's own frame, before the frame was
    scaled for the bus (JPEG in the entry's field `att:crop:<track_id>`): the passive attack
    check sees the face as the camera saw it. See `watchpost.geometry.face_square`."""

    track_id: Id
    square: Box = Field(description="Where the crop was cut, in camera pixels.")
    camera_width: int = Field(gt=0, description="Width of the camera frame it was cut from.")

    @classmethod
    def around(
        cls, track_id: str, box: BoxTuple, camera_width: int, camera_height: int
    ) -> FaceCrop:
        """The crop of a face at `box` (camera pixels): its `face_square`."""
        square = face_square(box, camera_width, camera_height)
        return cls(track_id=track_id, square=Box.of(square), camera_width=camera_width)

    @property
    def attachment(self) -> str:
        return f"crop:{self.track_id}"


class Frame(Message):
    """A captured frame that contains at least one face (JPEG in the `image` field)."""

    carries_image: ClassVar[bool] = True

    camera_id: Id
    seq: int = Field(ge=0)
    captured_at: float = Field(description="Unix time the frame was read from the source.")
    source_time: float = Field(
        ge=0, description="Seconds into the source: the video position for files, else since start."
    )
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    faces: list[TrackedFace] = Field(min_length=1)
    crops: list[FaceCrop] = Field(
        default_factory=list,
        description="Camera-resolution crops of some faces (capture sends one every few frames).",
    )

    @model_validator(mode="after")
    def _crops_of_faces(self) -> Frame:
        tracks = {face.track_id for face in self.faces}
        if any(c.track_id not in tracks for c in self.crops):
            raise ValueError("a crop names a track that is not among the frame's faces")
        if len({c.track_id for c in self.crops}) != len(self.crops):
            raise ValueError("at most one crop per track")
        return self

    def attachment_names(self) -> list[str]:
        return [crop.attachment for crop in self.crops]

    def is_stale(self, max_age_seconds: float) -> bool:
        """Older than `max_age_seconds` (0: never stale): consumers skip such frames rather than
        fall further behind a live camera."""
        return bool(max_age_seconds) and time.time() - self.captured_at > max_age_seconds


class RecognitionVerdict(Message):
    """Who a tracked face is, from one embedding. The `image` field is the frame embedded."""

    carries_image: ClassVar[bool] = True

    kind: Literal["recognition"] = "recognition"
    camera_id: Id
    track_id: Id
    frame_seq: int
    captured_at: float
    box: Box
    identity_id: int | None = Field(None, description="Best match within the threshold, or None.")
    display_name: str | None = None
    distance: float | None = Field(None, description="Distance to the best gallery match.")
    runner_up_distance: float | None = Field(
        None, description="Distance to the best match of a different identity."
    )
    threshold: float
    detected: bool | None = Field(
        None, description="The detector found this box in this frame (False: the tracker's)."
    )
    sharpness: float | None = Field(
        None, description="Variance of the Laplacian of the face at 150 px (low: blurred)."
    )
    yaw: float | None = Field(
        None, description="Head turn from the 5 landmarks: 0 frontal, about 0.3 at 35 degrees."
    )
    decided_at: float = Field(default_factory=time.time)
    embedding: list[float] | None = Field(
        None,
        min_length=128,
        max_length=128,
        description="The face's embedding, sent only when nobody matched (the aggregator groups "
        "unknown faces by it); never for an enrolled person.",
    )


AttackCueName = Literal["passive", "motion", "edges", "parallax"]


class AttackCue(WireModel):
    """One presentation-attack cue's reading on a track: what it measured, the level at which it
    flags an attack, and whether it flagged. `decides`: may this cue alone call a spoof?"""

    name: AttackCueName
    score: float
    threshold: float
    samples: int = Field(ge=0, description="Readings the score is the mean of.")
    flagged: bool
    decides: bool


class LivenessVerdict(Message):
    """Whether a tracked face is a live person, with the evidence for it."""

    kind: Literal["liveness"] = "liveness"
    camera_id: Id
    track_id: Id
    state: LivenessState
    reason: str
    blinks: int = Field(ge=0)
    frames_seen: int = Field(ge=0)
    frames_with_eyes: int = Field(ge=0)
    open_ear: float | None = Field(None, description="The track's calibrated open-eye EAR.")
    passive_score: float | None = Field(
        None, description="Mean P(spoof) of the passive check over the track's scored crops."
    )
    passive_frames: int = Field(0, ge=0, description="Crops the passive check scored.")
    cues: list[AttackCue] = Field(
        default_factory=list, description="Each attack cue's reading: the evidence of a spoof."
    )
    captured_at: float | None = Field(
        None, description="Unix time the frame that brought this verdict was read."
    )
    decided_at: float = Field(default_factory=time.time)


Verdict = Annotated[RecognitionVerdict | LivenessVerdict, Field(discriminator="kind")]


def _alert_v1_to_v2(old: Payload) -> Payload:
    """Version 1 called the id `alert_id`, sent times as Unix seconds and `evidence_at` at the
    top level; version 2 is the public alert the REST API answers."""
    new = dict(old)
    new["id"] = new.pop("alert_id", None)
    for name in ("captured_at", "created_at"):
        if isinstance(new.get(name), int | float):
            new[name] = datetime.fromtimestamp(new[name], UTC).isoformat()
    evidence_at = new.pop("evidence_at", None)
    new["details"] = {"evidence_at": evidence_at} if evidence_at is not None else {}
    return new


class GalleryChange(Message):
    """One committed change of an identity's faces or name (enrolment, deletion, erasure,
    renaming): every recognition replica re-reads that identity alone."""

    identity_id: int


class AlertEvent(Message):
    """An alert stored in PostgreSQL, in its one public shape: published on the alerts stream
    (for the dashboard's websocket and webhooks), sent to the page, and answered by the REST API
    (`AlertPublic` there). See `watchpost.db.alerts.alert_from_row`."""

    schema_version: ClassVar[int] = 2
    upgrades: ClassVar[dict[int, Callable[[Payload], Payload]]] = {1: _alert_v1_to_v2}

    id: int
    kind: AlertKind
    camera_id: Id
    track_id: Id
    identity_id: int | None = None
    display_name: str | None = None
    claimed_login: str | None = None
    distance: float | None = None
    liveness: LivenessState = "undecided"
    reason: str = ""
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="The evidence: for a pipeline alert `evidence_at`, the Unix time the frame "
        "whose verdict completed the evidence was read (the pipeline's latency is measured from "
        "it; captured_at is the snapshot's frame).",
    )
    captured_at: datetime
    created_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    has_snapshot: bool = False
    snapshot_url: str | None = None
    has_face: bool = False
    face_url: str | None = None

    @property
    def alert_id(self) -> int:
        return self.id

    @property
    def evidence_at(self) -> float | None:
        value = self.details.get("evidence_at")
        return float(value) if isinstance(value, int | float) else None


ATTACHMENT_PREFIX = b"att:"


def encode(
    message: Message, image: bytes | None = None, attachments: dict[str, bytes] | None = None
) -> dict[bytes, bytes]:
    """Stream-entry fields for a message (and the pictures it names, by name)."""
    attachments = attachments or {}
    if sorted(attachments) != sorted(message.attachment_names()):
        raise MessageError(
            f"{type(message).__name__} names attachments {message.attachment_names()}, "
            f"given {sorted(attachments)}"
        )
    if message.carries_image and image is None:
        raise MessageError(f"{type(message).__name__} needs an image")
    if image is not None and not message.carries_image:
        raise MessageError(f"{type(message).__name__} carries no image")
    fields = {
        b"type": type(message).__name__.encode(),
        b"v": str(message.schema_version).encode(),
        b"data": message.model_dump_json().encode(),
    }
    if image is not None:
        fields[b"image"] = image
    for name, data in attachments.items():
        if not data:
            raise MessageError(f"attachment {name!r} is empty")
        fields[ATTACHMENT_PREFIX + name.encode()] = data
    return fields


def attachments(message: Message, fields: dict[bytes, bytes]) -> dict[str, bytes]:
    """The pictures a decoded message names, from its entry's fields; MessageError if one is
    missing."""
    found = {}
    for name in message.attachment_names():
        data = fields.get(ATTACHMENT_PREFIX + name.encode())
        if not data:
            raise MessageError(f"{type(message).__name__} without its attachment {name!r}")
        found[name] = data
    return found


@overload
def decode(fields: dict[bytes, bytes], expected: type[M]) -> tuple[M, bytes | None]: ...
@overload
def decode(fields: dict[bytes, bytes], expected: TypeAdapter[M]) -> tuple[M, bytes | None]: ...
@overload
def decode(fields: dict[bytes, bytes], expected: object) -> tuple[Message, bytes | None]: ...
def decode(fields: dict[bytes, bytes], expected: object) -> tuple[Message, bytes | None]:
    """Parse stream-entry fields into one of the `expected` message types.

    `expected` is a Message subclass, a union type (e.g. `Verdict`) or a TypeAdapter of either (a
    stream spec's). Fields the models do not declare are ignored and older versions upgraded
    (see "Versions" above). Raises MessageError with a reason for anything else: unknown type,
    a version newer than this consumer's, invalid JSON or fields.
    """
    try:
        type_name = fields[b"type"].decode()
        version = int(fields[b"v"])
        data = fields[b"data"]
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"missing or malformed envelope field: {exc!r}") from None
    cls = MESSAGE_TYPES.get(type_name)
    if cls is None:
        raise MessageError(f"unknown message type {type_name!r}")
    if version != cls.schema_version:
        data = _upgraded(cls, version, data)
    adapter = expected if isinstance(expected, TypeAdapter) else _adapter(expected)
    try:
        message = adapter.validate_json(data, context=TOLERANT)
    except ValidationError as exc:
        raise MessageError(f"invalid {type_name}: {exc.errors(include_url=False)}") from None
    if type(message) is not cls:
        raise MessageError(f"{type_name} envelope holds a {type(message).__name__}")
    image = fields.get(b"image")
    if cls.carries_image and not image:
        raise MessageError(f"{type_name} without its image")
    attachments(message, fields)  # every named picture must be there
    return message, image


def _upgraded(cls: type[Message], version: int, data: bytes) -> bytes:
    """A version-`version` payload of `cls` rewritten to the current version, step by step."""
    current = cls.schema_version
    if version > current:
        raise MessageError(
            f"{cls.__name__} schema version {version} is newer than this consumer reads "
            f"({current}): upgrade consumers before producers"
        )
    missing = [v for v in range(version, current) if v not in cls.upgrades]
    if version < 1 or missing:
        raise MessageError(
            f"{cls.__name__} schema version {version}, expected {current} (no upgrade from it)"
        )
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise MessageError(f"invalid {cls.__name__}: {exc}") from None
    if not isinstance(payload, dict):
        raise MessageError(f"invalid {cls.__name__}: the payload is not an object")
    for step in range(version, current):
        payload = cls.upgrades[step](payload)
    return json.dumps(payload).encode()


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(expected: Any) -> TypeAdapter[Any]:
    if expected not in _ADAPTERS:
        _ADAPTERS[expected] = TypeAdapter(expected)
    return _ADAPTERS[expected]
