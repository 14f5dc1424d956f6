"""Deterministic embeddings where paraphrases land near each other, with no model to download.

Text is lowercased, question framing ("how do I", "is there a way to") is dropped, words are lightly
stemmed and mapped onto a small synonym set for learners' phrasing (make/create/build, code/script/
program, ...), stopwords go, and the remaining unigrams plus unordered neighbour pairs are feature-
hashed with a sign bit into the requested dimension, then L2-normalised. Word order and wording
therefore matter little; topic words decide.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from functools import lru_cache

import numpy as np

BIGRAM_WEIGHT = 0.5  # neighbour pairs add a little context without outweighing the topic words
PLURAL_SUFFIXES = (("ies", "y"), ("s", ""))
WORD_SUFFIXES = (("ation", "at"), ("ing", ""), ("ed", ""), ("e", ""))
DROPPED = ""  # the synonym that means "not a topic word"
# Applied to the lowercased text, in order, before splitting into words.
PHRASES = [
    (r"\bc\s*#|\bc sharp\b", " csharp "),
    (r"\bc\+\+", " cpp "),
    (r"\bunreal( engine)?( [45])?\b|\bue[45]\b", " unreal "),
    (r"\bgame dev(elopment)?\b|\bgamedev\b", " make game "),
    (r"\bget(ting)? started\b|\bstarting out\b|\bfrom scratch\b", " beginner "),
    (r"\bhow (do|can|could|should|would|might) (i|you|we|one)\b|\bhow to\b|\bhow does one\b", " "),
    (r"\b(what is|what's|whats) the (best|easiest|right) way to\b|\bis there a way to\b", " "),
    (r"\bi (want|need|would like|d like) to\b|\b(teach|show|help) me( how)?( to)?\b", " "),
]
SYNONYMS = [
    # Every question here is about learning from videos, so these words say nothing about the topic.
    (DROPPED, "learn", "learning", "study", "understand", "master", "tutorial", "guide", "course", "lesson",
     "walkthrough", "class", "video", "teach", "explain", "explanation", "tips", "good", "best", "great",
     "top", "recommended"),
    ("make", "create", "build", "write", "develop", "craft", "produce", "construct", "made", "built"),
    ("code", "script", "program", "programme", "coding", "scripting", "programming", "logic"),
    ("beginner", "newbie", "novice", "starter", "newcomer", "noob", "basic", "fundamentals", "intro",
     "introduction", "first", "start", "begin"),
    ("fix", "debug", "solve", "troubleshoot", "repair", "resolve"),
    ("bug", "error", "issue", "problem", "crash", "glitch", "exception"),
    ("easy", "simple", "quick", "fast", "short", "straightforward"),
    ("move", "movement", "walk", "motion", "locomotion"),
    ("character", "player", "avatar", "hero"),
    ("level", "map", "stage", "world"),
    ("javascript", "js"),
    ("python", "python3", "py"),
    ("unity", "unity3d"),
]
STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "then", "so", "of", "in", "on", "at", "to", "for", "from",
    "by", "with", "without", "into", "onto", "about", "as", "is", "are", "was", "were", "be", "been",
    "being", "do", "does", "did", "doing", "have", "has", "had", "i", "me", "my", "we", "our", "you",
    "your", "he", "she", "it", "its", "they", "them", "their", "this", "that", "these", "those", "there",
    "here", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "just", "also", "very", "really", "some",
    "any", "all", "each", "more", "most", "much", "many", "other", "such", "own", "same", "than", "too",
    "not", "no", "nor", "only", "one", "thing", "things", "something", "anything", "way", "want", "need",
    "like", "please", "use", "using", "used", "get", "got", "am", "via", "vs", "m", "s", "t", "d", "ve",
    "ll", "re"
})


def _strip_suffix(word: str, rules: tuple[tuple[str, str], ...]) -> str:
    for suffix, replacement in rules:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + replacement
    return word


def stem(word: str) -> str:
    """Strip a plural and one common suffix, so making/makes/make and animations/animate meet."""
    if not word.endswith("ss"):
        word = _strip_suffix(word, PLURAL_SUFFIXES)
    word = _strip_suffix(word, WORD_SUFFIXES)
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # running -> runn -> run
    return word


def _synonym_stems() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for canonical, *others in SYNONYMS:
        for word in (canonical, *others):
            if mapping.setdefault(stem(word), stem(canonical)) != stem(canonical):
                raise ValueError(f"{word!r} is in two synonym groups")
    return mapping


SYNONYM_STEMS = _synonym_stems()
COMPILED_PHRASES = [(re.compile(pattern), replacement) for pattern, replacement in PHRASES]
WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@lru_cache(maxsize=65_536)
def canonical(word: str) -> str:
    stemmed = stem(word)
    return SYNONYM_STEMS.get(stemmed, stemmed)


def terms(text: str) -> list[str]:
    """The canonical topic words of ``text``, in order (its plain words if it has none)."""
    lowered = text.lower()
    for pattern, replacement in COMPILED_PHRASES:
        lowered = pattern.sub(replacement, lowered)
    words = WORD.findall(lowered)
    content = [c for c in (canonical(w) for w in words if w not in STOPWORDS) if c != DROPPED]
    return content or words


def features(text: str) -> list[tuple[str, float]]:
    words = terms(text)
    pairs = ["|".join(sorted(pair)) for pair in itertools.pairwise(words)]
    return [(w, 1.0) for w in words] + [(p, BIGRAM_WEIGHT) for p in pairs]


@lru_cache(maxsize=262_144)
def slot(feature: str, dimensions: int) -> tuple[int, float]:
    """Where a feature lands and with which sign: stable across processes (unlike ``hash``)."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dimensions, (1.0 if digest >> 63 else -1.0)


def embed(text: str, dimensions: int) -> np.ndarray:
    """A unit float32 vector of ``dimensions`` for ``text``."""
    vector = np.zeros(dimensions, dtype=np.float32)
    for feature, weight in features(text) or [("", 1.0)]:
        index, sign = slot(feature, dimensions)
        vector[index] += sign * weight
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # every feature cancelled out: fall back to a fixed, still unit, vector
        vector[0], norm = 1.0, 1.0
    return vector / norm
