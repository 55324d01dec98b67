"""The size limits every prompt endpoint applies, from the settings (so not in the schemas)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException, status

from backend.config import Settings
from backend.schemas import Turn


def check_prompt(prompt: str, history: Sequence[Turn], settings: Settings) -> None:
    """Raise 422 with a readable message when the prompt or the history is over its limit."""
    problem = None
    history_chars = sum(len(turn.content) for turn in history)
    if len(prompt) > settings.max_text_chars:
        problem = (
            f"the prompt is {len(prompt)} characters long; the limit is {settings.max_text_chars}"
        )
    elif len(history) > settings.max_history_turns:
        problem = f"history has {len(history)} turns; the limit is {settings.max_history_turns}"
    elif history_chars > settings.max_history_chars:
        problem = (
            f"history is {history_chars} characters long; the limit is {settings.max_history_chars}"
        )
    if problem:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
