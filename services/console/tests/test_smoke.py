from __future__ import annotations

from hms_console.testing import Running


async def test_whoami_names_the_token(console: Running) -> None:
    async with console.client("viewer") as http:
        r = await http.get("/api/v1/whoami")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "viewer", "role": "viewer", "namespace": console.ns}
