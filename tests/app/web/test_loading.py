"""How the page loads in headless Chromium: every module at once (the shell's modulepreload links), and
nothing the page CSP refuses."""

from __future__ import annotations

from playwright.async_api import BrowserContext

from tests.conftest import AppServer

LATENCY_MS = 200  # a far learner: a module found only once its importer has arrived would start this late

MODULES_JS = """() => performance.getEntriesByType("resource")
  .filter(e => new URL(e.name).pathname.endsWith(".js"))
  .map(e => ({path: new URL(e.name).pathname, start: e.startTime, end: e.responseEnd}))"""


async def test_every_module_is_fetched_at_once_and_nothing_breaks_the_csp(web_app: AppServer,
                                                                        context: BrowserContext):
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": LATENCY_MS,
                                                        "downloadThroughput": -1, "uploadThroughput": -1})
    await page.goto(web_app.base_url + "/sign-in", wait_until="networkidle")
    await page.get_by_role("heading", name="Sign in").wait_for()
    modules = await page.evaluate(MODULES_JS)
    (app,) = [m for m in modules if m["path"].startswith("/static/app.")]
    assert len(modules) >= 6, modules
    # Each import asked for before the entry module arrived: no waterfall, one round trip for them all.
    late = [m["path"] for m in modules if m["start"] >= app["end"]]
    assert late == [] and problems == [], (late, problems)
