"""Pydantic models at the edges: request and response bodies, and what goes onto a channel."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

# `stream:<id>#<user>`: the `#` makes it a user-limited channel in Centrifugo, so only the
# connection whose token says `sub=<user>` may subscribe.
STREAM_NAMESPACE = "stream"
CHANNEL_ID_PATTERN = r"[A-Za-z0-9_-]{8,64}"
USER_PATTERN = r"[A-Za-z0-9_-]{1,64}"
CHANNEL_PATTERN = rf"^{STREAM_NAMESPACE}:{CHANNEL_ID_PATTERN}#{USER_PATTERN}$"

StopReason = Literal["complete", "cancelled", "error", "timeout"]
Phase = Literal["thinking", "answer"]


class Turn(BaseModel):
    """One earlier message of the conversation."""

    role: Literal["user", "assistant"]
    content: str


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is blank")
    return text


class _Prompt(BaseModel):
    thinking: bool = Field(False, description="Stream the model's thinking phase first.")
    history: list[Turn] = Field(
        default_factory=list, description="Earlier turns, oldest first, before this prompt."
    )


class ExecuteRequest(_Prompt):
    text: str = Field(min_length=1, description="The prompt.")
    channel: str = Field(
        pattern=CHANNEL_PATTERN,
        description="`stream:<id>#<user>`, with `<user>` the caller's own user.",
        examples=["stream:3f9a1c2b7d#u_5c0ffee"],
    )

    _text_not_blank = field_validator("text")(_not_blank)

    @property
    def channel_user(self) -> str:
        return self.channel.rpartition("#")[2]


class ChatRequest(_Prompt):
    prompt: str = Field(min_length=1, description="The prompt.")

    _prompt_not_blank = field_validator("prompt")(_not_blank)


class ChatResponse(BaseModel):
    response: str


class ExecuteResponse(BaseModel):
    channel: str


class TokenResponse(BaseModel):
    token: str
    user: str
    expires_in: int


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


class ChunkPublication(BaseModel):
    """Part of the answer (or of the thinking phase); may hold several tokens."""

    text: str
    done: Literal[False] = False
    phase: Literal["thinking"] | None = None


class DonePublication(BaseModel):
    """The one last publication of a stream."""

    text: Literal[""] = ""
    done: Literal[True] = True
    reason: StopReason
    error: str | None = None


def publication_data(publication: ChunkPublication | DonePublication) -> dict[str, object]:
    """The JSON object Centrifugo fans out: optional fields are left out, not sent as null."""
    return publication.model_dump(exclude_none=True)
