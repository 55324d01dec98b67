"""The channel names answers stream into: `stream:<id>#<user>`.

`<user>`, after the `#`, owns it: Centrifugo asks the backend's subscribe proxy about every
subscribe in the namespace `stream` (centrifugo/config.json; backend/centrifugo/subscriptions.py),
which lets in only the connection whose token says `sub=<user>`.
"""

from __future__ import annotations

STREAM_NAMESPACE = "stream"
CHANNEL_ID_PATTERN = r"[A-Za-z0-9_-]{8,64}"
USER_PATTERN = r"[A-Za-z0-9_-]{1,64}"
CHANNEL_PATTERN = rf"^{STREAM_NAMESPACE}:{CHANNEL_ID_PATTERN}#{USER_PATTERN}$"
ID_CHARACTERS = "8-64 of A-Z a-z 0-9 _ -"
CHANNEL_HINT = f"must look like stream:<id>#<user>, <id> being {ID_CHARACTERS}"
STREAM_ID_HINT = f"must be {ID_CHARACTERS} (the <id> of stream:<id>#<user>)"


def stream_channel(stream_id: str, user: str) -> str:
    return f"{STREAM_NAMESPACE}:{stream_id}#{user}"


def channel_user(channel: str) -> str:
    """The user a (well-formed) channel belongs to."""
    return channel.rpartition("#")[2]
