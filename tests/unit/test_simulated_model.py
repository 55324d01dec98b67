"""The simulated model: keyword matching, exact text with whitespace, thinking first."""

from __future__ import annotations

import pytest

from backend.core.types import Question, Token
from backend.llm.simulated import (
    CODE,
    DEFAULT,
    EXPLAIN,
    GREETING,
    STREAMING,
    THINKING,
    SimulatedModel,
    answer_for,
    tokenize,
)


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("hello", GREETING),
        ("Hi there", GREETING),
        ("HEY!", GREETING),
        ("greetings, model", GREETING),
        ("please explain this", EXPLAIN),
        ("how does Streaming work?", STREAMING),
        ("show me some code", CODE),
        ("what is the weather", DEFAULT),
    ],
)
def test_keywords_pick_the_answer(prompt: str, answer: str) -> None:
    assert answer_for(prompt) == answer


@pytest.mark.parametrize("prompt", ["this", "think", "which", "they", "codes", "hellos", "xplain"])
def test_keywords_match_whole_words_only(prompt: str) -> None:
    assert answer_for(prompt) == DEFAULT


def test_greeting_starts_with_hello() -> None:
    assert GREETING.startswith("Hello!")


def test_code_answer_is_a_multiline_fenced_centrifuge_js_example() -> None:
    fence = CODE.index("```javascript\n")
    body = CODE[fence:]
    assert body.count("```") == 2
    assert body.count("\n") > 10
    assert "newSubscription" in body
    assert "\n  " in body  # indentation survives


@pytest.mark.parametrize("text", [CODE, GREETING, "  leading", "a\n\n  b\t c  ", "", "\n"])
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(tokenize(text)) == text


def test_tokens_are_words_with_their_whitespace() -> None:
    assert tokenize("Hello!  How\nare you") == ["Hello!  ", "How\n", "are ", "you"]


async def collect(model: SimulatedModel, prompt: str, *, thinking: bool) -> list[Token]:
    return [token async for token in model.stream(Question(prompt, thinking))]


async def test_stream_gives_the_answer_exactly() -> None:
    tokens = await collect(SimulatedModel(0, 0), "code", thinking=False)
    assert "".join(t.text for t in tokens) == CODE
    assert {t.phase for t in tokens} == {"answer"}
    assert len(tokens) > 20


async def test_thinking_comes_first_and_whole() -> None:
    tokens = await collect(SimulatedModel(0, 0), "hello", thinking=True)
    phases = [t.phase for t in tokens]
    first_answer = phases.index("answer")
    assert set(phases[:first_answer]) == {"thinking"}
    assert set(phases[first_answer:]) == {"answer"}
    assert "".join(t.text for t in tokens[:first_answer]) == THINKING
    assert "".join(t.text for t in tokens[first_answer:]) == GREETING


class FakeTime:
    """A clock that moves only when the model sleeps or the reader says it worked."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_delay_is_per_token() -> None:
    time = FakeTime()
    model = SimulatedModel(30, 80, sleep=time.sleep, clock=time.clock)

    tokens = await collect(model, "hello", thinking=False)

    assert len(time.sleeps) == len(tokens)
    assert all(0.030 <= d <= 0.080 for d in time.sleeps)


async def test_a_slow_reader_does_not_slow_the_model_down() -> None:
    """Token i is due at the start plus i delays, as from a model server, not i delays plus
    whatever the reader spent in between."""
    time = FakeTime()
    model = SimulatedModel(50, 50, sleep=time.sleep, clock=time.clock)
    start = time.now
    arrivals = []
    async for _ in model.stream(Question("hello")):
        arrivals.append(time.now - start)
        if len(arrivals) == 2:
            time.now += 0.175  # the reader is busy for 3.5 tokens' time

    assert arrivals[:2] == pytest.approx([0.05, 0.10])
    assert arrivals[2:5] == pytest.approx([0.275, 0.275, 0.275])  # due already: at once
    assert arrivals[5] == pytest.approx(0.30)  # back on the model's own pace
    assert time.sleeps[2:5] == [0.0, 0.0, 0.0]  # but it still yields to the loop
