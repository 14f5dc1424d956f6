"""The no-key provider: real MiniLM embeddings from the wheel and an answer that says what it is."""

from __future__ import annotations

import numpy as np

from chatwizard.chat.service import composed_answer
from chatwizard.core.llm import LocalProvider
from chatwizard.core.settings import Settings


async def test_local_embeddings_place_paraphrases_close():
    provider = LocalProvider(Settings())
    a, b, c = (np.array(v) for v in await provider.embed([
        "How do I script a door that opens in Roblox?",
        "roblox studio: making a door open with a script",
        "How do I bake bread at home?",
    ]))
    assert a.shape == (384,)
    assert abs(np.linalg.norm(a) - 1) < 1e-4
    assert a @ b > 0.6 > a @ c


async def test_local_answer_streams_in_pieces_and_is_labelled():
    videos = [{"title": "Make a door", "channel": "Dev Lab", "duration_s": 600},
              {"title": "Tweens", "channel": "Code Hub", "duration_s": 300}]
    stream = LocalProvider(Settings()).stream_chat([], context_answer=composed_answer("doors?", videos))
    tokens = [t async for t in stream.tokens]
    assert len(tokens) > 5
    text = "".join(tokens)
    assert text.startswith("[Answer composed from the catalogue; no language model was used.]")
    assert '"Make a door" by Dev Lab (10 min)' in text and stream.source == "local"
