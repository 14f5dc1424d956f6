"""What a shared cache in front of the app (Cloudflare's edge, nginx locally) may keep: one place for the
web app's paths and their Cache-Control, read by the Cloudflare cache rules (infra/components/edge.py),
the local edge (chatwizard.estate.edge) and their tests.

Fingerprinted assets never change under their name, so any cache may keep them for a year; pages are
the same shell for everyone but must pick up a release at once; everything else (the API, the calendar
feeds) answers per user and must never be shared."""

from __future__ import annotations

STATIC_PREFIX = "/static/"
STATIC_MAX_AGE_S = 365 * 86_400
STATIC_CACHE_CONTROL = f"public, max-age={STATIC_MAX_AGE_S}, immutable"
PAGE_CACHE_CONTROL = "no-cache"
