"""Settings: one pydantic-settings class per service, all on one common base.

Every variable is `WATCHPOST_<FIELD>`; service-specific fields carry the service name in the field
(`capture_source` is `WATCHPOST_CAPTURE_SOURCE`), so one flat namespace serves the CLI, the
containers and the tests, and a compose file can be checked against these classes.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from watchpost.keys import DEFAULT_STREAM_SHARDS, FRAMES_MAXLEN, Keys
from watchpost.messages import AlertKind
from watchpost.sources import PRIVATE_NETWORKS, SourceKind, SourcePolicy, redact

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """The real-data folder: `WATCHPOST_DATA_DIR` when set (as the settings' `data_dir` reads
    it), else the shared folder beside the project (see ../shared/data/README.md). Benchmarks and
    training scripts default to it, so they find the data from a git worktree too."""
    if configured := os.environ.get("WATCHPOST_DATA_DIR"):
        return Path(configured).resolve()
    return (PROJECT_ROOT.parent / "shared" / "data").resolve()


_PLACEHOLDERS = re.compile(
    r"^(changeme|change[-_ ]?me.*|password|passw0rd|secret|placeholder|example|test|admin|"
    r"default|xxx+|\.\.\.|<.*>|\$\{.*\})$",
    re.IGNORECASE,
)


# Which service presents each service token (the key) to which service (the value): the only
# calls between services. Each token is given to exactly those two.
SERVICE_LINKS: dict[str, str] = {"dashboard": "recognition", "recognition": "liveness"}
SERVICE_TOKEN_FIELDS: dict[str, str] = {
    caller: f"{caller}_service_token" for caller in SERVICE_LINKS
}
_HOST_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def is_placeholder(value: str) -> bool:
    """A value copied from an example instead of generated (`change-me`, `<secret>`, ...)."""
    return bool(_PLACEHOLDERS.match(value.strip()))


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHPOST_", extra="ignore")

    service_name: ClassVar[str] = "watchpost"
    default_port: ClassVar[int] = 8000

    redis_url: str | None = Field(
        None, description="Redis URL (redis://, rediss:// or unix://). Required by services."
    )
    database_url: str | None = Field(
        None, description="PostgreSQL URL for psycopg. Required by services that store data."
    )
    stream_prefix: str = Field(
        "wp", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Prefix of every Redis key."
    )
    http_host: str = Field("127.0.0.1", description="Address the service's HTTP server binds.")
    http_port: int | None = Field(None, ge=1, le=65535, description="Port; service default.")
    consumer_name: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This replica's name in its consumer groups and leases, unique per replica "
        "(default: host name and process id; a container's are stable across its restarts). A "
        "replica that takes over another's shards claims what it left pending, whatever its name.",
    )
    stream_shards: int = Field(
        DEFAULT_STREAM_SHARDS,
        ge=1,
        le=256,
        description="Frames and verdicts streams are split by camera into this many shards, each "
        "owned by one replica of recognition, liveness and the aggregator. Every process records "
        "it in Redis and refuses to start on a different count; more shards than replicas lets "
        "replicas be added later without resharding.",
    )
    shard_lease_seconds: float = Field(
        10.0,
        gt=0,
        description="A replica owns each of its shards on a lease this long, renewed every "
        "fifth of it; a replica that dies hands its shards to the others after it.",
    )
    shard_replay_seconds: float = Field(
        300.0,
        ge=0,
        description="A replica that takes a shard over rebuilds its per-track state from the "
        "shard's entries of this last while that were already handled (emitting nothing).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(False, description="Log one JSON object per line.")
    frame_max_age_seconds: float = Field(
        3.0,
        ge=0,
        description="Consumers skip frames older than this instead of falling further behind "
        "(0: never skip; tests that replay a file faster than real time use 0).",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder with the real test data and demo videos.",
    )
    dashboard_service_token: SecretStr | None = Field(
        None,
        description="The dashboard's credential for recognition's API (`Authorization: Bearer`; "
        "/v1/faces and /v1/identify). Set on the dashboard, which presents it, and on "
        "recognition, which accepts it. `watchpost up` and `watchpost secrets` generate one.",
    )
    recognition_service_token: SecretStr | None = Field(
        None,
        description="Recognition's credential for liveness's API (/v1/liveness). Set on "
        "recognition, which presents it, and on liveness, which accepts it.",
    )
    auth_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="How long a checked API key is trusted without asking the database again "
        "(a revoked key stops working within this time).",
    )
    auth_failures_per_minute: int = Field(
        20,
        ge=1,
        description="Failed API-key checks allowed per client address per minute; beyond them "
        "every key from that address is answered 429 until the minute is over.",
    )
    http_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are "
        'believed (JSON list, e.g. ["127.0.0.1"]). Empty: none, so the client address is the '
        "peer's, and sign-in limits cannot be dodged with a forged header.",
    )
    http_docs: bool = Field(
        True, description="Serve the OpenAPI schema and its pages (/openapi.json, /docs, /redoc)."
    )
    http_metrics: bool = Field(True, description="Serve Prometheus metrics on /metrics.")
    http_metrics_token: SecretStr | None = Field(
        None,
        description="When set, /metrics answers only `Authorization: Bearer <this token>`.",
    )
    camera_source_kinds: list[SourceKind] = Field(
        default_factory=lambda: list[SourceKind](["file", "rtsp", "rtsps", "http", "https"]),
        description="Kinds of camera source that may be added or opened: file, webcam, rtsp, "
        "rtsps, http, https (JSON list). The source in WATCHPOST_CAPTURE_SOURCE is always allowed.",
    )
    camera_source_hosts: list[str] = Field(
        default_factory=lambda: list(PRIVATE_NETWORKS),
        description="Networks (CIDR) and host names that network cameras may be on (JSON list). "
        "Default: the private networks, which excludes loopback (this host's own services) and "
        "link-local (cloud metadata). A name is allowed when listed or when every address it "
        "resolves to is in a listed network.",
    )
    camera_source_dirs: list[Path] | None = Field(
        None,
        description="Folders whose video files may be camera sources (JSON list). Default: the "
        "data folder (WATCHPOST_DATA_DIR), which holds the demo video.",
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> CommonSettings:
        for name in (*SERVICE_TOKEN_FIELDS.values(), "http_metrics_token"):
            value: SecretStr | None = getattr(self, name)
            if value is not None and (
                len(value.get_secret_value()) < 24 or is_placeholder(value.get_secret_value())
            ):
                raise ValueError(
                    f"{name} looks like a placeholder or is shorter than 24 characters; "
                    "generate one with `watchpost secrets`"
                )
        for name in ("redis_url", "database_url"):
            password = urlsplit(getattr(self, name) or "").password
            if password and is_placeholder(password):  # empty: no password (socket, trust)
                raise ValueError(f"{name} has a placeholder password; set a generated one")
        return self

    @field_validator("camera_source_hosts")
    @classmethod
    def _networks_or_names(cls, hosts: list[str]) -> list[str]:
        for entry in hosts:
            if not _is_network(entry) and not _HOST_NAME.match(entry):
                raise ValueError(f"{entry!r} is neither a network (CIDR) nor a host name")
        return hosts

    def service_token(self, caller: str) -> str:
        """The credential `caller` presents to the service it calls (see SERVICE_LINKS)."""
        value: SecretStr | None = getattr(self, SERVICE_TOKEN_FIELDS[caller])
        if value is None:
            raise RuntimeError(
                f"{self.service_name}: WATCHPOST_{caller.upper()}_SERVICE_TOKEN is not set "
                f"({caller} authenticates to {SERVICE_LINKS[caller]} with it; generate one with "
                "`watchpost secrets`)"
            )
        return value.get_secret_value()

    def source_policy(self) -> SourcePolicy:
        """What camera sources may be added and opened (see watchpost.sources)."""
        return SourcePolicy(
            kinds=frozenset(self.camera_source_kinds),
            hosts=tuple(self.camera_source_hosts),
            dirs=tuple(self.camera_source_dirs or [self.data_dir]),
        )

    @property
    def port(self) -> int:
        return self.http_port or self.default_port

    @property
    def max_body_bytes(self) -> int:
        """Largest HTTP request body read on any route, before anyone is authenticated (413
        beyond it): JSON and forms are small."""
        return 1_000_000

    @property
    def max_upload_bytes(self) -> int:
        """Largest body of an upload route, read only once its caller is authenticated: the
        most files of the largest size, plus room for the form."""
        return self.max_body_bytes

    @property
    def keys(self) -> Keys:
        """Every Redis key under this deployment's prefix, streams with its shard count."""
        return Keys(self.stream_prefix, self.stream_shards)

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError(f"{self.service_name}: WATCHPOST_REDIS_URL is not set")
        return self.redis_url

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError(f"{self.service_name}: WATCHPOST_DATABASE_URL is not set")
        return self.database_url


DEMO_VIDEO = "video/talking_blinks_720p.mp4"  # under data_dir: what `watchpost up` plays


class CaptureSettings(CommonSettings):
    service_name: ClassVar[str] = "capture"
    default_port: ClassVar[int] = 8002

    capture_camera_id: str = Field("demo", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    capture_source: str | None = Field(
        None,
        description="Video file path, webcam index (e.g. 0) or rtsp:// / http(s):// URL. "
        "Empty: the demo video from the data folder.",
    )
    capture_realtime: bool = Field(
        True, description="Play files at their own frame rate, skipping frames when behind."
    )
    capture_loop: bool = Field(False, description="Start a file again when it ends.")
    capture_max_width: int = Field(
        640, ge=160, le=3840, description="Frames are downscaled to this."
    )
    capture_detect_every: int = Field(
        5, ge=1, le=100, description="Run the face detector every N frames; track in between."
    )
    capture_detector: Literal["hog", "blazeface"] = Field(
        "hog",
        description="The face detector: `hog` (dlib's HOG, finds faces down to about 40 px with "
        "one upsampling step) or `blazeface` (MediaPipe's BlazeFace, 0.05-0.15 of HOG's cost, "
        "the same faces from 60 px, but it misses a third to two thirds of the faces under 60 px "
        "that HOG finds: the door setting, where faces are large; docs/performance.md).",
    )
    capture_blazeface_network: Literal["short", "full"] = Field(
        "short",
        description="With `blazeface`: the `short`-range network (cheapest; faces from about 60 "
        "px) or the `full`-range one (about 2.5x its cost; finds more of the faces under 60 px).",
    )
    capture_follow: Literal["detector", "correlation"] = Field(
        "detector",
        description="Between detections, with `blazeface`: look for each face again with the "
        "detector around its last box (`detector`: about 2 ms a face) or step a dlib "
        "correlation tracker (`correlation`: about 4-6 ms; always so with `hog`).",
    )
    capture_upsample: int = Field(
        1, ge=0, le=2, description="HOG detector upsampling steps (with `hog` only)."
    )
    capture_min_face: int = Field(40, ge=10, description="Ignore faces smaller than this (px).")
    capture_jpeg_quality: int = Field(85, ge=30, le=100)
    capture_reconnect_seconds: float = Field(5.0, gt=0, description="Retry a failed stream after.")
    capture_live_every: int = Field(
        3, ge=1, description="Refresh a camera's live-view image every N frames with faces."
    )
    capture_max_lag_seconds: float = Field(
        0.2,
        ge=0,
        description="A file played in real time catches up when it falls behind by less than "
        "this, and skips frames beyond it.",
    )
    capture_stream_maxlen: int = Field(
        FRAMES_MAXLEN,
        ge=50,
        description="Frames kept in each shard's Redis stream; older ones are trimmed, so a "
        "stalled consumer costs old frames, never unbounded memory.",
    )
    capture_cameras_check_seconds: float = Field(
        2.0, gt=0, description="How often capture looks for added, changed or removed cameras."
    )
    capture_lease_seconds: float = Field(
        10.0,
        gt=0,
        description="A capture node holds each camera it runs on a lease this long, renewed "
        "every camera check; a node that dies hands its cameras to the others after it. Keep it "
        "several times capture_cameras_check_seconds.",
    )
    capture_crop_every: int = Field(
        3,
        ge=0,
        description="Send a camera-resolution crop of each tracked face every N of its frames, "
        "for the passive attack check (0: never).",
    )
    capture_crop_min_face: int = Field(
        60, ge=20, description="No crop of faces narrower than this in camera pixels."
    )
    capture_crop_max_side: int = Field(
        256,
        ge=64,
        le=1024,
        description="Crops larger than this are shrunk to it (the passive check reads 128 px).",
    )

    def resolved_source(self) -> str:
        """The configured source, else the demo video from the data folder."""
        if self.capture_source:
            return self.capture_source
        return str(self.data_dir / DEMO_VIDEO)

    @field_validator("capture_source")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _lease_outlives_checks(self) -> CaptureSettings:
        if self.capture_lease_seconds < 2 * self.capture_cameras_check_seconds:
            raise ValueError(
                "capture_lease_seconds must be at least twice capture_cameras_check_seconds, or "
                "a node loses its cameras between two checks"
            )
        return self


class RecognitionSettings(CommonSettings):
    service_name: ClassVar[str] = "recognition"
    default_port: ClassVar[int] = 8001

    recognition_threshold: float = Field(
        0.55,
        gt=0,
        lt=2,
        description="1:N (cameras): the largest identity score (mean distance of its nearest "
        "samples) that names the person. See docs/recognition.md.",
    )
    recognition_verify_threshold: float = Field(
        0.6,
        gt=0,
        lt=2,
        description="1:1 (kiosk /v1/verify): the largest identity score that confirms a claimed "
        "login. One comparison, not one per enrolled person, so it may be looser than 1:N.",
    )
    recognition_score_k: int = Field(
        3,
        ge=1,
        description="An identity's score is the mean distance of its k nearest samples.",
    )
    recognition_recheck_seconds: float = Field(
        2.0, gt=0, description="Embed a known track again after this long."
    )
    recognition_recheck_unknown_seconds: float = Field(
        0.5,
        gt=0,
        description="Re-embed a track that matched nobody this soon (one blurred "
        "first frame must not make an enrolled person a stranger).",
    )
    recognition_max_checks: int = Field(
        5, ge=1, description="Stop re-embedding a track after this many verdicts."
    )
    recognition_enrol_jitter: int = Field(
        0,
        ge=0,
        le=100,
        description="dlib jitters when embedding an enrolment photo (/v1/faces): the mean of "
        "this many randomly shifted, scaled and mirrored copies. docs/recognition.md measures it.",
    )
    recognition_calibration_target_far: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="Calibration suggests the 1:N threshold at which a stranger is named as "
        "someone in at most this share of identifications (1e-4: 1 in 10,000).",
    )
    recognition_gallery_approximate_from: int = Field(
        200_000,
        ge=0,
        description="Enrolled samples from which 1:N search uses the approximate index (faiss "
        "IVF-Flat) for its candidates; below, exact search. 0: always exact. "
        "docs/performance.md measures both.",
    )
    recognition_gallery_index: Literal["ivf-sq8", "ivf-sq8", "ivf-pq", "hnsw"] = Field(
        "ivf-sq8",
        description="The approximate index (faiss): IVF with full vectors, with a byte per "
        "dimension (SQ8) or 32-byte codes (PQ), or an HNSW graph. docs/performance.md measures "
        "each.",
    )
    recognition_gallery_nlist: int = Field(
        0, ge=0, le=65536, description="IVF cells; 0: about 4 * sqrt(samples) at build time."
    )
    recognition_gallery_nprobe: int = Field(
        192, ge=1, le=4096, description="Index cells searched per query (recall against time)."
    )
    recognition_gallery_ef_search: int = Field(
        64, ge=1, le=4096, description="HNSW: the search's candidate list (recall against time)."
    )
    recognition_gallery_candidates: int = Field(
        64,
        ge=2,
        le=4096,
        description="Nearest samples the index proposes per query; their identities are then "
        "scored exactly on all their samples.",
    )
    recognition_gallery_reconcile_seconds: float = Field(
        60.0,
        gt=0,
        description="How often the gallery's sample count and id sum are compared with "
        "PostgreSQL (a change whose notice was lost is then reloaded).",
    )
    recognition_max_upload_bytes: int = Field(10_000_000, ge=1024)
    recognition_max_files: int = Field(60, ge=1, le=300, description="Images per verify call.")
    recognition_liveness_url: str | None = Field(
        None, description="Liveness service base URL; /v1/verify asks it about the frames."
    )

    @property
    def max_upload_bytes(self) -> int:
        return self.recognition_max_upload_bytes * self.recognition_max_files + 1_000_000


class LivenessSettings(CommonSettings):
    service_name: ClassVar[str] = "liveness"
    default_port: ClassVar[int] = 8003

    liveness_closed_ratio: float = Field(
        0.75,
        gt=0,
        lt=1,
        description="An eye is closed when its EAR drops below this share of the track's "
        "own open-eye EAR (per-person calibration).",
    )
    liveness_closed_ear_max: float = Field(
        0.25, gt=0, description="An eye is never called closed above this absolute EAR."
    )
    liveness_min_eye_px: float = Field(
        10.0,
        gt=0,
        description="Eyes narrower than this (px, corner to corner) are reported unreadable "
        "instead of read: below it neither the landmarks nor the eye-state CNN can see a lid.",
    )
    liveness_max_blink_seconds: float = Field(
        0.5,
        gt=0,
        description="A closure longer than this is not a blink (eyes shut, looking down).",
    )
    liveness_window_seconds: float = Field(
        20.0,
        gt=0,
        description="A track with eyes visible this long and never a blink is a spoof (a still "
        "print). People reading or watching a screen blink a few times a minute.",
    )
    liveness_min_live_seconds: float = Field(
        1.5,
        ge=0,
        description="A blinking track is called live only after this long in view, so the "
        "attack cues (a replayed video blinks too) have time to speak first.",
    )
    liveness_motion_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The motion cue flags a face whose surroundings share at least this much "
        "of its motion on average (a replay moves with its own background).",
    )
    liveness_motion_min_pairs: int = Field(
        5, ge=2, description="Frame pairs with the face moving before the motion cue may flag."
    )
    liveness_motion_min_seconds: float = Field(
        0.5,
        ge=0,
        description="...and the seconds those pairs must span: pairs a frame apart overlap, so "
        "five of them at 30 fps are one moment (a face printed on a shirt, found for a few "
        "frames, moves with the shirt and read as a replay; docs/liveness.md).",
    )
    liveness_parallax: Literal["off", "corroborates", "decides"] = Field(
        "corroborates",
        description="The landmark-parallax cue (a face whose landmarks move as a flat picture's "
        "do: a print bent or tilted by hand): off, corroborates (reported; flags a spoof with a "
        "second flagged cue, like the edges), or decides (flags a spoof alone, even after a "
        "blink). Measured in docs/liveness.md: corroborating it took NUAA's print APCER from "
        "5.6% to 0% with BPCER unchanged; deciding measured the same, on a thinner margin.",
    )
    liveness_parallax_threshold: float = Field(
        0.24,
        gt=0,
        lt=1,
        description="Pooled flatness (share of the non-rigid landmark motion an affine map "
        "explains) at or above which the parallax cue flags a face.",
    )
    liveness_parallax_min_pairs: int = Field(
        5,
        ge=1,
        description="Landmark pairs 0.3 s apart that moved beyond landmark noise before the "
        "parallax cue may flag.",
    )
    liveness_parallax_min_seconds: float = Field(
        0.4,
        ge=0,
        description="...and the seconds those pairs must span: the 5 pairs were chosen on NUAA "
        "at 10 fps, where they span at least 0.4 s; with a detection on every frame at 30 fps "
        "five pairs are a sixth of a second (docs/liveness.md).",
    )
    liveness_head_motion: bool = Field(
        True,
        description="A track that has not blinked is live when its head moved in depth against "
        "a still scene: landmark pairs far from flat (parallax), its surroundings still (the "
        "motion cue), the passive check read and clean, no cue flagged. Off: only a blink makes "
        "a track live. Measured in docs/liveness.md.",
    )
    liveness_head_motion_max_flatness: float = Field(
        0.12,
        gt=0,
        lt=1,
        description="Pooled parallax flatness at most which the head moved in depth (a print is "
        "flat: NUAA's read 0.17 and above).",
    )
    liveness_head_motion_max_follow: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Motion-cue reading at most which the face moved against a still scene.",
    )
    liveness_min_frames: int = Field(
        15, ge=3, description="Frames with visible eyes needed before calling a spoof."
    )
    liveness_track_timeout_seconds: float = Field(5.0, gt=0)
    liveness_eye_cnn: bool = Field(
        True, description="Fuse the eye-state CNN with the EAR (off: EAR alone, no TensorFlow)."
    )
    liveness_passive: bool = Field(
        True, description="Run the passive attack check (texture model)."
    )
    liveness_passive_decides: bool | None = Field(
        None,
        description="Let the passive check alone call a track a spoof. Default (unset): what its "
        "model file says, true only when its leave-one-source-out BPCER is at most 5% per "
        "presentation on every held-out source (docs/liveness.md); otherwise it is reported and "
        "counts as one of two agreeing cues.",
    )
    liveness_spoof_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="P(attack) threshold of the passive check; default: the one in its model file.",
    )
    liveness_site_calibration: bool = Field(
        False,
        description="Fit each camera's own passive threshold from the passive scores of its "
        "tracks judged live on a blink. Off by default: measured leave-one-source-out it "
        "trades attacks let through for fewer real people flagged and did not lower ACER "
        "(docs/liveness.md, per-camera calibration).",
    )
    liveness_site_target_bpcer: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Share of a camera's real people its calibrated passive threshold may call "
        "an attack: the threshold is the (1 - this) quantile of their scores.",
    )
    liveness_site_min_presentations: int = Field(
        20,
        ge=2,
        description="Real tracks a camera must have recorded before its own passive threshold "
        "replaces the model's global one.",
    )
    liveness_site_window: int = Field(
        500,
        ge=2,
        description="A camera's calibration keeps its newest this many real tracks.",
    )
    liveness_max_frames: int = Field(120, ge=1, le=600, description="Frames per burst request.")
    liveness_max_upload_bytes: int = Field(5_000_000, ge=1024, description="Largest burst frame.")

    @property
    def max_upload_bytes(self) -> int:
        return self.liveness_max_upload_bytes * self.liveness_max_frames + 1_000_000


class AggregatorSettings(CommonSettings):
    service_name: ClassVar[str] = "aggregator"
    default_port: ClassVar[int] = 8004

    aggregator_track_timeout_seconds: float = Field(
        60.0, gt=0, description="Forget a track's evidence after this long without news."
    )
    aggregator_cooldowns: dict[str, float] = Field(
        default_factory=lambda: {
            "unknown_person": 10.0,
            "spoof_attempt": 30.0,
            "identity_mismatch": 60.0,
            "access_granted": 60.0,
            "impossible_travel": 60.0,
        },
        description="Seconds after an alert during which the same kind on the same camera (for "
        "the same person, when known) raises no new alert; for impossible_travel, the same "
        "person on any camera. JSON.",
    )
    aggregator_unknown_min_checks: int = Field(
        2, ge=1, description="Recognition checks that must agree before a track is a stranger."
    )
    aggregator_grant_min_checks: int = Field(
        2,
        ge=1,
        description="Agreeing recognition checks (detector boxes that pass the quality gates, "
        "each with the margin) needed before access is granted.",
    )
    aggregator_grant_min_margin: float = Field(
        0.05,
        ge=0,
        description="How much nearer a check's identity must be than the next identity's.",
    )
    aggregator_grant_min_share: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Share of the track's quality-weighted vote the granted identity must hold.",
    )
    aggregator_min_face_px: int = Field(
        60, ge=1, description="Narrower faces are no evidence for access (quality gate)."
    )
    aggregator_min_sharpness: float = Field(
        25.0,
        ge=0,
        description="Blurrier faces (variance of the Laplacian at 150 px) are no evidence for "
        "access. Sharp camera faces here score 90-600.",
    )
    aggregator_max_yaw: float = Field(
        0.35,
        gt=0,
        description="More turned faces (nose offset in eye spans, 0 frontal) are no evidence "
        "for access.",
    )
    aggregator_claims_refresh_seconds: float = Field(
        10.0, gt=0, description="How long a camera's claimed login is cached."
    )
    aggregator_sighting_update_seconds: float = Field(
        5.0,
        ge=0,
        description="A track's sighting is written when it starts, when its vote, liveness or "
        "best face changes, when it ends, and otherwise at most this often.",
    )
    aggregator_unknown_group_distance: float = Field(
        0.5,
        gt=0,
        description="An unknown face (a track's mean embedding) joins the group of its nearest "
        "unknown face within this distance; else it starts a group of its own.",
    )
    aggregator_unknown_group_merge_seconds: float = Field(
        60.0,
        ge=0,
        description="How often unnamed unknown groups whose centroids (mean embeddings) are "
        "within aggregator_unknown_group_distance are merged: a stranger whose tracks started "
        "two groups becomes one. 0: never (a guard can still merge by hand).",
    )
    aggregator_travel_seconds: dict[str, float] = Field(
        default_factory=dict,
        description='Least seconds to walk between two cameras, per pair: {"door,lobby": 20}. '
        "A negative value means the two cameras see the same place (never an alert). JSON.",
    )
    aggregator_travel_default_seconds: float = Field(
        0.0,
        ge=0,
        description="Least seconds between cameras not listed in aggregator_travel_seconds "
        "(0: only the same person at two cameras at once is impossible).",
    )
    aggregator_travel_tolerance_seconds: float = Field(
        2.0,
        ge=0,
        description="Slack for clocks and track hand-over: sightings closer than the travel time "
        "by less than this are not impossible travel.",
    )
    aggregator_travel_min_checks: int = Field(
        2,
        ge=1,
        description="Agreeing recognition checks each of two sightings needs before they can "
        "raise impossible_travel (one stray match must not).",
    )

    @field_validator("aggregator_travel_seconds")
    @classmethod
    def _camera_pairs(cls, pairs: dict[str, float]) -> dict[str, float]:
        for pair in pairs:
            cameras = [c.strip() for c in pair.split(",")]
            if len(cameras) != 2 or not all(cameras) or cameras[0] == cameras[1]:
                raise ValueError(
                    f"aggregator_travel_seconds: {pair!r} is not two camera ids joined by a comma"
                )
        return pairs

    def travel_seconds(self, camera_a: str, camera_b: str) -> float:
        """Least seconds to get from one camera to the other (negative: same place)."""
        for pair, seconds in self.aggregator_travel_seconds.items():
            if {c.strip() for c in pair.split(",")} == {camera_a, camera_b}:
                return seconds
        return self.aggregator_travel_default_seconds


class DashboardSettings(CommonSettings):
    service_name: ClassVar[str] = "dashboard"
    default_port: ClassVar[int] = 8000

    dashboard_recognition_url: str = Field(
        "http://127.0.0.1:8001", description="Base URL of the recognition service's HTTP API."
    )
    dashboard_max_upload_bytes: int = Field(10_000_000, ge=1024)
    dashboard_max_files: int = Field(20, ge=1, le=200, description="Photos per upload request.")
    dashboard_min_face_px: int = Field(
        80, ge=20, description="Smallest face width (px) accepted for enrolment."
    )
    dashboard_min_sharpness: float = Field(
        25.0, ge=0, description="Least Laplacian variance of the face (150 px) for enrolment."
    )
    dashboard_enrol_outlier_distance: float = Field(
        0.6,
        gt=0,
        lt=2,
        description="A new photo farther than this from every other photo of the person is "
        "refused as an outlier (another person, or a poor photo) unless forced.",
    )
    dashboard_enrol_duplicate_distance: float = Field(
        0.45,
        ge=0,
        lt=2,
        description="A new photo nearer than this to another person's photo is refused as a "
        "possible duplicate person unless forced (0: never).",
    )
    dashboard_webhooks: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Alert kind (or "*") -> URLs to POST each new alert to, as JSON, e.g. '
        '{"spoof_attempt": ["https://soc.example/hook"]}.',
    )
    dashboard_webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key for the X-Watchpost-Signature header; required with webhooks.",
    )
    dashboard_webhook_attempts: int = Field(5, ge=1, le=20)
    dashboard_webhook_backoff_seconds: float = Field(
        1.0, gt=0, description="First retry delay; doubles per attempt."
    )
    dashboard_max_websockets: int = Field(200, ge=1, description="Refuse clients beyond this.")
    dashboard_replay_limit: int = Field(
        500, ge=1, le=10_000, description="Most alerts replayed to a reconnecting client."
    )
    dashboard_cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (JSON list). Empty: none "
        "but the dashboard's own page.",
    )
    dashboard_session_hours: float = Field(
        8.0, gt=0, le=24 * 30, description="A page login lasts this long."
    )
    dashboard_secure_cookies: bool = Field(
        False, description="Mark the session cookie Secure (set it when served over HTTPS)."
    )
    dashboard_login_per_minute: int = Field(
        10, ge=1, description="Login attempts allowed per client address per minute."
    )
    dashboard_enrol_per_minute: int = Field(
        30, ge=1, description="Enrolment uploads allowed per API key per minute."
    )
    dashboard_live_recheck_seconds: float = Field(
        15.0,
        gt=0,
        description="How often an open websocket or live view checks that its sign-in still "
        "stands (not signed out, expired or revoked); it is closed when it does not.",
    )
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker to publish alerts, sightings and camera status to "
        "(mqtt://user:password@host:1883, mqtts:// for TLS; default ports 1883 and 8883). "
        "Unset: no MQTT. See docs/mqtt.md.",
    )
    mqtt_ca_file: FilePath | None = Field(
        None, description="CA certificate(s) that sign the broker's (mqtts://); default: system's."
    )
    mqtt_cert_file: FilePath | None = Field(
        None, description="Client certificate (PEM) presented to the broker over mqtts://."
    )
    mqtt_key_file: FilePath | None = Field(
        None, description="Private key of mqtt_cert_file (PEM), when not in the same file."
    )
    mqtt_topic_prefix: str = Field(
        "watchpost",
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="First level(s) of every topic Watchpost publishes.",
    )
    mqtt_discovery_prefix: str | None = Field(
        "homeassistant",
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="Home Assistant MQTT discovery prefix (per camera: last person seen, unknown "
        "person, spoof attempt, status); empty: no discovery configs.",
    )
    mqtt_qos: Literal[0, 1, 2] = Field(
        1, description="QoS of every publish (1: at least once while the broker is reachable)."
    )
    mqtt_client_id: str | None = Field(
        None,
        description="MQTT client id (unique per connection); default watchpost-<consumer "
        "name>-<random>, new at every start.",
    )
    mqtt_max_queued: int = Field(
        1000,
        ge=1,
        description="Messages held for a slow or unreachable broker; beyond them new ones are "
        'dropped and counted (watchpost_mqtt_messages_total{result="dropped"}).',
    )
    mqtt_keepalive_seconds: int = Field(30, ge=5, le=3600)
    mqtt_reconnect_max_seconds: float = Field(
        60.0, ge=1, description="Reconnect back-off doubles from 1 s up to this."
    )
    mqtt_poll_seconds: float = Field(
        2.0, gt=0, description="How often camera status and sightings are read for MQTT."
    )
    mqtt_event_seconds: int = Field(
        30,
        ge=1,
        description="Home Assistant turns a camera's unknown-person and spoof sensors off this "
        "long after the last such alert (off_delay).",
    )
    retention_alert_days: float = Field(
        365.0, ge=0, description="Delete alerts older than this (0: keep forever)."
    )
    retention_snapshot_days: float = Field(
        30.0,
        ge=0,
        description="Drop the snapshot and face crop of alerts older than this (0: keep them).",
    )
    retention_sighting_days: float = Field(
        90.0,
        ge=0,
        description="Delete sightings last seen longer ago than this (0: keep forever); their "
        "snapshots go after retention_snapshot_days.",
    )
    retention_audit_days: float = Field(
        730.0, ge=0, description="Delete audit entries older than this (0: keep forever)."
    )
    retention_check_seconds: float = Field(
        3600.0, gt=0, description="How often the retention job runs."
    )
    retention_stream_seconds: float = Field(
        3600.0,
        gt=0,
        description="Redis stream entries (frames, verdicts with their frames and names, alerts, "
        "dead letters) older than this are trimmed. A consumer stopped for longer loses them.",
    )
    retention_stream_check_seconds: float = Field(
        60.0, gt=0, description="How often old stream entries are trimmed."
    )

    @property
    def max_upload_bytes(self) -> int:
        return self.dashboard_max_upload_bytes * self.dashboard_max_files + 1_000_000

    @field_validator("mqtt_url", "mqtt_discovery_prefix", "mqtt_client_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_webhooks(self) -> DashboardSettings:
        kinds = {*AlertKind, "*"}
        unknown = set(self.dashboard_webhooks) - kinds
        if unknown:
            raise ValueError(f"dashboard_webhooks: unknown alert kinds {sorted(unknown)}")
        for url in (u for urls in self.dashboard_webhooks.values() for u in urls):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"dashboard_webhooks: {url!r} is not an http(s) URL")
        for origin in self.dashboard_cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")):
                raise ValueError(f"dashboard_cors_origins: {origin!r} is not an explicit origin")
        if self.mqtt_url is not None:
            parts = urlsplit(self.mqtt_url)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise ValueError(f"mqtt_url: {redact(self.mqtt_url)!r} is not mqtt:// or mqtts://")
            try:
                parts.port  # noqa: B018  (raises on a port out of range or not a number)
            except ValueError as exc:
                raise ValueError(f"mqtt_url: {exc}") from None
            if parts.password and is_placeholder(parts.password):
                raise ValueError("mqtt_url has a placeholder password; set a generated one")
        if self.dashboard_webhooks and self.dashboard_webhook_secret is None:
            raise ValueError(
                "dashboard_webhooks need WATCHPOST_DASHBOARD_WEBHOOK_SECRET to sign them"
            )
        return self


SERVICE_SETTINGS: dict[str, type[CommonSettings]] = {
    cls.service_name: cls
    for cls in (
        CaptureSettings,
        RecognitionSettings,
        LivenessSettings,
        AggregatorSettings,
        DashboardSettings,
    )
}
