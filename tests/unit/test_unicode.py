"""Model text that cannot be encoded is made carriable where it enters (backend/core/unicode.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from backend.core.types import Token
from backend.core.unicode import carriable


async def tokens(*items: Token, closed: asyncio.Event | None = None) -> AsyncIterator[Token]:
    try:
        for item in items:
            yield item
    finally:
        if closed is not None:
            closed.set()


async def collect(source: AsyncIterator[Token]) -> list[Token]:
    return [token async for token in carriable(source)]


async def test_a_surrogate_pair_split_across_two_chunks_is_joined() -> None:
    result = await collect(tokens(Token("smile \ud83d"), Token("\ude00 done")))

    assert "".join(t.text for t in result) == "smile \U0001f600 done"
    assert all(t.text.encode("utf-8") for t in result)


async def test_lone_surrogates_become_replacement_characters() -> None:
    result = await collect(tokens(Token("a\udc00b"), Token("end \ud83d")))

    assert "".join(t.text for t in result) == "a\ufffdbend \ufffd"


async def test_a_held_half_does_not_cross_into_another_phase() -> None:
    result = await collect(tokens(Token("think \ud83d", "thinking"), Token("\ude00 answer")))

    assert result == [
        Token("think ", "thinking"),
        Token("\ufffd", "thinking"),
        Token("\ufffd answer"),
    ]


async def test_clean_text_passes_unchanged_and_the_source_is_closed() -> None:
    closed = asyncio.Event()
    source = tokens(Token("plain "), Token("\u00e9\U0001f600"), closed=closed)
    stream = carriable(source)

    assert await anext(stream) == Token("plain ")
    await stream.aclose()  # type: ignore[attr-defined]

    assert closed.is_set()
