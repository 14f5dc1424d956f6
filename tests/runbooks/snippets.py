"""The commands, queries and links written in the runbooks and manuals, pulled out of their Markdown.

A runbook is read under pressure and its commands are pasted as they are, so they are checked like
code (tests/runbooks/test_doc_commands.py). Code spans and shell blocks are parsed with markdown-it,
commands are split into simple commands with shlex, and placeholders (`<pod>`, `KEY_ID`, `$CW`) are
kept as plain words.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).parents[2]
# The runbooks and the manuals (operations, troubleshooting, deployment, DR, user and developer guides).
DOCUMENTS = ["README.md", "runbooks/**/*.md", "docs/**/*.md", "infra/README.md", "loadtest/README.md",
             "ansible/README.md", "monitoring/**/*.md"]
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", ""}
TOOLS = ("kubectl", "chatwizard", "make", "promtool")
OPERATORS = {"|", "||", "&&", ";", "(", ")", "$(", "`", "&"}


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    text: str
    block: bool  # a fenced block (else an inline code span)
    language: str

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    found = {p for pattern in DOCUMENTS for p in ROOT.glob(pattern)}
    return sorted(p for p in found if ".venv" not in p.parts and ".estate" not in p.parts)


def snippets(path: Path) -> Iterator[Snippet]:
    tokens = MarkdownIt().parse(path.read_text())
    for token in tokens:
        if token.type == "fence":
            yield Snippet(path, token.map[0] + 2, token.content, True, token.info.strip().lower())
        elif token.type == "inline":
            for child in token.children or []:
                if child.type == "code_inline":
                    yield Snippet(path, token.map[0] + 1, child.content, False, "")


def links(path: Path) -> Iterator[tuple[int, str]]:
    tokens = MarkdownIt().parse(path.read_text())
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open":
                yield token.map[0] + 1, str(child.attrs["href"])


# A repository path written in prose or code: `docs/deploy.md`, `k8s/overlays/`.
REPO_PATH = re.compile(r"(?<![\w/.$-])((?:docs|runbooks|k8s|infra|monitoring|loadtest|app|tests|ansible|\.ci|\.github)"
                       r"/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")


def repo_paths(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in REPO_PATH.finditer(line):
            if not re.search(r"/[A-Z]{3,}(_|\.|/|$)(?<!README.)", match.group(1)):  # NNNN_name.sql: a pattern
                yield number, match.group(1)


def _words(line: str) -> list[str]:
    line = re.sub(r"<[^<>\s][^<>]*>", "PLACEHOLDER", line)  # <pod>, <env>: a word, not a redirection
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;()`")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose-like code: not a command
        return []


def _simple_commands(words: list[str]) -> Iterator[list[str]]:
    current: list[str] = []
    for word in words:
        if word in OPERATORS or set(word) <= set("|&;()`"):
            if current:
                yield current
            current = []
        else:
            current.append(word.removeprefix("$"))
    if current:
        yield current


def _tool(word: str) -> str | None:
    name = word.rsplit("/", 1)[-1]
    return name if name in TOOLS else None


def commands(snippet: Snippet) -> Iterator[list[str]]:
    """Each simple command in the snippet that starts with one of TOOLS (also after `kubectl exec ... --`)."""
    if snippet.block and snippet.language not in SHELL_LANGUAGES:
        return
    text = snippet.text.replace("\\\n", " ")
    lines = text.splitlines() if snippet.block else [text.replace("\n", " ")]
    for line in lines:
        line = line.strip().removeprefix("$ ")
        for command in _simple_commands(_words(line)):
            while command and "=" in command[0] and not command[0].startswith("-"):
                command = command[1:]  # VAR=value before the command
            if command and _tool(command[0]):
                yield [_tool(command[0]) or "", *command[1:]]
                if command[0] == "kubectl" and "--" in command:
                    rest = command[command.index("--") + 1:]
                    if rest and _tool(rest[0]):
                        yield [_tool(rest[0]) or "", *rest[1:]]


PROMQL_START = re.compile(r"^(sum|avg|min|max|count|rate|irate|increase|histogram_quantile|topk|bottomk|"
                          r"delta|deriv|absent|changes|max_over_time|min_over_time|avg_over_time|"
                          r"quantile_over_time|clamp_min|clamp_max|abs|round|sort_desc)\s*(\(|by\b|without\b)")
METRIC_PREFIXES = ("chatwizard", "pg_", "redis_", "probe_", "kube_", "node_", "container_", "process_", "up")
SELECTOR = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*(:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+)?(\{[^}]*\})?(\[[^\]]+\])?$")
METRIC_SUFFIXES = ("_total", "_seconds", "_bytes", "_ratio", "_bucket", "_count", "_sum", "_info", "_up",
                   "_active", "_usd", "_success")


def promql(snippet: Snippet) -> str | None:
    """The snippet as a PromQL expression, if it is one: a promql block, a selector of a metric-shaped
    name (`chatwizard_db_up`, `chatwizard_db_reads_total{node}`, a recording rule), or an expression
    that starts with a PromQL function or aggregation. LogQL (a stream selector piped into `| json`) and
    a function's bare name (`increase()`) are not queries."""
    if snippet.block:
        return snippet.text.strip() if snippet.language == "promql" else None
    text = re.sub(r"\{([^}=~]*)\}", "", snippet.text.strip())  # `metric{label}`: names a label, selects nothing
    if SELECTOR.match(text):
        name = text.split("{")[0].split("[")[0]
        shaped = name.count(":") == 2 or name.endswith(METRIC_SUFFIXES)
        return text if shaped and name.startswith(METRIC_PREFIXES) else None
    logql = re.search(r"\}\s*\|", text)
    return text if PROMQL_START.match(text) and not logql and not text.endswith("()") else None
