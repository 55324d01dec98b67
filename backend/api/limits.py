"""The size limits every prompt endpoint applies, from the settings (so not in the schemas)."""

from __future__ import annotations

from fastapi import HTTPException, status

from backend.config import Settings
from backend.core.types import Question


def max_body_bytes(max_text_chars: int, max_history_chars: int, max_history_turns: int) -> int:
    """Room for the longest prompt and history as JSON (a character takes up to 12 bytes: one
    beyond U+FFFF as the two \\uXXXX escapes of its surrogate pair, as Python's json.dumps
    writes it) plus the structure around them, 16 KiB and 64 bytes a turn (`{"role":
    "assistant", "content": ""}, ` is 38): anything larger is refused unread, here and by nginx
    (scripts/run.py and nginx/body-limit.envsh compute it the same way)."""
    return (max_text_chars + max_history_chars) * 12 + 16 * 1024 + max_history_turns * 64


def check_question(question: Question, settings: Settings) -> Question:
    """`question`, or a 422 with a readable message when its prompt or history is too long."""
    problem = None
    prompt, history = question.prompt, question.history
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
    return question


# nginx's wait for a chat route's response (/api/chat, /api/chat/sync: the sync one answers all
# at once at the end), at least this long.
CHAT_READ_FLOOR_SECONDS = 300
# Beyond MAX_STREAM_SECONDS, for the answer's last steps (its `done`, a shutdown's grace).
CHAT_READ_MARGIN_SECONDS = 60


def chat_read_seconds(max_stream_seconds: float) -> int:
    """How long nginx waits on a chat route: past MAX_STREAM_SECONDS, which ends every answer,
    so that a long one ends with the backend's own answer, not nginx's 504 (an outside-in
    probe: MAX_STREAM_SECONDS above 300 cut /api/chat/sync there). The nginx image derives it
    the same way (nginx/body-limit.envsh)."""
    return max(CHAT_READ_FLOOR_SECONDS, int(max_stream_seconds) + 1 + CHAT_READ_MARGIN_SECONDS)
