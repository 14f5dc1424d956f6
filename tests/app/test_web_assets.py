"""The web app's shell and assets over HTTP: fingerprinted, precompressed, cached for a year, and under
the page CSP (the API keeps its own)."""

from __future__ import annotations

import re

import httpx
import pytest

from chatwizard.web.assets import build
from chatwizard.web.routes import PAGES, accepted_encodings
from tests.conftest import AppServer

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https://i.ytimg.com; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SOURCES = {"index.html": '<link href="/static/site.css"><script src="/static/main.js"></script>',
           "main.js": 'import { x } from "./util.js";\nx();', "util.js": "export function x() {}",
           "site.css": "body { color: black; }"}


def asset_urls(shell: str) -> list[str]:
    return re.findall(r'"(/static/[^"]+)"', shell)


def test_a_fingerprint_changes_with_the_content_and_with_what_the_module_imports():
    before = build(SOURCES)
    after = build(SOURCES | {"util.js": "export function x() { return 1; }"})
    renamed = set(before.assets) ^ set(after.assets)
    assert {n.split(".")[0] for n in renamed} == {"util", "main"}  # main imports util: renamed too
    assert before.shell != after.shell
    (util,) = [n for n in after.assets if n.startswith("util.")]
    (main,) = [n for n in after.assets if n.startswith("main.")]
    assert f'from "./{util}"' in after.assets[main].identity.decode()
    assert re.fullmatch(r"util\.[0-9a-f]{12}\.js", util)


def test_an_import_cycle_is_refused():
    with pytest.raises(ValueError, match="cycle"):
        build({"index.html": "", "a.js": 'import "./b.js";\nimport {} from "./b.js";',
               "b.js": 'import {} from "./a.js";'})


def test_the_shell_preloads_every_module_its_script_imports_by_its_fingerprinted_name():
    deep = SOURCES | {"index.html": '<script type="module" src="/static/main.js"></script>',
                      "util.js": 'import { y } from "./deeper.js";\nexport function x() { y(); }',
                      "deeper.js": "export function y() {}", "unused.js": "export function z() {}"}
    built = build(deep)
    shell = built.shell.decode()
    preloaded = re.findall(r'<link rel="modulepreload" href="/static/([^"]+)">', shell)
    assert sorted(n.split(".")[0] for n in preloaded) == ["deeper", "util"]  # not the script, nor unused.js
    assert set(preloaded) <= set(built.assets)
    assert shell.index("modulepreload") < shell.index("<script")


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip, deflate, br", {"gzip", "deflate", "br"}), ("br;q=0, gzip", {"gzip"}), ("gzip;q=0.5", {"gzip"}),
    ("", set()), ("identity", {"identity"}),
])
def test_accept_encoding_is_read_with_its_weights(header: str, expected: set[str]):
    assert accepted_encodings(header) == expected


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_is_the_shell_revalidated_each_time_under_the_page_csp(app_server: AppServer, path: str):
    async with app_server.client() as client:
        page = await client.get(path)
        again = await client.get(path, headers={"If-None-Match": page.headers["ETag"]})
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline for the CSP to block
    assert again.status_code == 304 and again.content == b""


async def test_the_app_shell_preloads_every_module_but_its_script(app_server: AppServer):
    async with app_server.client() as client:
        shell = (await client.get("/")).text
    (script,) = re.findall(r'<script type="module" src="(/static/[^"]+)">', shell)
    preloaded = re.findall(r'<link rel="modulepreload" href="(/static/[^"]+)">', shell)
    modules = {url for url in asset_urls(shell) if url.endswith(".js")}
    assert sorted(preloaded) == sorted(modules - {script}) and len(preloaded) >= 5


async def test_the_api_keeps_its_own_csp(app_server: AppServer):
    async with app_server.client() as client:
        api = await client.get("/v1/conversations")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_assets_are_immutable_and_precompressed_by_accept_encoding(app_server: AppServer):
    async with app_server.client() as client:
        urls = asset_urls((await client.get("/")).text)
        assert {u.rsplit(".", 1)[1] for u in urls} == {"css", "js"}
        for url in urls:
            plain = await client.get(url, headers={"Accept-Encoding": "identity"})
            br = await client.get(url, headers={"Accept-Encoding": "gzip, br"})
            gz = await client.get(url, headers={"Accept-Encoding": "gzip, br;q=0"})
            for response in (plain, br, gz):
                assert response.status_code == 200
                assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
                assert response.headers["vary"] == "Accept-Encoding"
                assert response.headers["content-security-policy"] == PAGE_CSP
            assert "content-encoding" not in plain.headers
            assert br.headers["content-encoding"] == "br" and gz.headers["content-encoding"] == "gzip"
            # httpx decodes both; the bytes on the wire are the compressed ones
            assert br.content == plain.content == gz.content
            assert br.num_bytes_downloaded < gz.num_bytes_downloaded < plain.num_bytes_downloaded


async def test_an_unknown_or_stale_asset_is_404(app_server: AppServer):
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        shell = (await client.get("/")).text
        (script,) = [u for u in asset_urls(shell) if u.startswith("/static/app.") and u.endswith(".js")]
        stale = re.sub(r"\.[0-9a-f]{12}\.", ".000000000000.", script)
        for url in (stale, "/static/nothing.js", "/static/app.js"):
            missing = await client.get(url)
            assert missing.status_code == 404, url
            assert missing.headers["content-type"] == "application/problem+json"
            assert missing.headers["cache-control"] == "no-store"  # an edge must not keep the miss
