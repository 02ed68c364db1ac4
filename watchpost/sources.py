"""Camera sources: which may be added and opened (an allow-list of kinds, hosts and folders), and
how they are shown to people and logs (credentials redacted). Pure apart from name resolution,
which callers may replace.

A camera source is a video file path, a webcam index (`0`), or an rtsp/rtsps/http/https URL.
Without a limit, whoever may add a camera could make capture open any file the service can read,
the host's webcam, or any address it can reach (its own services, cloud metadata).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

SourceKind = Literal["file", "webcam", "rtsp", "rtsps", "http", "https"]
NETWORK_KINDS = frozenset({"rtsp", "rtsps", "http", "https"})
# Where cameras usually are. Loopback (this host's own services) and link-local (cloud metadata
# at 169.254.169.254) are deliberately not in it.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

Resolver = Callable[[str], list[str]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceNotAllowed(ValueError):
    """The source is outside the allow-list; the message says which part and which setting."""


def resolve_host(host: str) -> list[str]:
    """Every address the name resolves to (empty when it does not resolve)."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except (socket.gaierror, UnicodeError):
        return []


def source_kind(source: str) -> str:
    """file, webcam, or the URL's scheme (lower case; `file://` is a file)."""
    if source.isdigit():
        return "webcam"
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        return "file" if scheme == "file" else scheme
    return "file"


@dataclass(frozen=True)
class SourcePolicy:
    kinds: frozenset[str]
    hosts: tuple[str, ...]  # CIDR networks and host names (`cam1.lan`, `*.cameras.lan`)
    dirs: tuple[Path, ...]

    def check(self, source: str, *, resolve: Resolver = resolve_host) -> None:
        """Raise SourceNotAllowed unless the source is within the allow-list."""
        kind = source_kind(source)
        if kind not in self.kinds:
            raise SourceNotAllowed(
                f"{kind} sources are not allowed (WATCHPOST_CAMERA_SOURCE_KINDS: "
                f"{', '.join(sorted(self.kinds)) or 'none'})"
            )
        if kind == "file":
            self._check_file(source)
        elif kind in NETWORK_KINDS:
            self._check_host(source, resolve)

    def _check_file(self, source: str) -> None:
        path = urlsplit(source).path if "://" in source else source
        # resolve() removes `..` and follows symbolic links, so neither leads out of a folder.
        real = Path(path).resolve()
        if not any(real.is_relative_to(folder.resolve()) for folder in self.dirs):
            raise SourceNotAllowed(
                "the file is outside the folders cameras may read (WATCHPOST_CAMERA_SOURCE_DIRS)"
            )

    def _check_host(self, source: str, resolve: Resolver) -> None:
        try:
            host = urlsplit(source).hostname
        except ValueError:
            host = None
        if not host:
            raise SourceNotAllowed("the URL names no host")
        if any(_name_matches(host, entry) for entry in self.hosts if not _network(entry)):
            return
        networks = [n for n in (_network(e) for e in self.hosts) if n is not None]
        addresses = [host] if _address(host) is not None else resolve(host)
        if not addresses:
            raise SourceNotAllowed(f"the host {host} does not resolve")
        outside = [a for a in addresses if not _in_any(a, networks)]
        if outside:
            raise SourceNotAllowed(
                f"the host {host} ({', '.join(outside)}) is outside the networks cameras may be "
                "on (WATCHPOST_CAMERA_SOURCE_HOSTS)"
            )


def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_any(
    address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    parsed = _address(address.split("%", 1)[0])  # drop an IPv6 zone
    if parsed is None:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return any(parsed.version == n.version and parsed in n for n in networks)


def _name_matches(host: str, entry: str) -> bool:
    host, entry = host.lower().rstrip("."), entry.lower().rstrip(".")
    if entry.startswith("*."):
        return host.endswith(entry[1:])
    return host == entry


# user:password@ in any URL, and query parameters that carry secrets (some cameras take them so).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:user(?:name)?|pass(?:word)?|pwd|token|key|secret|auth|sig(?:nature)?)=)[^&\s#]+"
)


def redact(text: str) -> str:
    """The text with URL credentials replaced by `***` (sources, error messages, log lines)."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
