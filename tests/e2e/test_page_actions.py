"""The actions on the chat page's messages: Stop (button and Esc) with the box open for the next
prompt, Retry, Regenerate, Edit and resend (one edit at a time), Copy and Copy code (none where
there is nothing to copy), and a keyboard that reaches them and stays where it was."""

from __future__ import annotations

from playwright.async_api import Page, expect

from backend.llm.simulated import CODE, GREETING, answer_for
from tests.browser import stored_turns
from tests.e2e.chat import (
    ANSWER,
    FINISHED,
    StandInModel,
    folded,
    last_answer,
    record_executes,
    send,
    stream_id,
)
from tests.stack import Edge

CODE_TEXT = CODE.split("```javascript\n", 1)[1].split("```", 1)[0]


def plain(markdown: str) -> str:
    return folded(markdown.replace("**", "").replace("`", ""))


async def test_stop_keeps_what_arrived_and_ends_the_stream_on_the_server(page: Page) -> None:
    executed = record_executes(page)
    box = page.get_by_label("Your message", exact=True)
    await send(page, "code")
    await expect(page.locator(ANSWER)).to_contain_text("centrifuge-js")
    await expect(last_answer(page)).to_have_attribute("aria-busy", "true")

    # The next prompt can be typed meanwhile; Enter keeps it in the box.
    await box.fill("hello")
    await box.press("Enter")
    await expect(page.locator(".turn.user")).to_have_count(1)
    await expect(box).to_have_value("hello")

    await page.get_by_role("button", name="Stop", exact=True).click()

    notice = last_answer(page).locator(".notice")
    await expect(notice).to_contain_text("Stopped.")
    await expect(last_answer(page)).to_have_attribute("aria-busy", "false")
    await expect(page.locator("#send")).to_have_accessible_name("Send")
    await expect(notice.get_by_role("button", name="Retry")).to_be_visible()

    # The server's stream really ended as cancelled, and the page kept all it had sent.
    channel = executed[0]["channel"]
    snapshot = await (await page.request.get(f"/api/streams/{stream_id(channel)}")).json()
    assert snapshot["done"]["reason"] == "cancelled"
    turns = await stored_turns(page)
    assert turns[1]["reason"] == "cancelled"
    assert turns[1]["answer"] == snapshot["text"]
    assert 0 < len(snapshot["text"]) < len(answer_for("code"))
    assert folded(await page.locator(ANSWER).text_content()).startswith("Here is how")

    # The prompt typed while it streamed goes now.
    await box.press("Enter")
    await expect(page.locator(".turn.user")).to_have_text(["code", "hello"])
    await page.locator(FINISHED).nth(1).wait_for()
    assert folded(await page.locator(ANSWER).nth(1).text_content()) == plain(GREETING)
    # Only complete answers go to the model as history.
    assert executed[1]["history"] == []


async def test_stop_leaves_the_keyboard_on_its_button_which_becomes_send(page: Page) -> None:
    """Probe: the button was disabled while the stop was on its way, which dropped the keyboard
    on it to the page's start (<body>), from the keyboard and with a click alike."""
    button = page.locator("#send")
    for index, way in enumerate(("keyboard", "click")):
        await send(page, "code")
        await expect(page.locator(ANSWER).nth(index)).to_contain_text("centrifuge-js")
        if way == "keyboard":
            await page.get_by_label("Your message", exact=True).press("Tab")
            await expect(button).to_be_focused()
            await expect(button).to_have_accessible_name("Stop")
            await page.keyboard.press("Enter")
        else:
            await button.click()
        await expect(last_answer(page).locator(".notice")).to_contain_text("Stopped.")
        await expect(button).to_have_accessible_name("Send")
        await expect(button).to_be_focused()


async def test_a_second_press_of_stop_does_not_send_what_waits_in_the_box(page: Page) -> None:
    """Review: Stop keeps the keyboard and becomes Send once the answer has ended, so the second
    press of a double click sent the prompt waiting in the box."""
    executed = record_executes(page)
    await send(page, "code")
    await expect(page.locator(ANSWER)).to_contain_text("centrifuge-js")
    box = page.get_by_label("Your message", exact=True)
    await box.fill("my next question")
    # Stop, and a second press the moment the button is Send again.
    await page.evaluate(
        """() => new Promise((resolve) => {
            const button = document.getElementById('send');
            new MutationObserver((_, observer) => {
                if (button.dataset.mode !== 'send') return;
                observer.disconnect();
                button.click();
                resolve();
            }).observe(button, { attributes: true, attributeFilter: ['data-mode'] });
            button.click();
        })"""
    )
    await expect(last_answer(page).locator(".notice")).to_contain_text("Stopped.")
    await expect(box).to_have_value("my next question")
    assert [body["text"] for body in executed] == ["code"]


async def test_escape_stops_and_retry_asks_the_same_prompt_again(page: Page) -> None:
    executed = record_executes(page)
    await send(page, "code")
    await expect(page.locator(ANSWER)).to_contain_text("centrifuge-js")
    await page.get_by_label("Your message", exact=True).press("Escape")
    notice = last_answer(page).locator(".notice")
    await expect(notice).to_contain_text("Stopped.")

    await notice.get_by_role("button", name="Retry").click()
    await expect(page.locator(".turn.assistant")).to_have_count(1)  # in place, not added
    await page.locator(FINISHED).wait_for()
    await expect(last_answer(page).locator(".notice")).to_have_count(0)
    await expect(page.locator(".turn.user")).to_have_text(["code"])
    assert await page.locator(f"{ANSWER} pre > code").text_content() == CODE_TEXT
    assert [body["text"] for body in executed] == ["code", "code"]
    assert executed[0]["channel"] != executed[1]["channel"]
    assert [turn["role"] for turn in await stored_turns(page)] == ["user", "assistant"]


async def test_regenerate_replaces_the_last_answer(page: Page) -> None:
    executed = record_executes(page)
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    await send(page, "explain")
    await page.locator(FINISHED).nth(1).wait_for()

    # Only the last answer offers Regenerate.
    regenerate = page.get_by_role("button", name="Regenerate")
    await expect(regenerate).to_have_count(1)
    await regenerate.click()
    await expect(page.locator(".turn.assistant")).to_have_count(2)
    await page.locator(FINISHED).nth(1).wait_for()
    await expect(page.locator(".turn.user")).to_have_text(["hello", "explain"])

    assert [body["text"] for body in executed] == ["hello", "explain", "explain"]
    # Asked again with the same history as the first time: the exchange before it.
    assert executed[2]["history"] == executed[1]["history"] != []
    turns = await stored_turns(page)
    assert [turn["role"] for turn in turns] == ["user", "assistant"] * 2
    assert turns[3]["channel"] == executed[2]["channel"]
    assert turns[3]["reason"] == "complete"


async def test_edit_and_resend_replaces_the_answers_after_it(page: Page) -> None:
    executed = record_executes(page)
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    await send(page, "explain")
    await page.locator(FINISHED).nth(1).wait_for()

    first = page.locator(".message.from-user").first
    await first.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("textbox", name="Edit your message")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_value("hello")
    await editor.fill("code")
    await page.get_by_role("button", name="Save and send").click()

    await expect(page.locator(".turn.user")).to_have_text(["code"])
    await expect(page.locator(".turn.assistant")).to_have_count(1)
    await page.locator(FINISHED).wait_for()
    assert await page.locator(f"{ANSWER} pre > code").text_content() == CODE_TEXT
    assert executed[-1]["text"] == "code"
    assert executed[-1]["history"] == []  # what came after the edited prompt is gone
    turns = await stored_turns(page)
    assert [(t["role"], t.get("text")) for t in turns] == [("user", "code"), ("assistant", None)]


async def test_editing_can_be_cancelled(page: Page) -> None:
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    edit = page.get_by_role("button", name="Edit")
    await edit.click()
    editor = page.get_by_role("textbox", name="Edit your message")
    await editor.fill("something else")
    await editor.press("Escape")
    await expect(editor).to_have_count(0)
    await expect(page.locator(".turn.user")).to_have_text(["hello"])
    await expect(edit).to_be_focused()
    await expect(page.locator(".turn.assistant")).to_have_count(1)


async def test_one_prompt_is_edited_at_a_time_its_actions_hidden_meanwhile(page: Page) -> None:
    """Probe: a prompt being edited still showed its Copy and Edit (a class's display beat
    `hidden`), and another prompt's Edit opened a second edit beside the first."""
    await send(page, "hello")
    await page.locator(FINISHED).wait_for()
    await send(page, "explain")
    await page.locator(FINISHED).nth(1).wait_for()
    prompts = page.locator(".message.from-user")
    first, second = prompts.nth(0), prompts.nth(1)
    editors = page.get_by_role("textbox", name="Edit your message")

    await first.get_by_role("button", name="Edit", exact=True).click()
    await expect(editors).to_have_value("hello")
    await expect(first.locator(".actions")).to_be_hidden()
    first_copy = first.get_by_role("button", name="Copy your message 1", exact=True)
    await expect(first_copy).to_have_count(0)

    # Another prompt's Edit: the edit left as it was closes.
    await second.get_by_role("button", name="Edit", exact=True).click()
    await expect(editors).to_have_count(1)
    await expect(editors).to_have_value("explain")
    await expect(first.locator(".actions")).to_be_visible()
    await expect(second.locator(".actions")).to_be_hidden()

    # Changed, it is not closed for another: it keeps what was typed, and the keyboard.
    await editors.fill("explain, better")
    await first.get_by_role("button", name="Edit", exact=True).click()
    await expect(editors).to_have_count(1)
    await expect(editors).to_have_value("explain, better")
    await expect(editors).to_be_focused()
    await expect(page.locator("#announcer")).to_contain_text("save or cancel that edit first")
    await editors.press("Escape")
    await expect(editors).to_have_count(0)
    await expect(page.locator(".turn.user")).to_have_text(["hello", "explain"])


async def test_an_answer_with_nothing_in_it_offers_no_copy(page: Page, edge: Edge) -> None:
    """Probe: Copy on an answer stopped before its first word wrote "" to the clipboard,
    replacing what was there, and said "Copied"."""
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.evaluate("navigator.clipboard.writeText('kept')")
    model = StandInModel(edge)
    await model.install(page)
    await send(page, "hello")
    await model.done(await model.next_channel(), "cancelled")  # before its first word
    answer = page.locator(".message.from-assistant")
    await expect(answer.locator(".notice")).to_contain_text("Stopped.")
    await expect(answer.get_by_role("button", name="Copy answer 1", exact=True)).to_have_count(0)
    prompt = page.locator(".message.from-user")
    prompt_copy = prompt.get_by_role("button", name="Copy your message 1", exact=True)
    await expect(prompt_copy).to_have_count(1)

    # An empty code block: Copy code says there is nothing to copy, and copies nothing.
    await send(page, "empty code")
    await model.answer(await model.next_channel(), "```\n```")
    await page.locator(FINISHED).nth(1).wait_for()
    await page.get_by_role("button", name="Copy code").click()
    await expect(page.locator(".copy-code")).to_have_text("Nothing to copy")
    assert await page.evaluate("navigator.clipboard.readText()") == "kept"


async def test_copy_a_prompt_an_answer_and_a_code_block(page: Page) -> None:
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await send(page, "code")
    await page.locator(FINISHED).wait_for()

    async def clipboard() -> str:
        text: str = await page.evaluate("navigator.clipboard.readText()")
        return text

    await page.get_by_role("button", name="Copy code block 1 of answer 1", exact=True).click()
    await expect(page.locator(".copy-code")).to_have_text("Copied")  # for a moment
    assert await clipboard() == CODE_TEXT

    answer = page.locator(".message.from-assistant")
    await answer.get_by_role("button", name="Copy answer 1", exact=True).click()
    assert await clipboard() == answer_for("code")  # the answer's Markdown, exactly

    prompt = page.locator(".message.from-user")
    await prompt.get_by_role("button", name="Copy your message 1", exact=True).click()
    assert await clipboard() == "code"
    await expect(page.locator("#announcer")).to_contain_text("Copied")


async def test_the_keyboard_reaches_every_action(page: Page) -> None:
    await send(page, "code")
    await page.locator(FINISHED).wait_for()
    names: list[str] = []
    await page.locator("body").focus()
    for _ in range(40):
        await page.keyboard.press("Tab")
        name = await page.evaluate(
            """() => { const e = document.activeElement;
                if (!e) return '';
                if (e.tagName === 'PRE') return 'PRE';
                return (e.getAttribute('aria-label') || e.textContent || e.tagName).trim(); }"""
        )
        names.append(" ".join(name.split()))
    # Each Copy is named for what it copies (a row of identical "Copy" could not be told apart).
    wanted_names = (
        "New chat",
        "Copy your message 1",
        "Edit",
        "Copy code block 1 of answer 1",
        "Copy answer 1",
        "Regenerate",
        "Send",
    )
    for wanted in wanted_names:
        assert wanted in names, (wanted, names)
    assert any(name.startswith("Rename") for name in names), names
    assert any(name.startswith("Delete") for name in names), names
    # The code block scrolls sideways, so the keyboard reaches it too.
    assert "PRE" in names, names
