"""The audit log (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.dashboard.api import api_router
from services.dashboard.auth import Admin
from services.dashboard.deps import ConnDep
from services.dashboard.schemas import (
    AuditEntry,
)
from watchpost.db import audit_log as audit_rows

router = api_router()


@router.get("/audit", response_model=list[AuditEntry], tags=["audit"])
def audit_log(
    conn: ConnDep,
    who: Admin,
    before_id: Annotated[int | None, Query(ge=1, description="Entries older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEntry]:
    """Who enrolled, erased, acknowledged, changed cameras or signed in; newest first."""
    return [
        AuditEntry.model_validate(r)
        for r in audit_rows.list_audit(conn, limit=limit, before_id=before_id)
    ]
