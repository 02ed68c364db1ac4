"""Who may do what (pure): the role order, the kiosk role outside it, and which service holds
which service token under `watchpost up`."""

from __future__ import annotations

import pytest

from watchpost.auth import Principal, Role
from watchpost.cli import SERVICES, service_tokens_for_run

MAY = {
    # caller role: the roles whose routes it may use
    Role.kiosk: {Role.kiosk},
    Role.viewer: {Role.viewer},
    Role.operator: {Role.viewer, Role.operator},
    Role.admin: {Role.viewer, Role.operator, Role.admin},
}


@pytest.mark.parametrize("caller", list(Role))
@pytest.mark.parametrize("needed", list(Role))
def test_what_each_role_may_do(caller, needed):
    assert Principal("x", caller, "k").may(needed) == (needed in MAY[caller])


def test_up_gives_each_service_token_to_its_two_services_only(monkeypatch):
    for variable in ("WATCHPOST_DASHBOARD_SERVICE_TOKEN", "WATCHPOST_RECOGNITION_SERVICE_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    given = service_tokens_for_run()
    assert set(given) == set(SERVICES)
    assert set(given["dashboard"]) == {"WATCHPOST_DASHBOARD_SERVICE_TOKEN"}
    assert set(given["recognition"]) == {
        "WATCHPOST_DASHBOARD_SERVICE_TOKEN",
        "WATCHPOST_RECOGNITION_SERVICE_TOKEN",
    }
    assert set(given["liveness"]) == {"WATCHPOST_RECOGNITION_SERVICE_TOKEN"}
    assert given["capture"] == {} and given["aggregator"] == {}
    dashboard = given["dashboard"]["WATCHPOST_DASHBOARD_SERVICE_TOKEN"]
    recognition = given["liveness"]["WATCHPOST_RECOGNITION_SERVICE_TOKEN"]
    assert dashboard != recognition and len(dashboard) >= 32
    assert given["recognition"]["WATCHPOST_DASHBOARD_SERVICE_TOKEN"] == dashboard
    # A run made twice does not reuse tokens.
    assert service_tokens_for_run()["dashboard"] != given["dashboard"]
