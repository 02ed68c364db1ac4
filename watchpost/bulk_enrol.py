"""Bulk enrolment from a folder laid out `<name>/*.jpg`, through the dashboard's REST API (so
every photo gets the same checks as an upload from the page)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass
class EnrolmentSummary:
    people: int = 0
    created: int = 0
    accepted: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def photos_by_person(folder: Path) -> dict[str, list[Path]]:
    people = {}
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            people[person.name] = photos
    return people


def find_or_create(client: httpx.Client, name: str, summary: EnrolmentSummary) -> int:
    page = client.get("/api/v1/identities", params={"q": name, "limit": 500})
    page.raise_for_status()
    for identity in page.json()["items"]:
        if identity["display_name"] == name:
            return int(identity["id"])
    created = client.post("/api/v1/identities", json={"display_name": name})
    created.raise_for_status()
    summary.created += 1
    return int(created.json()["id"])


def post_photo(client: httpx.Client, path: str, photo: Path, largest: bool) -> httpx.Response:
    """Upload one photo, waiting out the dashboard's enrolment rate limit when it answers 429."""
    while True:
        response = client.post(
            path, params={"largest": largest}, files={"file": (photo.name, photo.read_bytes())}
        )
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers.get("Retry-After", "5")))


def enrol_folder(
    folder: Path, *, url: str, key: str, largest: bool, console: Console
) -> EnrolmentSummary:
    people = photos_by_person(folder)
    summary = EnrolmentSummary(people=len(people))
    total = sum(len(photos) for photos in people.values())
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with (
        httpx.Client(
            base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"}
        ) as client,
        Progress(*columns, console=console) as bar,
    ):
        task = bar.add_task("enrolling", total=total)
        for name, photos in people.items():
            identity_id = find_or_create(client, name, summary)
            for photo in photos:
                bar.update(task, description=f"{name}/{photo.name}")
                response = post_photo(
                    client, f"/api/v1/identities/{identity_id}/faces", photo, largest
                )
                if response.status_code == 201:
                    summary.accepted += 1
                elif response.status_code == 422:
                    for rejection in response.json().get("rejected", []):
                        summary.rejected.append((f"{name}/{photo.name}", rejection["reason"]))
                else:
                    response.raise_for_status()
                bar.advance(task)
    return summary


def print_summary(summary: EnrolmentSummary, console: Console) -> None:
    console.print(
        f"{summary.people} people ({summary.created} new), {summary.accepted} photos enrolled, "
        f"{len(summary.rejected)} rejected"
    )
    if summary.rejected:
        table = Table("photo", "why it was rejected")
        for photo, reason in summary.rejected:
            table.add_row(photo, reason)
        console.print(table)
