"""How the chat page renders answers: tables, code blocks with their language and highlighting
(highlight.js, fetched after the page shows), text that stays selected while the answer streams
because finished blocks are left alone, a code block still arriving that grows in place (plain,
highlighted once finished), reference links defined in a later block, and a screen reader
hearing each block once, briefly; right-to-left text in its own direction. The test stands in
for the model (tests/e2e/chat.py) to publish exactly the Markdown it wants."""

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
    # A screen reader hears that there is code, which and how long, not the code itself (an
    # 800-line block was read out whole), nor "pythonCopy codedef greet..." (regressions found
    # by browser probes).
    for said in ("Code block, python, 2 lines.", "Code block, text, 1 line."):
        # in one announcement or two, as the blocks were finished in one frame or two
        await expect(page.locator("#announcer p", has_text=said)).to_have_count(1)
    await expect(page.locator("#announcer")).not_to_contain_text("Copy code")
    await expect(page.locator("#announcer")).not_to_contain_text("def greet")

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

    # A screen reader heard each block once, as it was finished, not the answer per frame; then
    # that it is complete (the announcer keeps its last four: "relaychat is answering…" went).
    await expect(page.locator("#announcer p")).to_have_text(
        [
            first,
            "The second one is still growing word by word.",
            "A third paragraph.",
            "Answer complete.",
        ]
    )


async def test_a_code_block_grows_in_place_and_is_highlighted_once_finished(
    page: Page, edge: Edge
) -> None:
    """Regression (browser probe): the code block still arriving was rendered, sanitised and
    highlighted whole on every frame; 800 lines blocked the page for 4 s, and the focus on its
    Copy code button fell to the page. It now grows in place, plain, and is highlighted once."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "long code")
    channel = await model.next_channel()
    await model.chunk(channel, "Here:\n\n```python\ndef f0(x):\n    return x\n")
    answer = page.locator(ANSWER)
    code = answer.locator("pre > code")
    await expect(code).to_contain_text("return x")
    await page.wait_for_function(
        "performance.getEntriesByType('resource').some(e => e.name.includes('/assets/syntax-'))"
    )
    await code.evaluate("code => { code.dataset.original = 'yes'; }")
    copy = answer.get_by_role("button", name="Copy code")
    await copy.focus()
    for n in range(1, 40):
        await model.chunk(channel, f"def f{n}(x):\n    return x * {n}\n")
    await expect(code).to_contain_text("return x * 39")
    # The same element all along, plain while it grows, the focus still on its button.
    await expect(answer.locator("code[data-original=yes]")).to_have_count(1)
    await expect(code.locator("span")).to_have_count(0)
    await expect(copy).to_be_focused()

    await model.chunk(channel, "```\n\nAfter the code.")
    await expect(answer).to_contain_text("After the code.")
    # Finished, it is drawn again (highlighted) once the focus has left it.
    await expect(code.locator("span")).to_have_count(0)
    await page.get_by_label("Your message", exact=True).focus()
    await expect(code.locator(".hljs-keyword").first).to_have_text("def")
    await expect(code.locator(".hljs-keyword", has_text="def")).to_have_count(40)
    # Finished, it is what a page shown afresh would render.
    await model.done(channel)
    await page.locator(FINISHED).wait_for()
    streamed = await answer.inner_html()
    await page.reload()
    await page.locator(FINISHED).wait_for()
    await expect(code.locator(".hljs-keyword", has_text="def")).to_have_count(40)
    assert await answer.inner_html() == streamed

    # An answer that ends inside its code block: highlighted all the same.
    await send(page, "cut code")
    channel = await model.next_channel()
    await model.chunk(channel, "```python\ndef cut():\n    pass\n")
    await expect(answer.nth(1)).to_contain_text("pass")
    await model.done(channel)
    await page.locator(FINISHED).nth(1).wait_for()
    await expect(answer.nth(1).locator(".hljs-keyword")).to_have_text(["def", "pass"])


async def test_the_focus_on_a_growing_code_block_stays_on_its_button_when_the_answer_ends(
    page: Page, edge: Edge
) -> None:
    """Review: the answer's end draws the code block again (highlighted), and the focus on its
    Copy code button fell to the page's start."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "code")
    channel = await model.next_channel()
    await model.chunk(channel, "```python\ndef f(x):\n    return x\n")
    answer = page.locator(ANSWER)
    await expect(answer.locator("pre > code")).to_contain_text("return x")
    await answer.get_by_role("button", name="Copy code").focus()

    await model.done(channel)
    await page.locator(FINISHED).wait_for()

    await expect(answer.locator(".hljs-keyword").first).to_have_text("def")  # drawn again
    await expect(answer.get_by_role("button", name="Copy code")).to_be_focused()


async def test_many_blocks_finished_at_once_are_announced_briefly(page: Page, edge: Edge) -> None:
    """Review: each block's announcement was capped, but blocks finished together (renders
    spaced out, or an answer caught up at once) were read out all together, whole."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "many")
    channel = await model.next_channel()
    paragraphs = [" ".join(f"p{n}w{i}" for i in range(45)) for n in range(12)]  # ~300 each
    await model.chunk(channel, "\n\n".join(paragraphs) + "\n\nAnd then")
    said = page.locator("#announcer p")
    await expect(said).to_have_count(2)
    await expect(said.first).to_have_text("relaychat is answering…")
    text = await said.nth(1).text_content() or ""
    assert text.startswith("p0w0 p0w1 "), text
    assert text.endswith("… (cut short; the answer has the rest)"), text
    assert len(text) < 1_100, len(text)
    await model.done(channel)


async def test_reference_links_defined_in_a_later_block_become_links(
    page: Page, edge: Edge
) -> None:
    """Regression (browser probe): "[the docs][1]" stayed literal after streaming when its
    definition arrived in a later block (its own block was kept as it was); a reload showed the
    link."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "links")
    channel = await model.next_channel()
    answer = page.locator(ANSWER)
    for text in ("See [the docs][1] and [the site][2] for details.\n\n", "More text here.\n\n"):
        await model.chunk(channel, text)
    await expect(answer).to_contain_text("More text here.")
    await expect(answer).to_contain_text("[the docs][1]")
    await model.chunk(channel, "[1]: https://example.com/docs\n")
    await model.chunk(channel, "[2]: https://example.org/\n")
    await model.done(channel)
    await page.locator(FINISHED).wait_for()
    links = answer.get_by_role("link")
    await expect(links).to_have_text(["the docs", "the site"])
    assert [await link.get_attribute("href") for link in await links.all()] == [
        "https://example.com/docs",
        "https://example.org/",
    ]
    await expect(answer.locator("p").first).to_have_text("See the docs and the site for details.")


async def test_a_selection_in_the_growing_block_stays_until_the_reader_leaves_it(
    page: Page, edge: Edge
) -> None:
    """Regression (browser probe): text still arriving could not be selected, as its block
    was drawn again within a frame. It is held as it is while the selection is in it."""
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "select the growing one")
    channel = await model.next_channel()
    await model.chunk(channel, "Finished first.\n\nGrowing words")
    answer = page.locator(ANSWER)
    await expect(answer).to_contain_text("Growing words")
    await (
        answer.locator("p")
        .nth(1)
        .evaluate(
            """p => { const range = document.createRange(); range.selectNodeContents(p);
                  getSelection().removeAllRanges(); getSelection().addRange(range); }"""
        )
    )
    for word in (" one", " two", " three.\n\nNext block", " goes on."):
        await model.chunk(channel, word)
    await expect(answer).to_contain_text("Next block goes on.")
    assert await page.evaluate("getSelection().toString()") == "Growing words"
    # Once the reader leaves it, it catches up, even with nothing more arriving.
    await page.evaluate("getSelection().removeAllRanges()")
    await expect(answer.locator("p")).to_have_text(
        ["Finished first.", "Growing words one two three.", "Next block goes on."]
    )
    await model.done(channel)
    await page.locator(FINISHED).wait_for()
    await expect(page.locator("#announcer p")).to_have_text(
        [
            "Finished first.",
            "Growing words one two three.",
            "Next block goes on.",
            "Answer complete.",
        ]
    )


async def test_announcements_are_cut_short_and_a_stopped_answer_says_no_more(
    page: Page, edge: Edge
) -> None:
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "long")
    channel = await model.next_channel()
    long = " ".join(f"word{n}" for n in range(200))  # about 1,500 characters
    await model.chunk(channel, f"{long}\n\nShort one.\n\nThe rest, which")
    said = page.locator("#announcer p")
    await expect(said).to_have_count(2)
    await expect(said.first).to_have_text("relaychat is answering…")
    text = await said.nth(1).text_content() or ""
    assert text.startswith("word0 word1 "), text
    assert text.endswith("… (cut short; the answer has the rest) Short one."), text
    assert len(text) < 500, len(text)
    # Stopped: the part that had arrived is not read out at its end.
    await model.done(channel, "cancelled")
    await page.locator(FINISHED).wait_for()
    await expect(page.locator(".notice")).to_contain_text("Stopped")
    # Said, if at all, as the answer ends (`finish`), before the notice shows: no wait needed.
    # Only "Stopped." follows, as the announcer says the ending.
    await expect(said).to_have_count(3)
    await expect(said.last).to_have_text("Stopped.")


async def test_right_to_left_text_reads_in_its_own_direction(page: Page, edge: Edge) -> None:
    """Probe: a Hebrew prompt ending in "?" showed its question mark at the right end, and a
    long Arabic title in the list was cut at its start, its first word lost. Code stays left to
    right, and so does a paragraph in English."""
    model = StandInModel(edge)
    await model.install(page)
    rtl = "node => getComputedStyle(node).direction === 'rtl'"
    box = page.get_by_label("Your message", exact=True)
    await box.fill("מה שלומך היום? ספר לי על relaychat")
    assert await box.evaluate(rtl)
    await box.press("Enter")
    answer = ["مرحبا، أنا بخير.\n\n", "```python\nprint('hi')\n```\n\n", "And in English."]
    await model.answer(await model.next_channel(), *answer)
    await page.locator(FINISHED).wait_for()

    assert await page.locator(".turn.user .text").evaluate(rtl)
    assert await page.locator("#conversation-list .title").evaluate(rtl)
    blocks = page.locator(f"{ANSWER} > .block")
    assert [await block.evaluate(rtl) for block in await blocks.all()] == [True, False, False]
    assert not await page.locator(f"{ANSWER} pre").evaluate(rtl)
