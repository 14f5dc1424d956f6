"""The semantic cache at its configured threshold, on the labelled paraphrase set, with the real local
embedding model: at least 97 % of its hits return the right answer, and it still finds most paraphrases."""

from __future__ import annotations

from chatwizard.core.settings import Settings
from loadrun.cache_quality import evaluate, local_embedder


def test_semantic_cache_hits_are_right_at_the_configured_threshold():
    threshold = Settings().semantic_cache_threshold
    (quality,) = evaluate(local_embedder(), [threshold])
    assert quality.precision >= 0.97, f"{quality.wrong_hits} wrong of {quality.hits} hits at {threshold}"
    assert quality.paraphrase_hit_rate >= 0.6, "the threshold is so strict the cache rarely helps"
