"""Text that can be carried: every string that leaves the backend must encode as UTF-8.

A model server may split an emoji's UTF-16 surrogate pair across two chunks (gateways written in
JavaScript or Java do) or send a lone surrogate outright. Python decodes both into strings that
cannot be encoded: the pair is joined again here when its second half follows, and anything
still unpaired becomes U+FFFD, where the model's text enters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from backend.core.types import Token

REPLACEMENT = "\ufffd"


def is_carriable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def repaired(text: str) -> str:
    """`text` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    if is_carriable(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _is_high(char: str) -> bool:
    return "\ud800" <= char <= "\udbff"


async def carriable(tokens: AsyncIterator[Token]) -> AsyncIterator[Token]:
    """`tokens` with text that encodes: a high surrogate ending one token waits for the next,
    whose first character may complete the pair."""
    held: Token | None = None
    try:
        async for token in tokens:
            text = token.text
            if held is not None:
                if held.phase == token.phase:
                    text = held.text + text
                else:
                    yield Token(repaired(held.text), held.phase)
                held = None
            if text and _is_high(text[-1]):
                held, text = Token(text[-1], token.phase), text[:-1]
            if text:
                yield Token(repaired(text), token.phase)
        if held is not None:
            yield Token(repaired(held.text), held.phase)
    finally:
        aclose = getattr(tokens, "aclose", None)
        if aclose is not None:
            await aclose()
