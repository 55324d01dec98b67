"""Prometheus metrics of the real processes: the backend's `/metrics` and Centrifugo's own move
after a stream; neither is reachable through nginx."""

from __future__ import annotations

import re

import httpx

from tests.clients import ChatSession
from tests.stack import Edge, Stack


def total(metrics: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    found = 0.0
    for line in metrics.splitlines():
        match = re.match(rf"{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            found += float(match.group(2))
    return found


async def test_both_metrics_move_after_a_stream(stack: Stack, session: ChatSession) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        backend_before = (await http.get(f"{stack.backend_url}/metrics")).text
        centrifugo_before = (await http.get(f"{stack.centrifugo_url}/metrics")).text

        channel = session.new_channel()
        sub, collector = await session.subscribe(channel)
        assert (await session.execute(channel, "hello")).status_code == 202
        publications = await collector.wait_for_done()
        await sub.unsubscribe()
        await session.wait_until_released(channel)

        backend = (await http.get(f"{stack.backend_url}/metrics")).text
        centrifugo = (await http.get(f"{stack.centrifugo_url}/metrics")).text

    chunks = len(publications) - 1
    for name, grew_by in [
        ("relaychat_streams_started_total", 1),
        ("relaychat_chunks_relayed_total", chunks),
    ]:
        assert total(backend, name) - total(backend_before, name) >= grew_by, name
    ended = "relaychat_streams_ended_total"
    assert total(backend, ended, reason="complete") > total(
        backend_before, ended, reason="complete"
    )
    published = "relaychat_publications_total"
    assert (
        total(backend, published, outcome="ok") - total(backend_before, published, outcome="ok")
        >= chunks + 1
    )
    assert total(backend, "relaychat_publish_batch_size_count") > 0
    assert total(backend, "http_requests_total", handler="/api/execute") > 0

    sent = "centrifugo_node_messages_sent_count"
    assert total(centrifugo, sent) - total(centrifugo_before, sent) >= chunks + 1, [
        line for line in centrifugo.splitlines() if "messages" in line
    ][:20]


async def test_metrics_are_not_reachable_through_nginx(edge: Edge) -> None:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
        for path in ("/metrics", "/api/metrics", "/connection/metrics", "/api/../metrics"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert "relaychat_" not in response.text
            assert "centrifugo_" not in response.text
