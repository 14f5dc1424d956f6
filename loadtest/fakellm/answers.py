"""Deterministic answers composed from the prompt, and the word-based token count.

A "token" here is a whitespace-separated word: ``usage`` counts words, and an answer of n tokens
has exactly n words, so streamed chunks, the joined text and ``usage`` always agree.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

MAX_TITLES = 3
MAX_QUESTION_WORDS = 20
# Catalogue videos appear in the prompt as list items: "- Title (channel: ..., 12 min)".
LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
QUESTION = re.compile(r"<question>(.*?)</question>", re.DOTALL)
ADVICE = (
    "Pause the video and rebuild each example yourself before moving on.",
    "Keep a small practice project open and apply every step to it as you watch.",
    "When something breaks, compare your work with the video line by line.",
    "Take short notes of the ideas you want to reuse in your own projects.",
    "Come back to the harder parts after a day; they are easier the second time.",
    "Share what you built with a friend and explain how it works.",
)


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def count_tokens(text: str) -> int:
    return len(text.split())


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(count_tokens(message_text(m)) for m in messages)


def video_titles(messages: list[dict[str, Any]]) -> list[str]:
    """The first list items of the system and user messages, without their "(channel: ...)" tail."""
    titles = []
    for message in messages:
        if message.get("role") in ("system", "user"):
            for item in LIST_ITEM.findall(message_text(message)):
                titles.append(item.split(" (", 1)[0].strip(" \"'"))
    return [t for t in titles if t][:MAX_TITLES]


def question(messages: list[dict[str, Any]]) -> str:
    """The learner's question: inside <question> tags if present, else the last user message."""
    user_texts = [message_text(m) for m in messages if m.get("role") == "user"]
    text = user_texts[-1] if user_texts else ""
    tagged = QUESTION.search(text)
    words = (tagged.group(1) if tagged else text).split()
    return " ".join(words[:MAX_QUESTION_WORDS])


def summary(asked: str, titles: list[str]) -> str:
    opening = f'For "{asked}",' if asked else "For your question,"
    if not titles:
        return f"{opening} I found no catalogue videos in the prompt, so here is general advice."
    later = "".join(f' Then watch "{t}".' for t in titles[1:])
    return f'{opening} start with "{titles[0]}".{later}'


def compose_answer(messages: list[dict[str, Any]], tokens: int) -> list[str]:
    """Exactly ``tokens`` words: a summary naming the prompt's first videos, then steady advice."""
    asked = question(messages)
    words = summary(asked, video_titles(messages)).split()
    start = zlib.crc32(asked.encode())  # the same question always gets the same advice order
    index = 0
    while len(words) < tokens:
        words.extend(ADVICE[(start + index) % len(ADVICE)].split())
        index += 1
    return words[:tokens]
