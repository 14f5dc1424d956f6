"""The edge cache in front of the real app, as a learner would notice it: a short run of
`make edge-benchmark` (headless Chromium, a phone's network, the origin 100 ms away) loads the assets
faster from the warm edge, out of its cache; the edge keeps the origin's headers and never shares a page
or an answer."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from loadrun.edge_benchmark import MOBILE, edge_in_front, measure, reduction
from tests.conftest import AppServer

HEADERS_KEPT = ("cache-control", "vary", "content-encoding", "content-type", "content-security-policy")


def test_the_warm_edge_serves_the_assets_from_its_cache_and_faster(app_server: AppServer):
    no_edge_cold, no_edge_warm, edge_cold, edge_warm = measure(
        app_server.base_url, "/sign-in", runs=3, delay_ms=100, network=MOBILE)
    assert set(edge_cold.cache_statuses()) == {"MISS"}
    assert set(edge_warm.cache_statuses()) == {"HIT"}
    assert {a.encoding for load in edge_warm.loads for a in load.assets} == {"br"}
    # Clearly lower: the far origin's round trip is gone from each level of the page's imports
    # (docs/performance/edge-cache.md has a full run's figures).
    assert reduction([no_edge_cold, no_edge_warm, edge_cold, edge_warm]) > 0.15, (no_edge_warm, edge_warm)


async def test_the_edge_keeps_the_origins_headers_and_never_shares_pages_or_answers(app_server: AppServer,
                                                                                    make_user):
    with edge_in_front(urlsplit(app_server.base_url).port or 80) as edge:
        page = httpx.get(f"{edge.url}/sign-in")
        assert page.headers["x-cache-status"] == "BYPASS" and page.headers["cache-control"] == "no-cache"
        asset = re.search(r'/static/[\w.-]+\.(?:js|css)', page.text)[0]
        for encoding in ("br", "gzip", "identity"):
            origin = httpx.get(app_server.base_url + asset, headers={"Accept-Encoding": encoding})
            first, again = (httpx.get(edge.url + asset, headers={"Accept-Encoding": encoding}) for _ in "12")
            assert (first.headers["x-cache-status"], again.headers["x-cache-status"]) == ("MISS", "HIT")
            assert again.content == origin.content  # each encoding its own variant
            assert {h: again.headers.get(h) for h in HEADERS_KEPT} == {h: origin.headers.get(h) for h in HEADERS_KEPT}
        assert httpx.get(f"{edge.url}/sign-in").headers["x-cache-status"] == "BYPASS"
        assert httpx.get(f"{edge.url}/static/nothing.0123456789ab.js").status_code == 404
        one, other = await make_user(), await make_user()
        for user in (one, other, one):
            me = httpx.get(f"{edge.url}/v1/me", headers={"Authorization": f"Bearer {user.key}"})
            assert me.json()["email"] == user.email and me.headers["x-cache-status"] == "BYPASS"
