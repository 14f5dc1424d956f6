"""Semantic-cache quality on a labelled set (loadtest/cache_quality/paraphrases.yaml):

    python -m loadrun.cache_quality [--embedder local|fake] [--markdown]

Each intent's question is remembered first; its paraphrases and the near misses are then looked up
with the cache's own matching (`SemanticIndex.best` against the threshold). A hit is right when it
returns the paraphrase's own intent; any hit for a near miss is wrong.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from chatwizard.chat.semantic_cache import SemanticIndex, unit
from chatwizard.videos.service import normalise

LABELLED = Path(__file__).resolve().parents[1] / "cache_quality" / "paraphrases.yaml"
THRESHOLDS = [0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96]
Embedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Quality:
    threshold: float
    lookups: int
    hits: int
    wrong_hits: int
    paraphrase_hit_rate: float

    @property
    def precision(self) -> float:
        return (self.hits - self.wrong_hits) / self.hits if self.hits else 1.0

    @property
    def wrong_hit_rate(self) -> float:
        return self.wrong_hits / self.lookups


def local_embedder() -> Embedder:
    from chatwizard.core.llm import _local_model

    model = _local_model()
    return lambda texts: model.encode(texts, normalize_embeddings=True, show_progress_bar=False)


def fake_embedder() -> Embedder:
    from fakellm.embeddings import embed

    return lambda texts: np.stack([embed(text, 384) for text in texts])


def labelled() -> tuple[list[str], list[tuple[str, int | None]]]:
    """The remembered questions, and the lookups with the intent each should find (None: none)."""
    data = yaml.safe_load(LABELLED.read_text())
    remembered = [intent["question"] for intent in data["intents"]]
    lookups = [(p, i) for i, intent in enumerate(data["intents"]) for p in intent["paraphrases"]]
    return remembered, lookups + [(q, None) for q in data["near_misses"]]


def evaluate(embed: Embedder, thresholds: Sequence[float]) -> list[Quality]:
    remembered, lookups = labelled()
    index = SemanticIndex()
    index.reset("cache-quality", capacity=len(remembered))
    stored = embed([normalise(q) for q in remembered])
    for i, vector in enumerate(stored):
        index.add(unit(list(vector)), str(i))
    queries = embed([normalise(q) for q, _ in lookups])
    best = [index.best(unit(list(v))) for v in queries]
    paraphrases = sum(1 for _, intent in lookups if intent is not None)
    results = []
    for threshold in thresholds:
        hits = wrong = right = 0
        for (_, intent), (key, score) in zip(lookups, best, strict=True):
            if score < threshold:
                continue
            hits += 1
            if intent is not None and int(key) == intent:
                right += 1
            else:
                wrong += 1
        results.append(Quality(threshold, len(lookups), hits, wrong, right / paraphrases))
    return results


def table(results: list[Quality]) -> str:
    lines = ["| threshold | paraphrases found | hits | wrong hits | precision of hits | wrong-hit rate |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {q.threshold:.2f} | {100 * q.paraphrase_hit_rate:.1f} % | {q.hits} | {q.wrong_hits} | "
              f"{100 * q.precision:.1f} % | {100 * q.wrong_hit_rate:.1f} % |" for q in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", choices=["local", "fake"], default="local")
    args = parser.parse_args()
    embed = local_embedder() if args.embedder == "local" else fake_embedder()
    remembered, lookups = labelled()
    print(f"{len(remembered)} intents remembered, {len(lookups)} lookups "
          f"({sum(1 for _, i in lookups if i is None)} near misses); embedder: {args.embedder}\n")
    print(table(evaluate(embed, THRESHOLDS)))


if __name__ == "__main__":
    main()
