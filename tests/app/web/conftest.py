"""The web app in a real browser: Debian's chromium driven headless by Playwright's API, against its own
app server (a fake LLM that streams at a readable pace), with axe-core's WCAG 2.2 AA checks."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from chatwizard.estate.mail import MailSink
from chatwizard.estate.processes import stop_process
from fakellm.config import FakeLLMConfig
from fakellm.testing import RunningFakeLLM, running_fake_llm
from tests.conftest import AppServer, Databases, RedisNode, app_env, start_server

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parents[3] / "docs" / "user-guide"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture(scope="session")
def streaming_llm() -> Iterator[RunningFakeLLM]:
    """Answers token by token at a pace a test (and a person) can see arrive: ~2 s per answer."""
    config = FakeLLMConfig(latency_mode="fixed", ttft_median_s=0.2, ttft_p95_s=0.2, tokens_per_second=80,
                           stream_chunk_tokens=2, embedding_median_s=0.0, embedding_p95_s=0.0)
    with running_fake_llm(config) as llm:
        yield llm


def web_server(databases: Databases, redis_node: RedisNode, llm: RunningFakeLLM, mail_sink: MailSink,
               tmp: Path, **overrides: str) -> AppServer:
    # A prompt version of its own keeps the suite's shared answer cache out: every answer here is generated,
    # so it streams token by token (a cached one arrives at once).
    return start_server(app_env(databases, redis_node, llm, tmp, CHATWIZARD_SMTP_PORT=str(mail_sink.port),
                                CHATWIZARD_PROMPT_VERSION=f"web-{uuid.uuid4().hex[:8]}", **overrides), tmp)


@pytest.fixture(scope="session")
def web_app(databases: Databases, redis_node: RedisNode, streaming_llm: RunningFakeLLM, mail_sink: MailSink,
            catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    tmp = tmp_path_factory.mktemp("web")
    server = web_server(databases, redis_node, streaming_llm, mail_sink, tmp)
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        await browser.close()


# YouTube's thumbnail CDN is not reachable from here: a stand-in answers for it inside the browser.
THUMBNAIL = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 9"><rect width="16" height="9" fill="#7a8da6"/></svg>'


async def new_context(browser: Browser, **options: object) -> BrowserContext:
    context = await browser.new_context(**{"viewport": {"width": 900, "height": 760}, "accept_downloads": True,
                                           **options})
    await context.route("https://i.ytimg.com/**", lambda route: route.fulfill(
        status=200, content_type="image/svg+xml", body=THUMBNAIL))
    return context


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await new_context(browser)
    yield context
    await context.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def assert_accessible(page: Page) -> None:
    """axe-core over the whole screen as it is now: no WCAG 2.2 A/AA violation."""
    await page.evaluate(AXE_SCRIPT)
    results = await page.evaluate("o => axe.run(document, o)",
                                  {"runOnly": {"type": "tag", "values": WCAG_22_AA}, "resultTypes": ["violations"]})
    found = [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in results["violations"]]
    assert found == [], f"{page.url}: {found}"


async def screenshot(page: Page, name: str) -> None:
    """A screen for the User Guide (docs/user-guide/NAME.png): the viewport only, so the files stay small."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")  # the screen's top: its heading, not where focus went
    await page.screenshot(path=SCREENSHOTS / f"{name}.png")


def mailed_link(sink: MailSink, email: str, after: int, timeout_s: float = 15) -> str:
    """The link in the newest mail to ``email`` among those after the first ``after`` messages."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in reversed(sink.messages()[after:]):
            if email in message["To"]:
                body = message.get_body(("plain",)).get_content()
                return re.search(r"https?://\S+#token=[\w-]+", body)[0]
        time.sleep(0.1)
    raise AssertionError(f"no mail to {email}")


async def sign_in(page: Page, server: AppServer, sink: MailSink, email: str) -> None:
    """Through the front door: ask for a sign-in link on the sign-in screen, open it from the mail."""
    before = len(sink.messages())
    await page.goto(server.base_url + "/sign-in")
    await page.get_by_label("Your e-mail address").fill(email)
    await page.get_by_role("button", name="Send me a sign-in link").click()
    await page.get_by_text("a sign-in link is on its way").wait_for()
    link = await asyncio.to_thread(mailed_link, sink, email, before)
    await page.goto(link)
    await page.get_by_role("heading", name="Ask Chat Wizard").wait_for()


async def api(server: AppServer, method: str, path: str, key: str, **kwargs: object) -> httpx.Response:
    async with server.client(key) as client:
        return await client.request(method, path, **kwargs)
