"""Requests that change something are refused when the browser says another site sent them."""

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


@pytest.mark.parametrize("where", ["same-origin", "same-site", "none", None])
async def test_posts_from_the_page_or_from_servers_pass(where: str | None) -> None:
    async with running_app(ScriptedModel()) as api:
        await api.user()
        headers = {} if where is None else {"Sec-Fetch-Site": where}
        response = await api.client.post("/api/chat/sync", json={"prompt": "hi"}, headers=headers)
        assert response.status_code == 200


async def test_reading_from_another_site_is_left_to_the_same_origin_policy() -> None:
    async with running_app(ScriptedModel()) as api:
        await api.user()
        response = await api.client.get(
            "/api/streams/abcdefgh", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert response.status_code == 404  # answered: the browser keeps it from the other site
