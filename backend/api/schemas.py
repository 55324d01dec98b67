"""The HTTP API's request and response bodies (and nothing else): validated at the edge,
turned into the core's types by the routes."""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, field_validator

from backend.centrifugo.channels import CHANNEL_PATTERN, channel_user
from backend.config import HISTORY_TURNS_CEILING
from backend.core.types import Question, StopReason, Turn
from backend.core.unicode import is_carriable

# Letters and marks that draw nothing: the Hangul fillers, the blank Braille pattern, the
# combining grapheme joiner, Khmer's inherent vowels and the variation selectors (an
# outside-in probe's "invisible text").
_INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def _not_blank(text: str) -> str:
    # Blank: nothing a reader could see: whitespace, control characters (NUL among them),
    # invisible format characters (zero-width space, joiners, BOM) and the few letters that
    # draw nothing.
    if all(
        char.isspace() or unicodedata.category(char) in ("Cc", "Cf") or char in _INVISIBLE
        for char in text
    ):
        raise ValueError("is blank")
    return _carriable(text)


NOT_UNICODE = "is not valid Unicode (it holds an unpaired surrogate)"


def _carriable(text: str) -> str:
    if not is_carriable(text):
        raise ValueError(NOT_UNICODE)
    return text


def _carriable_turns(turns: list[Turn]) -> list[Turn]:
    for turn in turns:
        _carriable(turn.content)
    return turns


class _Prompt(BaseModel):
    # JSON true or false only: "yes", "1" or 1 are refused rather than read as true.
    thinking: StrictBool = Field(False, description="Stream the model's thinking phase first.")
    history: list[Turn] = Field(
        default_factory=list,
        max_length=HISTORY_TURNS_CEILING,
        description="Earlier turns, oldest first, before this prompt.",
    )

    _history_carriable = field_validator("history")(_carriable_turns)

    def question(self, prompt: str) -> Question:
        return Question(prompt, self.thinking, tuple(self.history))


class _ChannelBody(BaseModel):
    channel: str = Field(
        pattern=CHANNEL_PATTERN,
        description="`stream:<id>#<user>`, with `<user>` the caller's own user.",
        examples=["stream:3f9a1c2b7d#u_5c0ffee"],
    )

    @property
    def channel_user(self) -> str:
        return channel_user(self.channel)


class ExecuteRequest(_Prompt, _ChannelBody):
    text: str = Field(min_length=1, description="The prompt.")

    _text_not_blank = field_validator("text")(_not_blank)


class CancelRequest(_ChannelBody):
    pass


class ChatRequest(_Prompt):
    prompt: str = Field(min_length=1, description="The prompt.")

    _prompt_not_blank = field_validator("prompt")(_not_blank)


class ChatResponse(BaseModel):
    response: str


class ChannelResponse(BaseModel):
    channel: str


class TokenResponse(BaseModel):
    token: str
    user: str
    expires_in: int


class DoneBody(BaseModel):
    reason: StopReason
    error: str | None = None


class StreamSnapshot(BaseModel):
    """A stream's answer so far: its chunks 1..`seq` joined (answer and thinking apart)."""

    text: str
    thinking: str
    seq: int
    done: DoneBody | None = Field(None, description="How it ended; null while it runs.")


class ClientConfig(BaseModel):
    """The limits every prompt endpoint applies: longer is refused with 422."""

    max_text_chars: int
    max_history_turns: int
    max_history_chars: int


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"


class ErrorResponse(BaseModel):
    detail: str
