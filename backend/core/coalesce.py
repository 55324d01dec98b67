"""Groups a fast token stream into fewer publications without delaying the first token.

A leading-edge throttle: the first token goes out at once; whatever arrives within the next
`window` seconds goes out together when the window closes: one chunk of each phase at most (a
chunk never mixes phases; the reader keeps them apart, so their order does not matter). The
window doubles every `WIDEN_EVERY` chunks, so even a stream that runs for minutes stays a few
hundred publications: well inside the channel's history and Centrifugo's recovery limit.
(Where it sits in a stream's life: docs/architecture.md.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator

from backend.core.types import Chunk, Token

# Doubling every 150 chunks keeps an answer under the channel's 1,000-publication history for
# MAX_STREAM_SECONDS' 120 s at a 30 ms window however fast the model is (~720 chunks; ~860 when
# it sends thinking and answer text in turn, two chunks a window).
WIDEN_EVERY = 150


class _End:
    pass


_END = _End()


async def coalesce(
    tokens: AsyncIterator[Token], window: float, *, widen_every: int = WIDEN_EVERY
) -> AsyncGenerator[Chunk, None]:
    """Yield `tokens` as chunks; `window` <= 0 yields one chunk per token. The window doubles
    every `widen_every` chunks."""
    if window <= 0:
        try:
            async for token in tokens:
                yield Chunk(token.text, token.phase)
        finally:
            await _aclose(tokens)
        return

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Token | _End | Exception] = asyncio.Queue()
    finished = asyncio.Event()  # the source is exhausted or failed: flush without waiting
    pump = asyncio.create_task(_pump(tokens, queue, finished))
    last_flush = -math.inf
    chunks = 0
    try:
        while True:
            batch = [await queue.get()]
            wait = last_flush + window * 2 ** (chunks // widen_every) - loop.time()
            if wait > 0 and not finished.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await finished.wait()
            while not queue.empty() and not isinstance(batch[-1], _End | Exception):
                batch.append(queue.get_nowait())
            for chunk in _group(batch):
                yield chunk
                chunks += 1
            last_flush = loop.time()
            if isinstance(batch[-1], Exception):
                raise batch[-1]
            if isinstance(batch[-1], _End):
                return
    finally:
        pump.cancel()
        # Not `await pump`: if this task is cancelled again while waiting (anyio cancel scopes,
        # as Starlette uses when a client goes away, re-cancel on every await), awaiting a task
        # cancels it again too, which can interrupt the model closing its upstream connection.
        await asyncio.wait([pump])


async def _pump(
    tokens: AsyncIterator[Token],
    queue: asyncio.Queue[Token | _End | Exception],
    finished: asyncio.Event,
) -> None:
    try:
        async for token in tokens:
            queue.put_nowait(token)
    except Exception as exc:  # handed to the consumer, which re-raises it in order
        queue.put_nowait(exc)
    else:
        queue.put_nowait(_END)
    finally:
        finished.set()
        await _aclose(tokens)


async def _aclose(tokens: AsyncIterator[Token]) -> None:
    """Close the source (a model's generator) so it releases what it holds, e.g. a connection."""
    aclose = getattr(tokens, "aclose", None)
    if aclose is not None:
        await aclose()


def _group(batch: list[Token | _End | Exception]) -> list[Chunk]:
    """Join the tokens of each phase, in order (thinking and answer text sent in turn make two
    chunks, not one a token); drop the end marker or error."""
    texts: dict[str, list[str]] = {}
    for item in batch:
        if not isinstance(item, Token):
            break
        texts.setdefault(item.phase, []).append(item.text)
    return [Chunk("".join(parts), phase) for phase, parts in texts.items()]  # type: ignore[arg-type]
