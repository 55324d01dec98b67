"""Centrifugo's subscribe proxy (probe H1: one connection churning subscriptions to fresh
channels of its own made Centrifugo keep ~7,000 channel metas a second, +210 MB in 30 s)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backend.api.address import client_address
from backend.centrifugo.subscriptions import (
    ALLOW,
    PERMISSION_DENIED,
    TOO_MANY_NEW_CHANNELS,
    TOO_MANY_REFUSED,
    Buckets,
    Budget,
    SubscribeGate,
)
from backend.core.types import Token
from tests.unit.apps import Api, running_app
from tests.unit.fakes import ScriptedModel


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def unknown(channel: str) -> bool:
    return False


async def known(channel: str) -> bool:
    return True


def gate(clock: Clock) -> SubscribeGate:
    """3 fresh channels at once and 1 a second per user; 5 and 2 a second per address."""
    return SubscribeGate(per_user=Budget(3, 1.0), per_address=Budget(5, 2.0), clock=clock)


async def test_fresh_channels_are_allowed_up_to_the_user_s_burst_then_refused() -> None:
    subscribe = gate(Clock())

    replies = [await subscribe.decide("u1", f"stream:c{n}#u1", "", unknown) for n in range(5)]

    assert replies[:3] == [ALLOW] * 3
    for refused in replies[3:]:
        assert refused["error"]["code"] == TOO_MANY_NEW_CHANNELS
        assert 400 <= refused["error"]["code"] <= 1999
        assert "too many new channels" in refused["error"]["message"]
        assert refused["error"]["temporary"] is True  # the SDKs try again, after a backoff
        assert "result" not in refused


async def test_the_budget_refills_at_its_rate() -> None:
    clock = Clock()
    subscribe = gate(clock)
    for n in range(3):
        await subscribe.decide("u1", f"stream:c{n}#u1", "", unknown)
    assert "error" in await subscribe.decide("u1", "stream:c3#u1", "", unknown)

    clock.now += 1.0

    assert await subscribe.decide("u1", "stream:c4#u1", "", unknown) == ALLOW
    assert "error" in await subscribe.decide("u1", "stream:c5#u1", "", unknown)
    clock.now += 100.0  # never above the burst however long it rested
    assert [await subscribe.decide("u1", f"stream:d{n}#u1", "", unknown) for n in range(4)][3][
        "error"
    ]["code"] == TOO_MANY_NEW_CHANNELS


async def test_a_known_channel_is_allowed_whatever_the_budget_and_costs_none() -> None:
    subscribe = gate(Clock())
    for n in range(3):
        await subscribe.decide("u1", f"stream:c{n}#u1", "", unknown)

    for _ in range(10):  # a reload resubscribing its running and finished answers
        assert await subscribe.decide("u1", "stream:c0#u1", "", known) == ALLOW


async def test_another_user_has_a_budget_of_its_own() -> None:
    subscribe = gate(Clock())
    for n in range(10):
        await subscribe.decide("u1", f"stream:c{n}#u1", "", unknown)

    assert await subscribe.decide("u2", "stream:c0#u2", "", unknown) == ALLOW


async def test_one_address_is_limited_across_its_users() -> None:
    subscribe = gate(Clock())
    replies = [
        await subscribe.decide(f"u{n}", f"stream:c{n}#u{n}", "203.0.113.7", unknown)
        for n in range(7)
    ]

    assert replies[:5] == [ALLOW] * 5
    assert all(reply["error"]["code"] == TOO_MANY_NEW_CHANNELS for reply in replies[5:])
    assert await subscribe.decide("u9", "stream:c9#u9", "198.51.100.1", unknown) == ALLOW


async def test_a_client_going_on_past_its_refusals_is_disconnected() -> None:
    """Each refused subscribe is a call to the backend: one connection made ~770 a second.
    Disconnected, it comes back only through nginx's limit on new WebSockets."""
    clock = Clock()
    subscribe = gate(clock)
    replies = [await subscribe.decide("u1", f"stream:c{n}#u1", "", unknown) for n in range(8)]

    assert replies[:3] == [ALLOW] * 3
    assert all(reply["error"]["code"] == TOO_MANY_NEW_CHANNELS for reply in replies[3:6])
    assert (
        replies[6:]
        == [{"disconnect": {"code": TOO_MANY_REFUSED, "reason": "too many subscribes refused"}}] * 2
    )
    assert 4000 <= TOO_MANY_REFUSED <= 4499  # the SDKs reconnect after it
    assert await subscribe.decide("u1", "stream:c0#u1", "", known) == ALLOW
    assert await subscribe.decide("u2", "stream:c0#u2", "", unknown) == ALLOW

    clock.now += 1.0

    assert await subscribe.decide("u1", "stream:x#u1", "", unknown) == ALLOW


async def test_a_refused_subscribe_takes_nothing_from_the_budget() -> None:
    clock = Clock()
    subscribe = gate(clock)
    for n in range(50):
        await subscribe.decide("u1", f"stream:c{n}#u1", "", unknown)

    clock.now += 1.0

    assert await subscribe.decide("u1", "stream:x#u1", "", unknown) == ALLOW


@pytest.mark.parametrize(
    ("user", "channel"),
    [
        ("u1", "stream:abc#u2"),  # another user's
        ("u1", "stream:abc"),  # no user part
        ("u1", "stream:abc#u1,u2"),  # a list of users: not one this project makes
        ("u1", "other:abc#u1"),
        ("", "stream:abc#"),  # anonymous
    ],
)
async def test_only_the_caller_s_own_channel_is_allowed(user: str, channel: str) -> None:
    reply = await gate(Clock()).decide(user, channel, "", known)

    assert reply == {
        "error": {"code": PERMISSION_DENIED, "message": "permission denied", "temporary": False}
    }


def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    buckets = Buckets(Budget(4, 2.0), clock)
    buckets.take("a")
    assert len(buckets._levels) == 1

    clock.now += 2.0  # refilled completely

    assert buckets.available("a")
    assert len(buckets._levels) == 0


@pytest.mark.parametrize(
    ("header", "address"),
    [
        (None, ""),
        ("", ""),
        ("203.0.113.7", "203.0.113.7"),
        ("1.2.3.4, 203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # an IPv6 client by its /64, as the caps
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_the_client_address_is_nginx_s_forwarded_for(header: str | None, address: str) -> None:
    assert client_address(header) == address


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    model = ScriptedModel([Token("Hello")], endless=True)
    async with running_app(model, SUBSCRIBE_BURST_PER_USER=2, SUBSCRIBE_RATE_PER_USER=0.001) as api:
        yield api


async def proxy(api: Api, user: str, channel: str, address: str = "") -> dict[str, object]:
    headers = {"X-Forwarded-For": address} if address else {}
    body = {"client": "c1", "transport": "websocket", "protocol": "json", "encoding": "json"}
    response = await api.client.post(
        "/centrifugo/subscribe", json={**body, "user": user, "channel": channel}, headers=headers
    )
    assert response.status_code == 200
    reply: dict[str, object] = response.json()
    return reply


async def test_the_proxy_route_allows_a_running_answer_beyond_the_budget(api: Api) -> None:
    user = await api.user()
    assert await proxy(api, user, f"stream:fresh0001#{user}") == {"result": {}}
    assert await proxy(api, user, f"stream:fresh0002#{user}") == {"result": {}}
    refused = await proxy(api, user, f"stream:fresh0003#{user}", "203.0.113.7")
    assert refused["error"] == {
        "code": TOO_MANY_NEW_CHANNELS,
        "message": refused["error"]["message"],  # type: ignore[index]
        "temporary": True,
    }

    channel = f"stream:fresh0003#{user}"
    response = await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
    assert response.status_code == 202

    assert await proxy(api, user, channel) == {"result": {}}  # its retry, once it runs


async def test_the_proxy_route_counts_an_ipv6_client_by_its_64() -> None:
    """One subscriber holds a whole /64: a budget per address would be a new one at every
    address it takes from it (as nginx's rates and the answer caps, the /64 is the client)."""
    model = ScriptedModel([Token("Hello")], endless=True)
    settings = {"SUBSCRIBE_BURST_PER_ADDRESS": 2, "SUBSCRIBE_RATE_PER_ADDRESS": 0.001}
    async with running_app(model, **settings) as api:
        users = [await api.user() for _ in range(4)]
        replies = [
            await proxy(api, user, f"stream:fresh000{n}#{user}", f"2001:db8:1:2::{n + 1}")
            for n, user in enumerate(users[:3])
        ]
        elsewhere = await proxy(api, users[3], f"stream:fresh0009#{users[3]}", "2001:db8:1:3::1")

    assert replies[:2] == [{"result": {}}] * 2
    assert replies[2]["error"]["code"] == TOO_MANY_NEW_CHANNELS  # type: ignore[index]
    assert elsewhere == {"result": {}}


async def test_the_proxy_route_is_not_in_the_public_schema() -> None:
    async with running_app(ScriptedModel(), ENVIRONMENT="development") as api:
        schema = (await api.client.get("/api/openapi.json")).json()

    assert "/centrifugo/subscribe" not in schema["paths"]
    assert all(path.startswith("/api/") for path in schema["paths"])
