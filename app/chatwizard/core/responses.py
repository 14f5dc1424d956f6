"""JSON that stays inert if a client ever drops it into HTML: ``<``, ``>`` and ``&`` are written as
``\\u003c``, ``\\u003e`` and ``\\u0026`` (as Go's encoder does). Parsed, the text is unchanged, so
questions and answers keep their characters; unparsed, no tag from a user's input reaches a page."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import ORJSONResponse

_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))


def safe_json(value: Any) -> bytes:
    encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    for raw, escaped in _ESCAPES:
        if raw in encoded:
            encoded = encoded.replace(raw, escaped)
    return encoded


class SafeJSONResponse(ORJSONResponse):
    def render(self, content: Any) -> bytes:
        return safe_json(content)
