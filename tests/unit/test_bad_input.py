"""A table of bad and odd requests against the in-process app (tests/unit/apps.py): malformed
JSON, wrong types, missing and extra fields, bodies over the limits, deep nesting, unpaired
surrogates, NUL, bidirectional overrides, 4-byte emoji, odd channel names and stream ids, wrong
content types, empty bodies, wrong methods, no session.

For each, the status the contract (docs/protocol.md) calls for: a 4xx with a readable
`{"detail"}` (and nothing started, nothing published), or a 2xx where the input is legitimately
fine, the text then reaching the model exactly as sent. Never a 5xx, never a stack trace.

The settings are the unit tier's: prompts up to 100 characters, history up to 20 turns and
32,000 characters, so the body limit is (100 + 32,000) * 12 + 16 KiB + 20 * 64 = 402,864 bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from itsdangerous import URLSafeTimedSerializer

from backend.api.errors import install_error_handlers
from backend.api.limits import max_body_bytes
from backend.api.session import SESSION_COOKIE
from tests.unit.apps import running_app
from tests.unit.fakes import ScriptedModel

Session = Literal["own", "none", "forged", "other-secret"]
# Replaced by the session's user in paths and bodies.
ME = "{user}"
CHANNEL = f"stream:abcdefgh#{ME}"
JSON = "application/json"
NOT_JSON = "the request body is not valid JSON"
CHANNEL_HINT = "channel: must look like stream:<id>#<user>"
STREAM_ID_HINT = "path.stream_id: must be 8-64 of A-Z a-z 0-9 _ -"
SURROGATE = "unpaired surrogate"
BODY_LIMIT = max_body_bytes(100, 32_000, 20)


@dataclass(frozen=True)
class Probe:
    path: str
    body: bytes | None
    status: int
    detail: str = ""  # part of the `detail` of a 4xx
    prompt: str | None = None  # for a 2xx: the prompt the model got, exactly
    method: str = "POST"
    content_type: str | None = JSON
    session: Session = "own"


def ascii_json(value: object) -> bytes:
    """JSON with everything beyond ASCII as \\u escapes (so lone surrogates can be sent)."""
    return json.dumps(value).encode()


def utf8_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def execute(body: object, status: int, detail: str = "") -> Probe:
    return Probe("/api/execute", ascii_json(body), status, detail)


def sync(body: object, status: int, detail: str = "") -> Probe:
    return Probe("/api/chat/sync", ascii_json(body), status, detail)


def fine_prompt(prompt: str, path: str = "/api/chat/sync") -> Probe:
    """A prompt that is legitimately fine: 200 (202), and the model gets it unchanged."""
    key = "text" if path == "/api/execute" else "prompt"
    body = {key: prompt, "channel": CHANNEL} if path == "/api/execute" else {key: prompt}
    status = 202 if path == "/api/execute" else 200  # /api/chat/sync, /api/chat (SSE)
    return Probe(path, utf8_json(body), status, prompt=prompt)


def channel(name: str, status: int = 422, detail: str = CHANNEL_HINT) -> Probe:
    return execute({"text": "hi", "channel": name}, status, detail)


def stream_id(path_id: str, status: int = 422, detail: str = STREAM_ID_HINT) -> Probe:
    return Probe(f"/api/streams/{path_id}", None, status, detail, method="GET", content_type=None)


def nested(depth: int, open_: str = "[", close: str = "]", leaf: str = "") -> bytes:
    return (open_ * depth + leaf + close * depth).encode()


def turns(count: int, content: str = "x") -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": content} for i in range(count)
    ]


# The cases whose id starts with `parse-400` (the fuzzer, test_fuzz_schema.py, found the first):
# FastAPI answers an undocumented 400 "There was an error parsing the body" when decoding a JSON
# body raises anything but JSONDecodeError: bytes that are not UTF-8 (backend/api/json_body.py).
# Malformed bodies are 422 by the contract and by the schema: these cases fail until
# backend/api/errors.py answers that 400 as a 422. Nesting past the limit and numbers beyond a
# double (`json-deep-*`, `json-5000-digit-number`) took that path too with Python's json module.

CASES = [
    # Malformed JSON.
    pytest.param(Probe("/api/execute", b'{"text": "hi",', 422, NOT_JSON), id="json-truncated"),
    pytest.param(Probe("/api/chat/sync", b'{"prompt": "hi",}', 422, NOT_JSON), id="json-comma"),
    pytest.param(Probe("/api/chat", b"{'prompt': 'hi'}", 422, NOT_JSON), id="json-quotes"),
    pytest.param(Probe("/api/cancel", b'{"channel": }', 422, NOT_JSON), id="json-no-value"),
    pytest.param(Probe("/api/chat/sync", b'{"prompt": "a"}{"b": 1}', 422, NOT_JSON), id="json-two"),
    pytest.param(Probe("/api/chat/sync", b"   ", 422, NOT_JSON), id="json-only-spaces"),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "a\x00b"}', 422, NOT_JSON), id="json-raw-nul-byte"
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "a\nb"}', 422, NOT_JSON), id="json-raw-newline"
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "caf\xe9"}', 422, NOT_JSON),
        id="parse-400-json-latin1-not-utf8",
    ),
    pytest.param(
        Probe("/api/execute", b'{"text": "\xff\xfe", "channel": "stream:abcdefgh#{user}"}', 422),
        id="parse-400-json-invalid-utf8-bytes",
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi", "thinking": ' + b"9" * 5000 + b"}", 422),
        id="json-5000-digit-number",
    ),
    # Not JSON (RFC 8259), though Python's json.loads took them (a security probe: a UTF-16
    # body was started while a Latin-1 one was refused).
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi", "thinking": NaN}', 422, NOT_JSON),
        id="json-nan",
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi", "x": -Infinity}', 422, NOT_JSON),
        id="json-infinity-in-an-extra-field",
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi", "thinking": 1e400}', 422, NOT_JSON),
        id="json-infinite-number",
    ),
    pytest.param(
        Probe("/api/chat/sync", '{"prompt": "hi"}'.encode("utf-16"), 422, "not UTF-8"),
        id="json-utf-16-with-bom",
    ),
    pytest.param(
        Probe("/api/chat/sync", '{"prompt": "hi"}'.encode("utf-16-le"), 422, NOT_JSON),
        id="json-utf-16-without-bom",
    ),
    pytest.param(
        Probe("/api/chat/sync", '{"prompt": "hi"}'.encode("utf-32"), 422, "not UTF-8"),
        id="json-utf-32",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            b"\xef\xbb\xbf" + utf8_json({"prompt": "h\u00e9"}),
            200,
            prompt="h\u00e9",
        ),
        id="json-utf-8-byte-order-mark-passed-over",
    ),
    pytest.param(
        Probe("/api/chat/sync", b"\xef\xbb\xbf" + b'{"prompt": "hi",}', 422, "at character 17:"),
        id="json-after-a-byte-order-mark-where-it-stops-counts-the-mark",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            b"\xef\xbb\xbf" * 2 + b'{"prompt": "hi"}',
            422,
            "more than one byte order mark",
        ),
        id="json-two-byte-order-marks",
    ),
    # Wrong types.
    pytest.param(execute({"text": 5, "channel": CHANNEL}, 422, "text:"), id="type-text-number"),
    pytest.param(execute({"text": None, "channel": CHANNEL}, 422, "text:"), id="type-text-null"),
    pytest.param(execute({"text": ["hi"], "channel": CHANNEL}, 422, "text:"), id="type-text-list"),
    pytest.param(
        execute({"text": "hi", "channel": 123}, 422, "channel:"), id="type-channel-number"
    ),
    pytest.param(
        execute({"text": "hi", "channel": CHANNEL, "thinking": "maybe"}, 422, "thinking:"),
        id="type-thinking-string",
    ),
    # Not true or false: refused, not read as true (pydantic's lax mode took "yes", "1", 1).
    pytest.param(
        execute({"text": "hi", "channel": CHANNEL, "thinking": "yes"}, 422, "thinking:"),
        id="type-thinking-yes",
    ),
    pytest.param(
        execute({"text": "hi", "channel": CHANNEL, "thinking": 1}, 422, "thinking:"),
        id="type-thinking-one",
    ),
    pytest.param(
        sync({"prompt": "hi", "thinking": "true"}, 422, "thinking:"), id="type-thinking-str-true"
    ),
    # Nothing visible is blank too: zero-width space, joiner, BOM, with or without whitespace.
    pytest.param(
        execute({"text": "\u200b", "channel": CHANNEL}, 422, "text: is blank"),
        id="blank-zero-width-space",
    ),
    pytest.param(
        sync({"prompt": " \u200d\ufeff\n"}, 422, "prompt: is blank"), id="blank-invisible-mix"
    ),
    # Control characters and the letters that draw nothing (an outside-in probe: accepted).
    *(
        pytest.param(sync({"prompt": blank}, 422, "prompt: is blank"), id=f"blank-{name}")
        for name, blank in [
            ("nul", "\u0000"),
            ("controls", "\u0001\u0002\u001b "),
            ("hangul-filler", "\u3164"),
            ("hangul-choseong-jungseong-fillers", "\u115f\u1160"),
            ("braille-blank", "\u2800"),
            ("combining-grapheme-joiner", "\u034f"),
            ("khmer-inherent-vowels", "\u17b4\u17b5"),
            ("variation-selectors", "\ufe0f\U000e0100"),
        ]
    ),
    pytest.param(fine_prompt("a\u0000b\u3164c"), id="nul-and-filler-among-letters"),
    pytest.param(sync({"prompt": {"text": "hi"}}, 422, "prompt:"), id="type-prompt-object"),
    pytest.param(sync({"prompt": "hi", "history": "x"}, 422, "history:"), id="type-history-str"),
    pytest.param(
        sync({"prompt": "hi", "history": [["user", "x"]]}, 422, "history.0:"),
        id="type-turn-list",
    ),
    pytest.param(
        sync({"prompt": "hi", "history": [{"role": "system", "content": "x"}]}, 422, "role"),
        id="type-turn-role",
    ),
    pytest.param(
        sync({"prompt": "hi", "history": [{"role": "user", "content": 5}]}, 422, "content"),
        id="type-turn-content",
    ),
    pytest.param(
        Probe("/api/cancel", ascii_json({"channel": [CHANNEL]}), 422, "channel:"),
        id="type-cancel-channel-list",
    ),
    pytest.param(sync([], 422, "body:"), id="type-body-list"),
    pytest.param(sync("hi", 422, "body:"), id="type-body-string"),
    pytest.param(sync(None, 422, "body:"), id="type-body-null"),
    # Missing fields.
    pytest.param(execute({}, 422, "Field required"), id="missing-everything"),
    pytest.param(execute({"text": "hi"}, 422, "channel: Field required"), id="missing-channel"),
    pytest.param(execute({"channel": CHANNEL}, 422, "text: Field required"), id="missing-text"),
    pytest.param(sync({"thinking": True}, 422, "prompt: Field required"), id="missing-prompt"),
    pytest.param(
        Probe("/api/cancel", b"{}", 422, "channel: Field required"), id="missing-cancel-channel"
    ),
    pytest.param(
        sync({"prompt": "hi", "history": [{"role": "user"}]}, 422, "content"),
        id="missing-turn-content",
    ),
    # Extra fields: ignored; identity comes from the session, never from the body.
    pytest.param(
        Probe(
            "/api/chat/sync",
            ascii_json({"prompt": "hi", "model": "gpt-4", "temperature": 9}),
            200,
            prompt="hi",
        ),
        id="extra-fields-ignored",
    ),
    pytest.param(
        Probe(
            "/api/execute",
            ascii_json({"text": "hi", "channel": CHANNEL, "user": "u_someoneelse"}),
            202,
            prompt="hi",
        ),
        id="extra-user-field-changes-nothing",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            ascii_json({"prompt": "hi", "history": [{"role": "user", "content": "a", "n": 1}]}),
            200,
            prompt="hi",
        ),
        id="extra-turn-field-ignored",
    ),
    # Not Unicode, so not JSON: refused wherever it is (it was ignored in an extra field).
    pytest.param(
        Probe("/api/chat/sync", ascii_json({"prompt": "hi", "x": "\ud800"}), 422, SURROGATE),
        id="extra-field-with-surrogate-refused",
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi", "x": ' + nested(100) + b"}", 200, prompt="hi"),
        id="extra-field-nested-100-deep",
    ),
    # Over the limits: characters (422), then the body's bytes (413).
    pytest.param(fine_prompt("x" * 100), id="huge-prompt-at-limit"),
    pytest.param(sync({"prompt": "x" * 101}, 422, "the limit is 100"), id="huge-prompt-101"),
    pytest.param(
        execute({"text": "x" * 20_000, "channel": CHANNEL}, 422, "the limit is 100"),
        id="huge-text-20000",
    ),
    pytest.param(
        sync({"prompt": "hi", "history": turns(21)}, 422, "history has 21 turns"),
        id="huge-history-21-turns",
    ),
    pytest.param(
        sync({"prompt": "hi", "history": turns(5000, "")}, 422, "history has 5000 turns"),
        id="huge-history-5000-turns",
    ),
    # Many small bad items: refused by their count before each one is looked at (an error
    # each, joined into one `detail`, made a reply of megabytes and a second of CPU).
    pytest.param(
        execute(
            {"text": "hi", "channel": CHANNEL, "history": [0] * 30_000},
            422,
            "history has 30000 turns; the limit is 20",
        ),
        id="huge-history-30000-bad-items",
    ),
    pytest.param(
        sync({"prompt": "hi", "history": [0] * 900}, 422, "and 890 more problems"),
        id="history-900-bad-items-listed-in-part",
    ),
    pytest.param(
        sync(
            {
                "prompt": "hi",
                "history": [*turns(19, "x" * 1600), {"role": "user", "content": "x" * 1601}],
            },
            422,
            "history is 32001 characters long",
        ),
        id="huge-history-32001-chars",
    ),
    pytest.param(
        execute({"text": "x" * 500_000, "channel": CHANNEL}, 413, "limit"), id="huge-body-text"
    ),
    pytest.param(
        sync({"prompt": "hi", "ignored": "x" * (BODY_LIMIT + 1)}, 413, "limit"),
        id="huge-body-ignored-field",
    ),
    pytest.param(
        sync({"prompt": "hi", "history": turns(20, "\ud83d\ude00" * 2000)}, 413, "limit"),
        id="huge-body-escaped-history",
    ),
    # Within every character limit, each character an escaped surrogate pair (12 bytes), as
    # Python's json.dumps sends an emoji: accepted (a 413 before, the limit counted 6 a
    # character: an outside-in probe).
    pytest.param(
        Probe(
            "/api/chat/sync",
            ascii_json({"prompt": "\U0001f600" * 100, "history": turns(16, "\U0001f600" * 2000)}),
            200,
            prompt="\U0001f600" * 100,
        ),
        id="escaped-emoji-at-every-limit",
    ),
    # Deep nesting.
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi", "history": ' + nested(10_000) + b"}", 422),
        id="json-deep-10000-lists",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            b'{"prompt": "hi", "x": ' + nested(10_000, '{"a":', "}", "1") + b"}",
            422,
        ),
        id="json-deep-10000-objects",
    ),
    pytest.param(
        Probe("/api/execute", b'{"channel": "x", "text": ' + nested(10_000) + b"}", 422),
        id="json-deep-10000-lists-as-text",
    ),
    pytest.param(
        Probe("/api/chat", nested(10_000), 422),
        id="json-deep-10000-lists-as-body",
    ),
    # Unpaired surrogates (as JSON escapes): not Unicode, refused wherever text is carried.
    pytest.param(sync({"prompt": "\ud800"}, 422, SURROGATE), id="surrogate-high"),
    pytest.param(sync({"prompt": "\ud800\u0041"}, 422, SURROGATE), id="surrogate-high-then-a"),
    pytest.param(sync({"prompt": "\udfff tail"}, 422, SURROGATE), id="surrogate-low"),
    pytest.param(sync({"prompt": "\ude00\ud83d"}, 422, SURROGATE), id="surrogate-pair-reversed"),
    pytest.param(
        execute({"text": "x\udbff", "channel": CHANNEL}, 422, SURROGATE), id="surrogate-in-text"
    ),
    pytest.param(
        Probe(
            "/api/chat", ascii_json({"prompt": "hi", "history": turns(1, "\udc00")}), 422, SURROGATE
        ),
        id="surrogate-in-history",
    ),
    pytest.param(
        execute({"text": "hi", "channel": "stream:abc\ud800defgh#{user}"}, 422, SURROGATE),
        id="surrogate-in-channel",
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "\\ud83d\\ude00"}', 200, prompt="\U0001f600"),
        id="surrogate-pair-escaped-is-an-emoji",
    ),
    # NUL (escaped: valid JSON and valid Unicode, so carried as any other character).
    pytest.param(
        Probe("/api/chat/sync", ascii_json({"prompt": "a\x00b"}), 200, prompt="a\x00b"),
        id="nul-in-prompt",
    ),
    pytest.param(
        Probe(
            "/api/execute",
            ascii_json({"text": "a\x00b", "channel": CHANNEL}),
            202,
            prompt="a\x00b",
        ),
        id="nul-in-text",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            ascii_json({"prompt": "hi", "history": turns(1, "\x00")}),
            200,
            prompt="hi",
        ),
        id="nul-in-history",
    ),
    pytest.param(channel("stream:abcdefgh\x00#{user}"), id="nul-in-channel"),
    pytest.param(stream_id("abcdefgh%00"), id="nul-in-stream-id"),
    # Bidirectional overrides: text like any other.
    pytest.param(fine_prompt("\u202eevil\u202c"), id="rtl-override-in-prompt"),
    pytest.param(fine_prompt("\u202eevil", "/api/execute"), id="rtl-override-in-text"),
    pytest.param(fine_prompt("\u202eevil \U0001f600", "/api/chat"), id="rtl-override-over-sse"),
    pytest.param(channel("stream:abcd\u202eefgh#{user}"), id="rtl-override-in-channel-id"),
    pytest.param(channel("stream:abcdefgh#\u202e{user}"), id="rtl-override-in-channel-user"),
    # 4-byte emoji: one character each (the limit counts characters, not bytes).
    pytest.param(fine_prompt("\U0001f600 hi \U0001f469\u200d\U0001f4bb"), id="emoji-in-prompt"),
    pytest.param(fine_prompt("\U0001f600" * 100), id="emoji-100-at-limit"),
    pytest.param(
        Probe("/api/chat/sync", utf8_json({"prompt": "\U0001f600" * 101}), 422, "limit is 100"),
        id="emoji-101-over-limit",
    ),
    pytest.param(fine_prompt("\U0001f600", "/api/execute"), id="emoji-in-text"),
    pytest.param(
        Probe(
            "/api/chat/sync",
            utf8_json({"prompt": "hi", "history": turns(2, "\U0001f600")}),
            200,
            prompt="hi",
        ),
        id="emoji-in-history",
    ),
    pytest.param(channel("stream:abcdefg\U0001f600#{user}"), id="emoji-in-channel"),
    pytest.param(stream_id("abcdefg\U0001f600"), id="emoji-stream-id"),
    # Odd channel names.
    pytest.param(channel("abcdefgh#{user}"), id="channel-no-namespace"),
    pytest.param(channel("stream:abcdefgh"), id="channel-no-user"),
    pytest.param(channel("stream:abcdefgh#"), id="channel-empty-user"),
    pytest.param(channel(""), id="channel-empty"),
    pytest.param(channel("STREAM:abcdefgh#{user}"), id="channel-namespace-upper"),
    pytest.param(channel("personal:abcdefgh#{user}"), id="channel-other-namespace"),
    pytest.param(
        channel("stream:abcdefgh#u_someoneelse", 403, "another user"), id="channel-other-user"
    ),
    pytest.param(
        Probe("/api/cancel", ascii_json({"channel": "stream:abcdefgh#u_x"}), 403, "another user"),
        id="channel-other-user-cancel",
    ),
    pytest.param(channel("stream:abcdefgh#u_x#{user}"), id="channel-two-users"),
    pytest.param(channel("stream:abcdefg#{user}"), id="channel-id-7"),
    pytest.param(channel("stream:abcdefgh#{user}", 202, ""), id="channel-id-8"),
    pytest.param(channel(f"stream:{'a' * 64}#{ME}", 202, ""), id="channel-id-64"),
    pytest.param(channel(f"stream:{'a' * 65}#{ME}"), id="channel-id-65"),
    pytest.param(channel(f"stream:abcdefgh#{'u' * 65}"), id="channel-user-65"),
    pytest.param(channel("stream:\u00e1bcdefgh#{user}"), id="channel-id-accented"),
    pytest.param(channel("stream:\u0430bcdefgh#{user}"), id="channel-id-cyrillic-a"),
    pytest.param(
        channel("stream:\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18#{user}"),
        id="channel-id-fullwidth-digits",
    ),
    pytest.param(channel("stream:../../etc#{user}"), id="channel-id-dot-dot-slash"),
    pytest.param(channel("stream:..abcdefgh#{user}"), id="channel-id-dot-dot"),
    pytest.param(channel("stream:abcdefgh#.."), id="channel-user-dot-dot"),
    pytest.param(channel(" stream:abcdefgh#{user}"), id="channel-leading-space"),
    pytest.param(channel("stream:abcdefgh#{user} "), id="channel-trailing-space"),
    pytest.param(channel("stream:abcd efgh#{user}"), id="channel-inner-space"),
    pytest.param(channel("stream:abcdefgh#{user}\n"), id="channel-trailing-newline"),
    pytest.param(
        Probe("/api/cancel", ascii_json({"channel": "stream:abcdefgh"}), 422, CHANNEL_HINT),
        id="channel-malformed-cancel",
    ),
    pytest.param(
        Probe("/api/cancel", ascii_json({"channel": CHANNEL}), 404, "no answer"),
        id="channel-own-idle-cancel",
    ),
    # Odd stream ids in the path.
    pytest.param(stream_id("short"), id="stream-id-short"),
    pytest.param(stream_id("a" * 65), id="stream-id-65"),
    pytest.param(stream_id("\u00f1and\u00fa\u00f1and\u00fa"), id="stream-id-unicode"),
    pytest.param(stream_id("abc%20defgh"), id="stream-id-space"),
    pytest.param(stream_id("..abcdefgh"), id="stream-id-dot-dot"),
    pytest.param(stream_id("..%2Fconfig", 404, "Not Found"), id="stream-id-encoded-slash"),
    pytest.param(stream_id("abcdefgh", 404, "no answer"), id="stream-id-unknown"),
    # Wrong content types: only JSON (application/json, or +json) is read.
    pytest.param(
        Probe(
            "/api/chat/sync",
            b'{"prompt": "hi"}',
            422,
            "body: must be JSON, sent with Content-Type: application/json (this request's: "
            "text/plain)",
            content_type="text/plain",
        ),
        id="content-type-text-plain",
    ),
    pytest.param(
        Probe(
            "/api/execute",
            b"text=hi&channel=stream%3Aabcdefgh%23{user}",
            422,
            "Content-Type: application/json",
            content_type="application/x-www-form-urlencoded",
        ),
        id="content-type-form",
    ),
    pytest.param(
        Probe(
            "/api/chat",
            b'--x\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n--x--\r\n',
            422,
            "Content-Type: application/json",
            content_type="multipart/form-data; boundary=x",
        ),
        id="content-type-multipart",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            b'{"prompt": "hi"}',
            422,
            "Content-Type: application/json (this request had none)",
            content_type=None,
        ),
        id="content-type-missing",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            utf8_json({"prompt": "\u00e9t\u00e9"}),
            200,
            prompt="\u00e9t\u00e9",
            content_type="application/json; charset=utf-8",
        ),
        id="content-type-json-charset",
    ),
    pytest.param(
        Probe(
            "/api/chat/sync",
            b'{"prompt": "hi"}',
            200,
            prompt="hi",
            content_type="application/vnd.relaychat+json",
        ),
        id="content-type-plus-json",
    ),
    # Empty bodies.
    pytest.param(Probe("/api/execute", b"", 422, "Field required"), id="empty-execute"),
    pytest.param(Probe("/api/cancel", b"", 422, "Field required"), id="empty-cancel"),
    pytest.param(Probe("/api/chat/sync", b"", 422, "Field required"), id="empty-sync"),
    pytest.param(
        Probe("/api/chat", None, 422, "Field required", content_type=None), id="empty-chat"
    ),
    pytest.param(Probe("/api/token", b"", 200), id="empty-token-is-fine"),
    pytest.param(Probe("/api/token", b"garbage", 200), id="garbage-token-body-is-ignored"),
    # Wrong methods.
    pytest.param(
        Probe("/api/execute", None, 405, "Method Not Allowed", method="GET", content_type=None),
        id="method-get-execute",
    ),
    pytest.param(
        Probe("/api/chat/sync", b'{"prompt": "hi"}', 405, "Method Not Allowed", method="PUT"),
        id="method-put-sync",
    ),
    pytest.param(
        Probe("/api/health", None, 405, "Method Not Allowed", content_type=None),
        id="method-post-health",
    ),
]

# No session: the routes that act for a user answer 401 (the change "Operable and guarded" is
# making; before it, a request without a session got a new anonymous user and these were 403
# for execute and cancel and 200 for the chat routes).
NO_SESSION = [
    pytest.param(
        Probe(path, ascii_json(body), 401, "session", session=session),
        id=f"no-session-401-{path.removeprefix('/api/').replace('/', '-')}-{session}",
    )
    for path, body in [
        ("/api/execute", {"text": "hi", "channel": "stream:abcdefgh#u_x"}),
        ("/api/cancel", {"channel": "stream:abcdefgh#u_x"}),
        ("/api/chat", {"prompt": "hi"}),
        ("/api/chat/sync", {"prompt": "hi"}),
    ]
    for session in ("none", "forged", "other-secret")
]


@pytest.mark.parametrize("case", CASES + NO_SESSION)
async def test_bad_input_gets_a_readable_answer_and_never_a_5xx(case: Probe) -> None:
    async with running_app(ScriptedModel()) as api:
        user = await api.user()
        if case.session != "own":
            api.client.cookies.clear()
        if case.session == "forged":
            api.client.cookies.set(SESSION_COOKIE, "InVfZm9yZ2VkIg.invalidsignature")
        elif case.session == "other-secret":
            other = URLSafeTimedSerializer("o" * 40, salt="relaychat-session")
            api.client.cookies.set(SESSION_COOKIE, other.dumps(user))
        body = None if case.body is None else case.body.replace(ME.encode(), user.encode())
        headers = {"content-type": case.content_type} if case.content_type else {}
        response = await api.client.request(
            case.method, case.path.replace(ME, user), content=body, headers=headers
        )

        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
        assert 'File "' not in response.text
        assert response.status_code == case.status, response.text[:500]
        if response.status_code >= 400:
            assert response.headers["content-type"] == JSON
            detail = response.json()["detail"]
            assert isinstance(detail, str)
            assert detail.strip()
            assert case.detail in detail
            assert len(detail) < 2_000  # readable: a few problems, not thousands
            assert api.model.questions == []
            assert api.publisher.published == []
        elif case.path == "/api/execute":
            await api.publisher.wait_for_done(response.json()["channel"])
        elif case.path == "/api/chat":
            assert response.text.endswith("data: [DONE]\n\n")
        if case.prompt is not None:
            assert [question.prompt for question in api.model.questions] == [case.prompt]


async def test_an_error_detail_no_encoder_takes_is_repaired_not_a_500() -> None:
    """The error handlers' safety net: text from elsewhere (a model server's message) in an
    HTTPException's detail, holding a lone surrogate, made the JSON response itself fail."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fails")
    async def fails() -> None:
        raise HTTPException(502, "the server said \ud800", headers={"X-Why": "test"})

    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/fails")
    assert response.status_code == 502
    assert response.json() == {"detail": "the server said \ufffd"}
    assert response.headers["x-why"] == "test"
