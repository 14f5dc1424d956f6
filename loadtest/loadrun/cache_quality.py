"""Semantic-cache quality on a labelled set (loadtest/cache_quality/paraphrases.yaml):

    python -m loadrun.cache_quality [--embedder local|fake] [--markdown]

Each intent's question is remembered first; its paraphrases and the near misses are then looked up
with the cache's own matching (`SemanticIndex.best` against the threshold). A hit is right when it
returns the paraphrase's own intent; any hit for a near miss is wrong.

    python -m loadrun.cache_quality --mix [--embedder local|fake]

replays the load test's question mix (loadtest/k6/lib/questions.js: popular questions by Zipf,
paraphrases, unique questions) from 10,000 learners through the exact and semantic caches' rules,
for each askers threshold (`CHATWIZARD_SEMANTIC_CACHE_MIN_ASKERS`): the hit rate it costs.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from chatwizard.chat.semantic_cache import SemanticIndex, unit
from chatwizard.core.settings import Settings
from chatwizard.videos.service import normalise

LABELLED = Path(__file__).resolve().parents[1] / "cache_quality" / "paraphrases.yaml"
K6_LIB = Path(__file__).resolve().parents[1] / "k6" / "lib"
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


class LoadMix:
    """The k6 chat mix, read from its own files so the replay cannot drift from it."""

    def __init__(self, seed: int = 7) -> None:
        source = (K6_LIB / "questions.js").read_text()
        topics = json.loads((K6_LIB / "topics.json").read_text())
        self.topics = [(t["question"], t["paraphrase"]) for t in topics]
        self.share = {name: float(re.search(rf"{name}_SHARE \|\| ([0-9.]+)", source).group(1))
                      for name in ("UNIQUE", "PARAPHRASE")}
        exponent = float(re.search(r"const S = ([0-9.]+);", source).group(1))
        self.subjects = re.findall(r"'([^']+)'", re.search(r"SUBJECTS = \[(.*?)\];", source, re.S).group(1))
        self.template = re.search(r"return `(How would I combine .*?)`;", source).group(1)
        self.weights = [1 / (i + 1) ** exponent for i in range(len(self.topics))]
        self.rng = random.Random(seed)  # noqa: S311  # a reproducible replay, not a secret

    def question(self) -> str:
        roll = self.rng.random()
        popular, paraphrase = self.rng.choices(self.topics, self.weights)[0]
        if roll < self.share["UNIQUE"]:
            subjects = iter(self.rng.choice(self.subjects) for _ in range(3))
            return re.sub(r"\$\{pick\(SUBJECTS\)\}", lambda _: next(subjects), self.template)
        return paraphrase if roll < self.share["UNIQUE"] + self.share["PARAPHRASE"] else popular


def replay_mix(embed: Embedder, threshold: float, min_askers: int, chats: int, learners: int,
               capacity: int = 5000) -> float:
    """The share of ``chats`` answered from a cache, warmed as the load-test runner warms it."""
    mix = LoadMix()
    askers: dict[str, set[int]] = defaultdict(set)
    index = SemanticIndex()
    index.reset("mix", capacity)
    vectors: dict[str, np.ndarray] = {}

    def vector(norm: str) -> np.ndarray:
        if norm not in vectors:
            vectors[norm] = unit(list(embed([norm])[0]))
        return vectors[norm]

    def ask(learner: int, text: str) -> bool:
        norm = normalise(text)
        cached = norm in askers
        if not cached:
            found = index.best(vector(norm))
            if found is not None and found[1] >= threshold:
                return True
        if learner not in askers[norm]:
            askers[norm].add(learner)
            if len(askers[norm]) == min_askers:
                index.add(vector(norm), norm)
        return cached

    for learner in range(min_askers):
        for popular, _ in mix.topics:
            ask(learner, popular)
    return sum(ask(mix.rng.randrange(learners), mix.question()) for _ in range(chats)) / chats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", choices=["local", "fake"], default="local")
    parser.add_argument("--mix", action="store_true", help="replay the load test's mix instead")
    parser.add_argument("--chats", type=int, default=50_000)
    args = parser.parse_args()
    embed = local_embedder() if args.embedder == "local" else fake_embedder()
    if args.mix:
        threshold = Settings().semantic_cache_threshold
        print(f"{args.chats:,} chats of the load-test mix from 10,000 learners, threshold {threshold}, "
              f"embedder {args.embedder}\n")
        print("| askers before an answer serves paraphrases | hit rate |\n|---|---|")
        for min_askers in (1, 2, 3, 5):
            rate = replay_mix(embed, threshold, min_askers, args.chats, 10_000)
            print(f"| {min_askers} | {100 * rate:.1f} % |")
        return
    remembered, lookups = labelled()
    print(f"{len(remembered)} intents remembered, {len(lookups)} lookups "
          f"({sum(1 for _, i in lookups if i is None)} near misses); embedder: {args.embedder}\n")
    print(table(evaluate(embed, THRESHOLDS)))


if __name__ == "__main__":
    main()
