"""Every learner journey of the web app in headless Chromium, signed in through the real mail, with
axe-core's WCAG 2.2 AA checks on each screen and the User Guide's screenshots taken on the way."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from chatwizard.estate.mail import MailSink
from chatwizard.estate.processes import stop_process
from fakellm.testing import RunningFakeLLM
from tests.app.web.conftest import (
    api,
    assert_accessible,
    mailed_link,
    new_context,
    screenshot,
    sign_in,
    web_server,
)
from tests.conftest import AppServer, Databases, RedisNode, User, create_user

SESSION_COOKIE = "__Host-chatwizard_session"


@pytest.fixture
async def learner(databases: Databases, web_app: AppServer, mail_sink: MailSink, page: Page) -> User:
    """A free learner with an API key (to check what the browser did), signed in on ``page``."""
    user = await create_user(databases)
    await sign_in(page, web_app, mail_sink, user.email)
    return user


async def make_path(server: AppServer, user: User, title: str, count: int = 3) -> dict:
    found = (await api(server, "GET", "/v1/videos/search", user.key, params={"q": "roblox", "limit": count})).json()
    video_ids = [v["id"] for v in found["videos"]][:count]
    return (await api(server, "POST", "/v1/paths", user.key, json={"title": title, "video_ids": video_ids})).json()


async def test_an_invited_learner_is_signed_in_from_the_mail(databases: Databases, web_app: AppServer,
                                                             mail_sink: MailSink, browser: Browser, page: Page):
    admin = await create_user(databases, "admin")
    await sign_in(page, web_app, mail_sink, admin.email)
    await page.get_by_role("link", name="Admin").click()
    await assert_accessible(page)
    invited = f"learner-{uuid.uuid4().hex[:8]}@example.com"
    before = len(mail_sink.messages())
    await page.get_by_label("E-mail address").fill(invited)
    await page.get_by_label("Plan").select_option("pro")
    await page.get_by_role("button", name="Send invitation").click()
    await expect(page.get_by_role("status").filter(has_text="Invitation sent")).to_contain_text(invited)
    await screenshot(page, "admin")

    link = await asyncio.to_thread(mailed_link, mail_sink, invited, before)
    assert "/invite#token=" in link
    learner_context = await new_context(browser)
    learner_page = await learner_context.new_page()
    await learner_page.goto(link)
    await expect(learner_page.get_by_role("heading", name="Ask Chat Wizard")).to_be_visible()
    assert learner_page.url == web_app.base_url + "/chat"  # the token left the address bar
    await expect(learner_page.get_by_role("link", name="Admin")).to_be_hidden()  # a learner, not an admin
    (cookie,) = [c for c in await learner_context.cookies() if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"

    await learner_page.goto(link)  # an invitation works once
    await expect(learner_page.get_by_role("alert")).not_to_be_empty()
    await assert_accessible(learner_page)
    await learner_context.close()


async def test_the_sign_in_screen(web_app: AppServer, page: Page):
    await page.goto(web_app.base_url + "/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()  # no session: sign in first
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    await expect(page.locator("main")).not_to_contain_text("null")
    await assert_accessible(page)
    await screenshot(page, "sign-in")


async def test_the_answer_streams_in_then_the_videos(web_app: AppServer, learner: User, page: Page):
    await page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => {
            const answer = document.querySelector(".answer-text[aria-live]");
            if (answer) window.seen.push([answer.textContent.length, document.querySelectorAll(".video").length]);
        }).observe(document.getElementById("main"), {subtree: true, childList: true, characterData: true});
    }""")
    await page.get_by_label("Your question").fill("How do I script a door that opens in Roblox?")
    await page.keyboard.press("Enter")
    videos = page.get_by_role("list", name="Recommended videos").get_by_role("listitem")
    await expect(videos.first).to_be_visible()
    await expect(page.locator(".answer-text[aria-busy=false]")).to_be_visible()
    seen = await page.evaluate("window.seen")
    text_before_videos = sorted({length for length, cards in seen if cards == 0 and length > 0})
    assert len(text_before_videos) >= 5, seen  # the text grew in steps before any video showed
    assert 3 <= await videos.count() <= 5
    first = videos.first
    thumbnail = first.locator("img")
    assert (await thumbnail.get_attribute("loading")) == "lazy"
    assert (await thumbnail.get_attribute("src")).startswith("https://i.ytimg.com/")
    link = first.get_by_role("link")
    assert (await link.get_attribute("href")).startswith("https://www.youtube.com/watch?v=")
    assert await link.get_attribute("target") == "_blank"
    await expect(first.locator(".reason")).not_to_be_empty()
    await expect(page.locator(".source")).to_have_text("Written by a language model from the videos below.")
    await expect(page.get_by_label("Your question")).to_be_focused()
    await assert_accessible(page)
    await screenshot(page, "chat")


async def test_a_conversation_is_continued_from_the_list(web_app: AppServer, learner: User, page: Page):
    await page.get_by_label("Your question").fill("How do I make a part spin in Roblox Studio?")
    await page.get_by_role("button", name="Ask").click()
    await expect(page.locator(".answer-text[aria-busy=false]")).to_be_visible()
    await page.get_by_role("link", name="Conversations").click()
    await assert_accessible(page)
    await screenshot(page, "conversations")
    await page.get_by_role("link", name="How do I make a part spin").click()
    await expect(page.get_by_role("heading", name="Continue your conversation")).to_be_visible()
    await expect(page.locator(".question")).to_have_count(1)
    await expect(page.locator(".answer .source")).to_have_text("Written by a language model from the videos below.")
    await page.get_by_label("Your question").fill("And how do I make it spin faster?")
    await page.get_by_role("button", name="Ask").click()
    await expect(page.locator(".answer-text[aria-busy=false]")).to_be_visible()
    conversations = (await api(web_app, "GET", "/v1/conversations", learner.key)).json()
    assert len(conversations) == 1  # the follow-up went into the same conversation
    messages = (await api(web_app, "GET", f"/v1/conversations/{conversations[0]['id']}", learner.key)).json()
    assert [m["content"] for m in messages["messages"] if m["role"] == "user"] == [
        "How do I make a part spin in Roblox Studio?", "And how do I make it spin faster?"]


async def test_a_path_is_built_and_reordered_with_the_keyboard(web_app: AppServer, learner: User, page: Page):
    await page.get_by_role("link", name="Paths").click()
    await page.get_by_label("Path title").fill("Doors and scripts")
    await page.get_by_label("Find videos").fill("roblox script")
    await page.keyboard.press("Enter")
    boxes = page.get_by_role("group", name="Videos to include").get_by_role("checkbox")
    await expect(boxes.first).to_be_visible()
    titles = [(await boxes.nth(i).locator("xpath=..").inner_text()).strip() for i in range(3)]
    for i in range(3):
        await boxes.nth(i).focus()
        await page.keyboard.press("Space")
    await assert_accessible(page)
    await page.get_by_role("button", name="Create path").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Doors and scripts")).to_be_visible()
    items = page.locator(".path-item > a")
    await expect(items).to_have_text([f"{t} (opens YouTube in a new tab)" for t in titles])

    await page.get_by_role("button", name=f'Move "{titles[0]}" down').focus()
    await page.keyboard.press("Enter")
    moved = [titles[1], titles[0], titles[2]]
    await expect(items).to_have_text([f"{t} (opens YouTube in a new tab)" for t in moved])
    await expect(page.get_by_role("button", name=f'Move "{titles[0]}" down')).to_be_focused()  # focus follows
    await expect(page.locator("#announce")).to_contain_text("position 2 of 3")
    await page.keyboard.press("Enter")  # and again: now last
    await expect(page.get_by_role("button", name=f'Move "{titles[0]}" up')).to_be_focused()
    await assert_accessible(page)
    await screenshot(page, "path")
    await page.reload()  # the order was saved
    await expect(items).to_have_text([f"{t} (opens YouTube in a new tab)" for t in (titles[1], titles[2], titles[0])])


async def test_marking_a_video_watched_shows_progress(web_app: AppServer, learner: User, page: Page):
    path = await make_path(web_app, learner, "Watch me")
    await page.goto(f"{web_app.base_url}/paths?path={path['id']}")
    await expect(page.get_by_text("0 of 3 watched (0 %)")).to_be_visible()
    first = path["items"][0]["title"]
    await page.get_by_role("button", name=f'Mark "{first}" watched').focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("1 of 3 watched (33 %)")).to_be_visible()
    await expect(page.locator(".path-item").first.locator(".done")).to_be_focused()  # focus is not lost
    await page.get_by_role("link", name="Progress").click()
    await expect(page.get_by_text("You completed 1 video")).to_be_visible()
    await expect(page.get_by_role("listitem").filter(has_text=first)).to_contain_text("Watched")
    await assert_accessible(page)
    await screenshot(page, "progress")
    await page.get_by_role("link", name="Paths").click()
    await expect(page.get_by_role("listitem").filter(has_text="Watch me")).to_contain_text("1 of 3 watched (33 %)")
    await expect(page.get_by_role("progressbar", name="Progress of Watch me")).to_be_visible()


async def test_a_study_session_is_scheduled_and_the_feed_url_given(web_app: AppServer, learner: User, page: Page):
    await make_path(web_app, learner, "Evening practice")
    await page.get_by_role("link", name="Calendar").click()
    await page.get_by_label("What to study").select_option(label="Path: Evening practice")
    await page.get_by_label("Starts").fill("2027-03-15T18:30")
    await page.get_by_label("Duration in minutes").fill("45")
    await page.get_by_label("Title (optional)").fill("Practice doors")
    await page.get_by_role("button", name="Schedule").click()
    session = page.get_by_role("listitem").filter(has_text="Practice doors")
    await expect(session).to_contain_text("45 min")
    await page.get_by_role("button", name="Get my feed URL").click()
    feed = page.get_by_label("Your calendar feed URL (keep it private)")
    await expect(feed).to_be_focused()
    url = await feed.input_value()
    assert url.startswith(web_app.base_url + "/calendar/") and url.endswith(".ics")
    async with web_app.client() as client:
        ics = await client.get(url)
    assert ics.status_code == 200 and "SUMMARY:Practice doors" in ics.text
    await assert_accessible(page)
    await screenshot(page, "calendar")


async def test_data_is_exported_then_erased(web_app: AppServer, learner: User, context: BrowserContext, page: Page,
                                           tmp_path: Path):
    await make_path(web_app, learner, "Mine")
    await page.get_by_role("link", name="Your data").click()
    await expect(page.locator("dd").filter(has_text=learner.email)).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, "privacy")
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download my data").click()
    download = await downloading.value
    assert download.suggested_filename == "chatwizard-data.json"
    await download.save_as(tmp_path / "export.json")
    exported = json.loads((tmp_path / "export.json").read_text())
    assert exported["account"]["email"] == learner.email and exported["learning_paths"][0]["title"] == "Mine"

    await page.get_by_role("button", name="Erase my account").click()  # not confirmed yet: nothing happens
    await expect(page.get_by_role("alert")).to_contain_text("Tick the box")
    await expect(page.get_by_label("I understand that this cannot be undone")).to_be_focused()
    assert (await api(web_app, "GET", "/v1/me", learner.key)).status_code == 200
    await page.keyboard.press("Space")
    await page.get_by_role("button", name="Erase my account").click()
    await expect(page.get_by_text("Your account and everything in it have been erased.")).to_be_visible()
    assert (await api(web_app, "GET", "/v1/me", learner.key)).status_code == 401  # gone, keys too
    await page.goto(web_app.base_url + "/chat")  # and the browser's session with it
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_a_request_without_the_csrf_token_is_refused_and_said_so(web_app: AppServer, learner: User,
                                                                        page: Page):
    async def strip_token(route):
        headers = {k: v for k, v in route.request.headers.items() if k.lower() != "x-csrf-token"}
        await route.continue_(headers=headers)

    await page.route("**/v1/chat/stream", strip_token)
    await page.get_by_label("Your question").fill("Will this be refused?")
    await page.get_by_role("button", name="Ask").click()
    await expect(page.get_by_role("alert")).to_contain_text("missing or invalid CSRF token")
    await expect(page.get_by_label("Your question")).to_have_value("Will this be refused?")  # kept for a retry
    assert (await api(web_app, "GET", "/v1/conversations", learner.key)).json() == []


async def test_the_rate_limit_says_when_to_try_again(databases: Databases, redis_node: RedisNode,
                                                     streaming_llm: RunningFakeLLM, mail_sink: MailSink,
                                                     catalogue: Path, page: Page, tmp_path: Path):
    server = web_server(databases, redis_node, streaming_llm, mail_sink, tmp_path, CHATWIZARD_RATE_LIMIT_FREE="3/minute")
    try:
        user = await create_user(databases)
        await sign_in(page, server, mail_sink, user.email)
        for i in range(4):  # three questions are answered, the fourth is over the limit
            await page.get_by_label("Your question").fill(f"How do I weld parts together, take {i}?")
            await page.get_by_role("button", name="Ask").click()
            if i < 3:
                await expect(page.locator(".answer-text[aria-busy=false]")).to_have_count(i + 1)
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("You have made too many requests. Try again in")
        assert "seconds" in await alert.inner_text() or "minutes" in await alert.inner_text()
        await assert_accessible(page)
    finally:
        stop_process(server.process)


async def test_signing_out_ends_the_session(web_app: AppServer, learner: User, context: BrowserContext, page: Page):
    cookie = next(c for c in await context.cookies() if c["name"] == SESSION_COOKIE)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    assert SESSION_COOKIE not in [c["name"] for c in await context.cookies()]
    async with web_app.client(cookies={SESSION_COOKIE: cookie["value"]}) as client:  # ended on the server too
        assert (await client.get("/v1/session")).status_code == 401
    await page.goto(web_app.base_url + "/paths")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_a_phone_sized_screen(databases: Databases, web_app: AppServer, mail_sink: MailSink, browser: Browser):
    phone = await new_context(browser, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = await phone.new_page()
    user = await create_user(databases)
    await sign_in(page, web_app, mail_sink, user.email)
    await page.get_by_label("Your question").fill("How do I add a leaderboard in Roblox?")
    await page.get_by_role("button", name="Ask").click()
    await expect(page.locator(".answer-text[aria-busy=false]")).to_be_visible()
    await screenshot(page, "phone")
    for screen in ("Ask", "Paths", "Calendar", "Your data"):
        await page.get_by_role("link", name=screen, exact=True).click()
        await page.wait_for_load_state("networkidle")
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), screen
        await assert_accessible(page)
    await phone.close()


async def test_an_ended_session_sends_the_learner_back_to_sign_in(web_app: AppServer, learner: User,
                                                                 context: BrowserContext, page: Page):
    """The session ends elsewhere (another tab signs out, it expires): the next screen says so."""
    cookie = next(c for c in await context.cookies() if c["name"] == SESSION_COOKIE)
    async with web_app.client(cookies={SESSION_COOKIE: cookie["value"]}) as client:
        csrf = (await client.get("/v1/session")).json()["csrf_token"]
        assert (await client.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    await page.get_by_role("link", name="Progress").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    await expect(page.locator(".notice")).to_contain_text("sign in")
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
