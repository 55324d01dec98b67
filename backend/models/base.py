"""What every model gives the relay: an async stream of tokens, thinking first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from backend.schemas import Phase


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    phase: Phase = "answer"


class Model(Protocol):
    def stream(self, prompt: str, *, thinking: bool = False) -> AsyncIterator[Token]:
        """Yield the answer to `prompt` token by token; thinking tokens (if asked) come first."""
        ...
