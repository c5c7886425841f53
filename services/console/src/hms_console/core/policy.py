"""Roles and the one allow/deny table: every route names the permission it needs.

Deny by default: a route absent from :data:`ROUTES` is refused to everyone (and a test fails),
a principal without a role in the route's namespace is refused, and manual overrides need the
on-call person of that namespace or an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["viewer", "responder", "author", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "responder", "author", "admin")

Need = Literal["public", "authenticated", "read", "respond", "author", "override", "admin"]
"""What a route needs: nothing (public), any valid token, or a rank in the route's namespace;
``override`` is a manual override: the namespace's on-call person, or an admin."""

_RANK: dict[Role, int] = {"viewer": 1, "responder": 2, "author": 3, "admin": 4}
_NEED_RANK: dict[Need, int] = {"read": 1, "respond": 2, "author": 3, "admin": 4}

ALL_NAMESPACES = "*"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id and name, its role, and the namespace it holds it in
    (``*``: every namespace)."""

    token_id: str
    name: str
    role: Role
    namespace: str
    expires_at: datetime | None = None

    def covers(self, namespace: str | None) -> bool:
        return self.namespace == ALL_NAMESPACES or namespace == self.namespace

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


# (method, path template) -> what it needs. The one table the role x route test walks.
ROUTES: dict[tuple[str, str], Need] = {
    # public: the login form, static assets, the embeddable badge, health, OpenAPI
    ("GET", "/"): "public",
    ("GET", "/login"): "public",
    ("POST", "/login"): "public",
    ("POST", "/logout"): "authenticated",
    ("GET", "/static/{path:path}"): "public",
    ("GET", "/badge/{namespace}/{slo}.svg"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/api/v1/whoami"): "authenticated",
    ("GET", "/dashboard"): "authenticated",
    # per-namespace reading
    ("GET", "/dashboard/{namespace}"): "read",
    ("GET", "/dashboard/{namespace}/incidents/{incident_id}"): "read",
    ("GET", "/dashboard/{namespace}/live"): "read",
    ("GET", "/dashboard/{namespace}/graph.svg"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/services"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/config"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/config/{kind}/{name}"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/jobs"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/runs"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/queues"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/metrics"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/metrics/{metric}"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/alerts"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/slos"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/incidents"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/incidents/{incident_id}"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/scaling"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/dead-letters"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/silences"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/audit/verify"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/reports/compliance"): "read",
    ("GET", "/api/v1/namespaces/{namespace}/webhooks/deliveries"): "admin",
    # responders: acknowledge, resolve, approve
    ("POST", "/api/v1/namespaces/{namespace}/incidents/{incident_id}/ack"): "respond",
    ("POST", "/api/v1/namespaces/{namespace}/incidents/{incident_id}/resolve"): "respond",
    ("POST", "/api/v1/namespaces/{namespace}/incidents/{incident_id}/approve"): "respond",
    ("POST", "/dashboard/{namespace}/incidents/{incident_id}/{action}"): "respond",
    # authors: config objects
    ("PUT", "/api/v1/namespaces/{namespace}/config/{kind}/{name}"): "author",
    ("DELETE", "/api/v1/namespaces/{namespace}/config/{kind}/{name}"): "author",
    # agency systems' ingest: a namespace token that may write (author)
    ("POST", "/api/v1/namespaces/{namespace}/metrics"): "author",
    ("POST", "/api/v1/namespaces/{namespace}/events"): "author",
    # manual overrides: on call now, or an admin
    ("POST", "/api/v1/namespaces/{namespace}/playbooks/{playbook}/run"): "override",
    ("POST", "/api/v1/namespaces/{namespace}/silences"): "override",
    ("DELETE", "/api/v1/namespaces/{namespace}/silences/{silence_id}"): "override",
    ("POST", "/api/v1/namespaces/{namespace}/dead-letters/{sequence}/replay"): "override",
    ("POST", "/api/v1/namespaces/{namespace}/queues/{queue}/pause"): "override",
    ("POST", "/api/v1/namespaces/{namespace}/queues/{queue}/resume"): "override",
}


def need_of(method: str, template: str) -> Need | None:
    """What the route needs, or None when it is not in the table (then it is refused)."""
    return ROUTES.get((method.upper(), template))


def allowed(
    principal: Principal | None,
    need: Need | None,
    namespace: str | None,
    *,
    on_call: bool = False,
) -> bool:
    """Whether ``principal`` may call a route that needs ``need`` in ``namespace``.

    ``on_call`` says whether the principal is on call now for the namespace (only asked for
    overrides). Deny by default: unknown routes, missing principals, other namespaces.
    """
    if need is None:
        return False
    if need == "public":
        return True
    if principal is None:
        return False
    if need == "authenticated":
        return True
    if not principal.covers(namespace):
        return False
    rank = _RANK[principal.role]
    if need == "override":
        return rank >= _RANK["admin"] or (on_call and rank >= _RANK["responder"])
    return rank >= _NEED_RANK[need]


def may(principal: Principal | None, need: Need, namespace: str) -> bool:
    """For pages: whether to show an action (overrides only to admins; on-call asked apart)."""
    return allowed(principal, need, namespace)
