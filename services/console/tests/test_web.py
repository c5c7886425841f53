"""Browser sessions (login with a token, HttpOnly SameSite cookie, CSRF on every change),
revoked and expired tokens, the badge's SVG, signed webhooks with retries and a log."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from aiohttp import web
from hms_console.testing import Responder, Running
from hms_console.tokens import KvTokens, new_token, open_bucket
from hms_console.webhooks import SIGNATURE_HEADER, verify
from hms_contracts import IncidentOpened
from hms_testing import wait_until
from nats.js import JetStreamContext

from .conftest import StartConsole


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


async def test_login_sets_an_httponly_samesite_session_and_csrf_guards_changes(
    console: Running, responder: Responder
) -> None:
    async with console.client() as http:
        form = await http.get("/login")
        csrf = csrf_in(form.text)
        cookie = form.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        wrong = await http.post(
            "/login", data={"csrf_token": "x", "token": console.tokens["responder"]}
        )
        assert wrong.status_code == 400
        bad = await http.post("/login", data={"csrf_token": csrf, "token": "hms_nope"})
        assert bad.status_code == 401
        ok = await http.post(
            "/login",
            data={"csrf_token": csrf, "token": console.tokens["responder"], "next": "/dashboard"},
        )
        assert ok.status_code == 303
        assert ok.headers["location"] == "/dashboard"
        page = await http.get(f"/dashboard/{console.ns}")
        assert page.status_code == 200
        session_csrf = csrf_in(page.text)
        assert session_csrf != csrf  # a new session on login
        action = f"/dashboard/{console.ns}/incidents/inc-1/ack"
        forged = await http.post(action, data={"csrf_token": "forged"})
        assert forged.status_code == 403
        missing = await http.post(f"/api/v1/namespaces/{console.ns}/incidents/inc-1/ack")
        assert missing.status_code == 403
        assert responder.seen == []
        done = await http.post(action, data={"csrf_token": session_csrf})
        assert done.status_code == 303
        [request] = responder.seen
        assert request.actor == "token:responder"
        out = await http.post("/logout", data={"csrf_token": session_csrf})
        assert out.status_code == 303
        after = await http.get(f"/dashboard/{console.ns}", headers={"Accept": "text/html"})
        assert after.status_code == 303
        assert after.headers["location"].startswith("/login")


async def test_a_revoked_or_expired_token_opens_nothing(console: Running) -> None:
    store = console.console.tokens
    token, record = new_token("short", "viewer", console.ns, datetime.now(UTC) - timedelta(1))
    await store.put(record)
    async with console.client() as http:
        r = await http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        token, record = new_token("gone", "viewer", console.ns)
        await store.put(record)
        auth = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/api/v1/whoami", headers=auth)).status_code == 200
        await store.put(record.model_copy(update={"revoked_at": datetime.now(UTC)}))
        await asyncio.sleep(2.1)  # the record cache's life
        assert (await http.get("/api/v1/whoami", headers=auth)).status_code == 401
        kv = KvTokens(await open_bucket(console.service.js))
        stored = await kv.record(record.id)
        assert stored is not None
        assert token.split("_")[2] not in stored.model_dump_json()


async def test_the_badge_is_valid_svg_and_says_the_colour_in_words(console: Running) -> None:
    async with console.client("author") as http:
        r = await http.put(
            f"/api/v1/namespaces/{console.ns}/config/alert/sla_latency_breach",
            json={"metric": "api.latency_p99", "condition": "> 1000", "window": "5m"},
        )
        assert r.status_code == 200, r.text
        samples = [
            {"name": "api.latency_p99", "value": v, "unit": "ms",
             "observed_at": datetime.now(UTC).isoformat()}
            for v in [300.0] * 199 + [1500.0]
        ]  # fmt: skip
        r = await http.post(
            f"/api/v1/namespaces/{console.ns}/metrics", json={"source": "p", "samples": samples}
        )
        assert r.status_code == 202
    async with console.client() as http:  # public: agencies embed it

        async def badge() -> str | None:
            r = await http.get(f"/badge/{console.ns}/sla_latency_breach.svg")
            return r.text if r.status_code == 200 and "99.5 %" in r.text else None

        text = await wait_until(badge, timeout=20, message="the badge with data")
    root = ElementTree.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "99.5 % · meets the target" in text
    assert "#1a7f37" in text  # green: 99.5 % against a 99 % target


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    got: list[tuple[bytes, dict[str, str]]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((await request.read(), dict(request.headers)))
        return web.Response(status=500 if len(got) == 1 else 204)  # fails once

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", got
    await runner.cleanup()


async def test_incidents_go_to_webhooks_signed_retried_and_logged(
    start_console: StartConsole,
    receiver: tuple[str, list[tuple[bytes, dict[str, str]]]],
    js: JetStreamContext,
) -> None:
    url, got = receiver
    secret = "s3cret-s3cret-s3cret"
    hooks = [{"name": "pager", "url": url, "secret": secret}]
    async with start_console(webhooks=hooks, webhook_backoff_s=0.2) as console:
        event = IncidentOpened.create(
            namespace=console.ns,
            occurred_at=datetime.now(UTC),
            incident_id="inc-7",
            title="queue stuck",
            severity="warning",
            cause="manual",
        )
        await js.publish(
            event.subject(),
            event.model_dump_json().encode(),
            headers={"Nats-Msg-Id": event.event_id},
        )
        await wait_until(lambda: len(got) >= 2, timeout=20, message="a retried delivery")
        body, headers = got[1]
        assert headers["Hms-Event-Id"] == event.event_id
        assert headers["Hms-Event-Type"] == "incident.opened"
        now = int(datetime.now(UTC).timestamp())
        assert verify(secret, body, headers[SIGNATURE_HEADER], now)
        assert not verify("another-secret-xx", body, headers[SIGNATURE_HEADER], now)
        assert not verify(secret, body + b" ", headers[SIGNATURE_HEADER], now)
        async with console.client("admin") as http:

            async def logged() -> list[dict[str, object]] | None:
                r = await http.get(f"/api/v1/namespaces/{console.ns}/webhooks/deliveries")
                rows: list[dict[str, object]] = r.json()
                return rows if len(rows) >= 2 else None

            rows = await wait_until(logged, timeout=10, message="two attempts in the log")
        assert sorted((r["attempt"], r["status"], r["delivered"]) for r in rows) == [
            (1, 500, False),
            (2, 204, True),
        ]
        await asyncio.sleep(0.5)
        assert len(got) == 2  # delivered: not sent again


async def test_a_revocation_written_elsewhere_holds_at_once_despite_the_auth_cache(
    console: Running, js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hms_console.tokens as tokens_module

    monkeypatch.setattr(tokens_module, "RECORD_TTL_S", 3600.0)  # only the watch may forget
    elsewhere = KvTokens(await open_bucket(js))  # as `hms-ops tokens revoke` writes it
    token, record = new_token("soon-gone", "viewer", console.ns)
    await elsewhere.put(record)
    headers = {"Authorization": f"Bearer {token}"}
    async with console.client() as http:
        for _ in range(3):  # verified once, then served from the cache
            assert (await http.get("/api/v1/whoami", headers=headers)).status_code == 200
        await elsewhere.put(record.model_copy(update={"revoked_at": datetime.now(UTC)}))

        async def refused() -> bool:
            r = await http.get("/api/v1/whoami", headers=headers)
            return r.status_code == 401

        await wait_until(refused, timeout=10, message="the revocation, held")
