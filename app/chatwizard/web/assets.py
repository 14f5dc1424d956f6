"""The static asset pipeline: fingerprinted names and brotli/gzip variants, built in memory at start-up.

Built when the app starts (not at package build) so the served bytes always come from the sources the
wheel ships: no build step to forget, no stale bundle. The sources are a few small files, so hashing
and compressing them costs milliseconds per worker.

References between sources are rewritten to the fingerprinted names: ``/static/NAME`` in the HTML shell
and ``"./NAME"`` in ES module imports (an import map would need inline script, which the CSP forbids).
A module's fingerprint covers its rewritten imports, so changing a dependency renames its importers too.
Before each module script the shell gets a ``modulepreload`` link per module that script imports, directly
or not, so the browser fetches them all at once instead of one import level per round trip.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import PurePosixPath

import brotli

SOURCES = files("chatwizard.web") / "static"
SHELL = "index.html"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}
# "./api.js" in an import, or /static/app.css in the shell
_REFERENCE = re.compile(r'(?P<prefix>"\./|"/static/)(?P<name>[a-z0-9_-]+\.(?:js|css|svg))"')
_MODULE_SCRIPT = re.compile(r'<script type="module" src="/static/(?P<name>[a-z0-9_-]+\.js)"></script>')


@dataclass(frozen=True)
class Asset:
    content_type: str
    identity: bytes
    br: bytes
    gzip: bytes


@dataclass(frozen=True)
class Bundle:
    assets: dict[str, Asset]  # by fingerprinted name
    shell: bytes  # the HTML shell, referencing the fingerprinted names
    shell_etag: str


def fingerprinted(name: str, body: bytes) -> str:
    path = PurePosixPath(name)
    return f"{path.stem}.{hashlib.sha256(body).hexdigest()[:12]}{path.suffix}"


def _rewrite(text: str, names: dict[str, str]) -> str:
    return _REFERENCE.sub(lambda m: f'{m["prefix"]}{names[m["name"]]}"', text)


def _references(text: str) -> list[str]:
    return [m["name"] for m in _REFERENCE.finditer(text)]


def _imported(entry: str, sources: dict[str, str]) -> list[str]:
    """The modules ``entry`` imports, directly or not, in the order first met."""
    found: list[str] = []

    def walk(name: str) -> None:
        for dependency in _references(sources[name]):
            if dependency.endswith(".js") and dependency not in found:
                found.append(dependency)
                walk(dependency)

    walk(entry)
    return found


def _with_preloads(shell: str, sources: dict[str, str]) -> str:
    """The shell with a ``modulepreload`` link before each module script for every module it imports."""
    def preloaded(script: re.Match[str]) -> str:
        modules = _imported(script["name"], sources)
        return "".join(f'<link rel="modulepreload" href="/static/{name}">\n' for name in modules) + script[0]

    return _MODULE_SCRIPT.sub(preloaded, shell)


def build(sources: dict[str, str]) -> Bundle:
    """Fingerprint and compress ``sources`` (name -> text, the shell among them)."""
    names: dict[str, str] = {}  # source name -> fingerprinted name
    bodies: dict[str, bytes] = {}

    def visit(name: str, seen: tuple[str, ...] = ()) -> None:
        if name in names:
            return
        if name in seen:
            raise ValueError(f"import cycle through {name}")
        for dependency in _references(sources[name]):
            visit(dependency, (*seen, name))
        bodies[name] = _rewrite(sources[name], names).encode()
        names[name] = fingerprinted(name, bodies[name])

    for name in sources:
        if name != SHELL:
            visit(name)
    shell = _rewrite(_with_preloads(sources[SHELL], sources), names).encode()
    assets = {names[n]: Asset(CONTENT_TYPES[PurePosixPath(n).suffix], body,
                              brotli.compress(body, quality=11), gzip.compress(body, 9, mtime=0))
              for n, body in bodies.items()}
    return Bundle(assets, shell, '"' + hashlib.sha256(shell).hexdigest()[:16] + '"')


@cache
def bundle() -> Bundle:
    """The app's own assets, built once per process."""
    return build({entry.name: entry.read_text(encoding="utf-8") for entry in SOURCES.iterdir()
                  if entry.name == SHELL or PurePosixPath(entry.name).suffix in CONTENT_TYPES})
