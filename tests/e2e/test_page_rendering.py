"""How the chat page renders answers: tables, code blocks with their language and highlighting
(highlight.js, fetched after the page shows), text that stays selected while the answer streams
because finished blocks are left alone, and a screen reader hearing each block once. The test
stands in for the model (tests/e2e/chat.py) to publish exactly the Markdown it wants."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.e2e.chat import ANSWER, FINISHED, StandInModel, send
from tests.stack import Edge

RICH = [
    "| Tool | Language | Stars |\n|:---|:---:|---:|\n| httpx | Python | 13k |\n",
    "| marked | JavaScript | 33k |\n\n",
    "```python\ndef greet(name: str) -> str:\n    return f'Hello, {name}!'\n```\n\n",
    "```\nplain text, no language\n```\n\n",
    'Inline `code` and <b onclick="x">html</b> stay text.',
]


async def test_tables_code_labels_and_highlighting(page: Page, edge: Edge) -> None:
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "rich")
    await model.answer(await model.next_channel(), *RICH)
    await page.locator(FINISHED).wait_for()
    answer = page.locator(ANSWER)

    table = answer.locator(".table-frame > table")
    await expect(table.locator("th")).to_have_text(["Tool", "Language", "Stars"])
    await expect(table.locator("tbody tr")).to_have_count(2)
    await expect(table.locator("tbody tr").first.locator("td")).to_have_text(
        ["httpx", "Python", "13k"]
    )
    # Headers are set apart from the rows, not run together.
    header = await table.locator("th").first.evaluate(
        "th => [getComputedStyle(th).fontWeight, getComputedStyle(th).paddingLeft]"
    )
    assert int(header[0]) >= 600, header
    assert header[1] != "0px", header

    await expect(answer.locator(".code-language")).to_have_text(["python", "text"])
    python = answer.locator("pre > code").first
    assert await python.text_content() == (
        "def greet(name: str) -> str:\n    return f'Hello, {name}!'\n"
    )
    await expect(python.locator(".hljs-keyword").first).to_have_text("def")
    await expect(python.locator(".hljs-string")).to_have_count(1)
    await expect(answer.locator("pre > code").nth(1).locator("span")).to_have_count(0)
    await expect(answer.get_by_role("button", name="Copy code")).to_have_count(2)
    # A screen reader hears which code, then the code: not "pythonCopy codedef greet...".
    # (Regression, found by a browser probe.)
    for said in (
        "Code, python: def greet(name: str) -> str: return f'Hello, {name}!'",
        "Code, text: plain text, no language",
    ):  # in one announcement or two, as the blocks were finished in one frame or two
        await expect(page.locator("#announcer p", has_text=said[:12])).to_contain_text(said)
    await expect(page.locator("#announcer")).not_to_contain_text("Copy code")

    await expect(answer.locator("p code")).to_have_text(["code"])
    await expect(answer.locator("b, [onclick]")).to_have_count(0)
    await expect(answer).to_contain_text('<b onclick="x">html</b> stay text.')
    # The highlighter is a chunk of its own that the page fetches after it has shown: the
    # page's own script tags do not name it.
    fetched = await page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/assets/syntax-" in url for url in fetched), fetched
    scripts = await page.locator("script[src]").evaluate_all("all => all.map(s => s.src)")
    assert len(scripts) == 1, scripts
    assert "/assets/app-" in scripts[0], scripts


async def test_text_stays_selected_while_the_answer_streams(page: Page, edge: Edge) -> None:
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "select")
    channel = await model.next_channel()
    first = "The first paragraph, finished and selectable."
    await model.chunk(channel, f"{first}\n\n")
    await model.chunk(channel, "The second one is ")
    answer = page.locator(ANSWER)
    await expect(answer).to_contain_text("The second one is")

    paragraph = answer.locator("p").first
    await paragraph.evaluate(
        """p => { p.dataset.original = 'yes';
                  const range = document.createRange(); range.selectNodeContents(p);
                  getSelection().removeAllRanges(); getSelection().addRange(range); }"""
    )
    selected = "getSelection().toString()"
    assert await page.evaluate(selected) == first

    words = ["still ", "growing ", "word ", "by ", "word.\n\n", "A third ", "paragraph."]
    for word in words:
        await model.chunk(channel, word)
        await expect(answer).to_contain_text(word.strip())
        assert await page.evaluate(selected) == first, word
    await model.done(channel)
    await page.locator(FINISHED).wait_for()
    assert await page.evaluate(selected) == first
    # The same element all along: the finished block was never rendered again.
    await expect(answer.locator("p[data-original=yes]")).to_have_text(first)
    await expect(answer.locator("p")).to_have_text(
        [first, "The second one is still growing word by word.", "A third paragraph."]
    )

    # A screen reader heard each block once, as it was finished, not the answer per frame.
    await expect(page.locator("#announcer p")).to_have_text(
        [first, "The second one is still growing word by word.", "A third paragraph."]
    )
