"""What every model gives the relay: an async stream of tokens, thinking first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from backend.schemas import Phase, Turn


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    phase: Phase = "answer"


class ModelError(Exception):
    """The model could not answer; the message is fit to show to the person who asked."""


class Model(Protocol):
    def stream(
        self, prompt: str, *, thinking: bool = False, history: Sequence[Turn] = ()
    ) -> AsyncIterator[Token]:
        """Yield the answer to `prompt` after `history`, token by token; thinking tokens (if
        asked for) come first. Raise `ModelError` when the model cannot answer."""
        ...
