"""The static-asset load time of the web app's page with and without the edge cache (`make edge-benchmark`,
with the estate up: `make up`). Writes docs/performance/edge-cache.md.

Headless Chromium (Debian's, driven by Playwright) loads the page over each learner network of PROFILES
(a phone on Slow 4G, a desktop on a fast link), with the origin made far away by a delay proxy (test
equipment: this kernel has no netem). Four cases per network, each several runs, every load in a new
browser context (the browser's own cache always cold):

- no edge, cold and warm: browser -> learner's latency -> delay -> origin. There is no shared cache on
  this path; "warm" runs come after a priming load, as with the edge, so the pair shows what warming the
  origin alone gives;
- edge cold: browser -> learner's latency -> nginx -> delay -> origin, nginx's cache emptied before
  every load;
- edge warm: the same after a priming load: the assets come from nginx's cache.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, sync_playwright

from chatwizard.core.edge import STATIC_PREFIX
from chatwizard.estate.edge import EdgeCache
from chatwizard.estate.ports import EstatePorts, free_port
from loadrun.delay_proxy import DelayProxy

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "performance" / "edge-cache.md"
CHROMIUM = "/usr/bin/chromium"
BAR = 0.70  # the seed: the edge cuts static-asset load time by 70 % or more


@dataclass(frozen=True)
class Network:
    """Chromium's DevTools network emulation of the learner's own link (to whichever server answers)."""

    name: str
    source: str  # where the figures come from
    latency_ms: float
    down_kbit_s: float
    up_kbit_s: float

    def conditions(self) -> dict[str, float | bool]:
        return {"offline": False, "latency": self.latency_ms, "downloadThroughput": self.down_kbit_s * 125,
                "uploadThroughput": self.up_kbit_s * 125}  # bytes per second


# Lighthouse's throttling presets (core/config/constants.js), what PageSpeed Insights scores pages on.
MOBILE = Network("a phone on Slow 4G", "Lighthouse's mobile preset, mobileSlow4G", latency_ms=150,
                 down_kbit_s=1600, up_kbit_s=750)
DESKTOP = Network("a desktop on a fast fixed or 4G link",
                  "Lighthouse's desktop preset, desktopDense4G, a dense 4G network's 25th percentile; it "
                  "names one throughput, so the upload rate, half of it, is ours: the requests are a few "
                  "hundred bytes", latency_ms=40, down_kbit_s=10240, up_kbit_s=5120)
PROFILES = (MOBILE, DESKTOP)

# Static assets' Resource Timing entries, in the page: when each was fetched and how big it was.
RESOURCES_JS = f"""() => performance.getEntriesByType("resource")
  .filter(e => new URL(e.name).pathname.startsWith("{STATIC_PREFIX}"))
  .map(e => ({{path: new URL(e.name).pathname, start: e.startTime, end: e.responseEnd,
              transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize}}))"""


@dataclass(frozen=True)
class Asset:
    path: str
    start_ms: float
    end_ms: float
    encoded: int  # bytes on the wire (compressed)
    decoded: int
    cache_status: str  # the edge's X-Cache-Status, "" without the edge
    encoding: str


@dataclass(frozen=True)
class Load:
    assets: list[Asset]

    @property
    def static_ms(self) -> float:
        """The static-asset load time: the first asset request's start to the last asset's last byte."""
        return max(a.end_ms for a in self.assets) - min(a.start_ms for a in self.assets)

    @property
    def page_ms(self) -> float:
        """Navigation start to the last asset's last byte (includes the page itself, never cached)."""
        return max(a.end_ms for a in self.assets)


@dataclass
class Case:
    name: str
    loads: list[Load] = field(default_factory=list)

    def summary(self, measure: Callable[[Load], float]) -> tuple[float, float, float]:
        values = [measure(load) for load in self.loads]
        return statistics.median(values), min(values), max(values)

    def cache_statuses(self) -> Counter[str]:
        return Counter(a.cache_status or "-" for load in self.loads for a in load.assets)


def load_page(browser: Browser, url: str, network: Network) -> Load:
    """One load in a fresh context (nothing in the browser's cache), under `network`."""
    context = browser.new_context()
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", network.conditions())
        headers: dict[str, dict[str, str]] = {}
        page.on("response", lambda r: headers.__setitem__(urlsplit(r.url).path, r.headers))
        page.goto(url, wait_until="networkidle")
        entries = page.evaluate(RESOURCES_JS)
    finally:
        context.close()
    if not entries:
        raise RuntimeError(f"{url} loaded no {STATIC_PREFIX} assets")
    return Load([Asset(e["path"], e["start"], e["end"], e["encoded"], e["decoded"],
                       headers.get(e["path"], {}).get("x-cache-status", ""),
                       headers.get(e["path"], {}).get("content-encoding", "identity")) for e in entries])


@contextmanager
def edge_in_front(origin_port: int) -> Iterator[EdgeCache]:
    with tempfile.TemporaryDirectory(prefix="chatwizard-edge-") as state:
        edge = EdgeCache(Path(state), free_port(), f"127.0.0.1:{origin_port}")
        edge.start()
        try:
            yield edge
        finally:
            edge.stop()


def empty_cache(edge: EdgeCache) -> None:
    """A cold edge: nginx restarted on an empty cache folder."""
    edge.stop()
    shutil.rmtree(edge.state / "cache", ignore_errors=True)
    edge.start()


def measure(origin: str, page: str, runs: int, delay_ms: float, network: Network) -> list[Case]:
    """Chromium's emulated latency is a floor per request, not added to what the path already takes (a
    request to a server 200 ms away still takes 200 ms, not 350): so the learner's own latency is put in
    as a delay proxy in front of whatever the browser talks to, the edge or the origin, and the emulation
    adds the link's bandwidth (its latency floor is then met by the path)."""
    host, port = urlsplit(origin).hostname or "127.0.0.1", urlsplit(origin).port or 80
    last_mile_s = network.latency_ms / 2000  # one way
    cases = [Case(name) for name in ("no edge, cold", "no edge, warm", "edge, cold", "edge, warm")]
    with (DelayProxy((host, port), delay_ms / 1000) as far,
          DelayProxy(("127.0.0.1", far.port), last_mile_s) as to_origin, sync_playwright() as p):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        direct = f"http://127.0.0.1:{to_origin.port}{page}"
        cases[0].loads = [load_page(browser, direct, network) for _ in range(runs)]
        load_page(browser, direct, network)  # priming: the origin as warm as it gets
        cases[1].loads = [load_page(browser, direct, network) for _ in range(runs)]
        with edge_in_front(far.port) as edge, DelayProxy(("127.0.0.1", edge.port), last_mile_s) as to_edge:
            near = f"http://127.0.0.1:{to_edge.port}{page}"
            for _ in range(runs):
                empty_cache(edge)
                cases[2].loads.append(load_page(browser, near, network))
            load_page(browser, near, network)  # priming: the assets into the edge's cache
            cases[3].loads = [load_page(browser, near, network) for _ in range(runs)]
        browser.close()
    return cases


def round_trip_bound(network: Network, delay_ms: float) -> float:
    """The most a cache can save of a load that is round-trip bound: the far origin's share of each round
    trip (the learner's own link stays)."""
    return 2 * delay_ms / (network.latency_ms + 2 * delay_ms)


def reduction(cases: list[Case]) -> float:
    """How much less the warm edge's median static-asset load time is than the warm origin's."""
    def median(case: Case) -> float:
        return case.summary(lambda load: load.static_ms)[0]

    return 1 - median(cases[3]) / median(cases[1])


def figures(cases: list[Case]) -> list[str]:
    lines = ["| case | static-asset load time, median (min-max) | page to last asset, median (min-max) "
             "| edge cache (X-Cache-Status per asset load) |", "|---|---|---|---|"]
    for case in cases:
        static = "{:.0f} ms ({:.0f}-{:.0f})".format(*case.summary(lambda load: load.static_ms))
        page = "{:.0f} ms ({:.0f}-{:.0f})".format(*case.summary(lambda load: load.page_ms))
        statuses = ", ".join(f"{status} {n}" for status, n in sorted(case.cache_statuses().items()))
        lines.append(f"| {case.name} | {static} | {page} | {statuses} |")
    return lines


def reading(cases: list[Case]) -> list[str]:
    """What the figures say, computed from them."""
    no_edge, cold, warm = (case.summary(lambda load: load.static_ms)[0] for case in cases[1:])
    lines = [f"The warm edge saves {no_edge - warm:.0f} ms of the assets' {no_edge:.0f} ms (median). What "
             "it cannot save is the learner's own link to the edge: a round trip to open each connection "
             "(HTTP/1.1 here: at most six per host, so a seventh asset waits for one of them), a round "
             "trip per request, and the bandwidth. Only the far origin's share of each goes."]
    if cold > no_edge:
        lines.append(f"A cold edge costs {cold - no_edge:.0f} ms more than no edge: each asset crosses an "
                     "extra hop and the edge opens its own connections to the far origin, one round trip "
                     "each. Fingerprinted assets stay a year, so a learner meets a cold edge only for the "
                     "first load of a release in their region.")
    return [" ".join(lines), ""]


def asset_table(load: Load) -> list[str]:
    lines = ["| asset | size | on the wire | encoding |", "|---|---|---|---|"]
    for a in sorted(load.assets, key=lambda a: a.path):
        lines.append(f"| `{a.path}` | {a.decoded:,} B | {a.encoded:,} B | {a.encoding} |")
    total = sum(a.decoded for a in load.assets), sum(a.encoded for a in load.assets)
    lines.append(f"| **{len(load.assets)} assets** | **{total[0]:,} B** | **{total[1]:,} B** | |")
    return lines


@dataclass(frozen=True)
class Profile:
    """One learner network's four cases."""

    network: Network
    cases: list[Case]


def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f} %"


def headline(profile: Profile) -> str:
    cut = reduction(profile.cases)
    verdict = "met" if cut >= BAR else "not met"
    return (f"- **{profile.network.name} ({profile.network.latency_ms:.0f} ms round trip): the bar is "
            f"{verdict}**: the warm edge's median is {percent(cut)} below the warm origin's.")


def bound_sentence(profiles: list[Profile], delay_ms: float) -> str:
    """The round-trip bound per profile, and where it puts the bar out of any cache's reach."""
    origin = f"{2 * delay_ms:.0f} ms"
    bound = {p.network.name: round_trip_bound(p.network, delay_ms) for p in profiles}
    bounds = ", ".join(f"{percent(fraction)} for {name}" for name, fraction in bound.items())
    out_of_reach = [name for name, fraction in bound.items() if fraction < BAR]
    sentence = (f"When the load is round-trip bound, an edge can save at most the far origin's share of each "
                f"round trip, {origin} / (the learner's round trip + {origin}): {bounds}")
    if not out_of_reach:
        return sentence + "; the bar is within reach on every link measured here."
    return (sentence + f"; for {' and '.join(out_of_reach)} the bar is out of any cache's reach, it can only "
            "be met where the learner's own link is short compared with the distance to the origin.")


def profile_section(profile: Profile) -> list[str]:
    network = profile.network
    return [f"### {network.name[0].upper()}{network.name[1:]}", "",
            f"{network.latency_ms:.0f} ms round trip, {network.down_kbit_s / 1000:g} Mbit/s down, "
            f"{network.up_kbit_s / 1000:g} Mbit/s up ({network.source}).", "",
            *figures(profile.cases), "", *reading(profile.cases)]


def report(profiles: list[Profile], page: str, runs: int, delay_ms: float, command: str) -> str:
    return "\n".join([
        "# Edge cache: static-asset load time",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        "(loadtest/loadrun/edge_benchmark.py): every figure below is measured, none typed in.",
        "",
        "The seed's bar: 70 % less static-asset load time with the edge cache. Per learner link:",
        "",
        *(headline(profile) for profile in profiles),
        "",
        bound_sentence(profiles, delay_ms),
        "",
        "## Figures",
        "",
        f"`{page}` in headless Chromium, {runs} loads per case, each in a new browser context (the browser's "
        "own cache always cold).",
        "",
        "- *static-asset load time*: from the first `/static/` request's start to the last `/static/` "
        "response's last byte (Resource Timing API: `startTime`, `responseEnd`). The page itself is not "
        "in it: it is never cached at the edge and costs the same with or without it.",
        "- *page to last asset*: navigation start to the last asset's last byte, the page's own fetch "
        "included.",
        "",
        *(line for profile in profiles for line in profile_section(profile)),
        "## Assumptions",
        "",
        "- The learner's link, to whatever answers (the edge sits next to the learner's network; the last "
        "mile is the learner's): the round trip and rates of each profile above. The bandwidth is "
        "Chromium's DevTools emulation (`Network.emulateNetworkConditions`, with the same latency). "
        "Chromium's emulated latency is only a floor per request (a response is held until that long after "
        "its request), not added to the time the path already takes, so the latency is also put in as a "
        "delay proxy in front of whatever the browser talks to (half the round trip each way, a new "
        "connection one round trip).",
        f"- The origin is far away: a delay proxy (loadtest/loadrun/delay_proxy.py) holds every chunk "
        f"{delay_ms:.0f} ms in each direction between the learner's network (or the edge) and the origin "
        f"({2 * delay_ms:.0f} ms round trip more, about Frankfurt to São Paulo) and a new connection "
        "one round trip (its TCP handshake). No TLS on loopback: a real "
        "far origin's TLS handshake adds one more round trip per connection, which the edge saves too, "
        "so these figures understate the edge's gain.",
        "- The edge: nginx (chatwizard.estate.edge, the same rules as the Cloudflare cache rules in "
        "infra/components/edge.py) on loopback, next to the browser. HTTP/1.1 everywhere, without TLS: "
        "Cloudflare serves browsers HTTP/2 and HTTP/3, all assets on one connection with no queue behind "
        "six, which would favour the edge further.",
        "- The page preloads every module it imports (`<link rel=\"modulepreload\">`, generated from the "
        "asset manifest), so the browser asks for all assets at once instead of one import level per "
        "round trip.",
        "- What the page loads (from the first load of the first profile's warm edge case; sizes per "
        "asset):",
        "",
        *asset_table(profiles[0].cases[3].loads[0]),
        "",
        "## Reproduce",
        "",
        "```",
        "make up              # the local estate, in another terminal",
        "make edge-benchmark  # rewrites this file",
        "```",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--origin", default=f"http://127.0.0.1:{EstatePorts.app}", help="the running app")
    parser.add_argument("--page", default="/sign-in")
    parser.add_argument("--runs", type=int, default=13)
    parser.add_argument("--delay-ms", type=float, default=100, help="one way, browser or edge to origin")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    profiles = []
    for network in PROFILES:
        profiles.append(Profile(network, measure(args.origin, args.page, args.runs, args.delay_ms, network)))
        print(network.name, *figures(profiles[-1].cases), sep="\n")
    command = " ".join(["python -m loadrun.edge_benchmark", *sys.argv[1:]])
    args.out.write_text(report(profiles, args.page, args.runs, args.delay_ms, command))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
