"""Requests that change something are refused when the browser says another site sent them:
in `Sec-Fetch-Site`, or, where browsers send none (plain HTTP beyond localhost), in `Origin`."""

from __future__ import annotations

import pytest

from backend.api.cross_site import CROSS_SITE_REFUSED
from tests.unit.apps import running_app
from tests.unit.fakes import ScriptedModel


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/token", None),
        ("/api/execute", {"text": "hi", "channel": "stream:abcdefgh#{user}"}),
        ("/api/cancel", {"channel": "stream:abcdefgh#{user}"}),
        ("/api/chat/sync", {"prompt": "hi"}),
    ],
)
async def test_a_cross_site_post_is_refused_and_changes_nothing(
    path: str, body: dict[str, str] | None
) -> None:
    async with running_app(ScriptedModel()) as api:
        user = await api.user()
        if body is not None:
            body = {key: value.replace("{user}", user) for key, value in body.items()}
        response = await api.client.post(path, json=body, headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 403
        assert response.json() == {"detail": CROSS_SITE_REFUSED}
        assert "set-cookie" not in response.headers
        assert api.model.questions == []
        assert await api.user() == user


# As Centrifugo is told them: only those written out count for POSTs.
ALLOWED = "http://chat.corp:9000 http://*.example.com * http://* https://Team.Example.COM/"


@pytest.mark.parametrize(
    "headers",
    [
        # Over plain HTTP beyond localhost browsers send no Sec-Fetch-Site (an outside-in probe:
        # another site's form replaced the session), but an Origin.
        [("Origin", "http://evil.example:8080")],
        [("Origin", "http://evil.example"), ("X-Forwarded-Host", "chat.example")],
        [("Origin", "null")],  # a sandboxed frame, a data: page, a redirect across sites
        [("Origin", "http://[::1")],  # unreadable
        [("Origin", "http://chat.corp:9001")],  # not one of the allowed origins
        [("Origin", "http://example.com.evil.test")],
        # Globs are Centrifugo's alone (a review: `*`, allow all, let every form through).
        [("Origin", "http://evil.test")],
        [("Origin", "http://a.example.com")],
        [("Sec-Fetch-Site", "Cross-Site")],
        [("Sec-Fetch-Site", "none"), ("Sec-Fetch-Site", "cross-site")],
        [("Sec-Fetch-Site", "cross-site"), ("Origin", "http://test")],
    ],
)
async def test_a_post_from_another_site_s_page_is_refused(headers: list[tuple[str, str]]) -> None:
    async with running_app(ScriptedModel(), CENTRIFUGO_CLIENT_ALLOWED_ORIGINS=ALLOWED) as api:
        user = await api.user()
        response = await api.client.post("/api/token", headers=headers)
        assert response.status_code == 403
        assert response.json() == {"detail": CROSS_SITE_REFUSED}
        assert await api.user() == user


@pytest.mark.parametrize(
    "headers",
    [
        [],  # a server, a script
        [("Sec-Fetch-Site", "same-origin")],
        [("Sec-Fetch-Site", "same-site")],
        [("Sec-Fetch-Site", "none")],
        # No Sec-Fetch-Site (plain HTTP): the Origin names the host asked, whatever the port.
        [("Origin", "http://test")],
        [("Origin", "http://TEST:9000")],
        [("Origin", "https://test:443")],
        # Behind a proxy that rewrites Host and says what it was.
        [("Origin", "http://chat.example:9000"), ("X-Forwarded-Host", "chat.example:9000")],
        [("Origin", "http://chat.example"), ("X-Forwarded-Host", "a.example, chat.example")],
        [("Origin", "http://[::1]:9000"), ("X-Forwarded-Host", "[::1]")],
        # nginx passes Host without the final dot the browser may have kept (a review).
        [("Origin", "http://chat.example.:9000"), ("X-Forwarded-Host", "chat.example")],
        # Behind a proxy that rewrites Host and says nothing of it: the origins Centrifugo is
        # told to allow (a review: the page's own POSTs were refused there).
        [("Origin", "http://chat.corp:9000")],
        [("Origin", "https://team.example.com")],
    ],
)
async def test_posts_from_the_page_or_from_servers_pass(headers: list[tuple[str, str]]) -> None:
    async with running_app(ScriptedModel(), CENTRIFUGO_CLIENT_ALLOWED_ORIGINS=ALLOWED) as api:
        await api.user()
        response = await api.client.post("/api/chat/sync", json={"prompt": "hi"}, headers=headers)
        assert response.status_code == 200


async def test_reading_from_another_site_is_left_to_the_same_origin_policy() -> None:
    async with running_app(ScriptedModel()) as api:
        await api.user()
        response = await api.client.get(
            "/api/streams/abcdefgh", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert response.status_code == 404  # answered: the browser keeps it from the other site
