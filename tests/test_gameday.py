"""A game day end to end: `chatwizard gameday` in a subprocess, with a scripted on-call responder on its
terminal that reads the page, opens the runbook the page links to, names it, runs that runbook's
local-estate commands to fix the fault, and answers the last question. About three minutes."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from chatwizard.estate.gameday import FAULTS, draw
from chatwizard.estate.redis import RedisNode
from tests.conftest import free_port

CHATWIZARD = Path(sys.executable).with_name("chatwizard")
RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"
DETECTION_BUDGET_S = 60  # critical alerts page within a minute (docs/observability.md)


class Terminal:
    """The command's output line by line (read in a thread, so waiting has a deadline) and its stdin."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in process.stdout or []],
                         daemon=True).start()

    def expect(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no {pattern!r} within {timeout_s} s; output:\n{''.join(self.seen)}")

    def answer(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()


def local_commands(runbook: Path) -> list[str]:
    """The shell lines of the runbook's "Local estate" section."""
    section = runbook.read_text().split("## Local estate", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def shell(state_dir: Path, command: str) -> str:
    """``command`` in bash, in the environment the game day told the on-call to source."""
    result = subprocess.run(["bash", "-c", f"source {state_dir / 'estate.env'} && {command}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


def fix_lost_grant(state_dir: Path, commands: list[str]) -> None:
    """As the HighErrorRate runbook says: find the tables the logs name, give each its grant back."""
    find = next(c for c in commands if "permission denied" in c)
    grant = next(c for c in commands if "GRANT" in c)
    tables = re.findall(r"permission denied for table (\w+)", shell(state_dir, find))
    assert tables, "the runbook's search finds no permission error in the app's log"
    for table in tables:
        shell(state_dir, grant.replace("<table>", table))


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, so the command stops its estate; a kill only if that hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_game_day_pages_leads_to_the_runbook_and_measures_the_recovery(tmp_path: Path):
    fault = FAULTS["error-burst"]
    state_dir, out = tmp_path / "estate", tmp_path / "gamedays.md"
    process = subprocess.Popen([CHATWIZARD, "gameday", "--fault", fault.name, "--state-dir", state_dir,
                                "--out", out], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    terminal = Terminal(process)
    try:
        terminal.expect(r"Wait for the page", timeout_s=180)
        paged = terminal.expect(r"^PAGE \[critical\] (\w+)", timeout_s=45 + DETECTION_BUDGET_S + 15)
        link = terminal.expect(r"runbook: (\S+)", timeout_s=5).group(1)
        runbook = RUNBOOKS / link.rsplit("/", 1)[1]
        assert runbook.is_file(), f"the page links to {link}, which is not in runbooks/"
        assert paged.group(1) == fault.alert == runbook.stem
        terminal.expect(r"Which runbook", timeout_s=5)
        terminal.answer(link)
        terminal.expect(r"Fix it", timeout_s=5)
        fix_lost_grant(state_dir, local_commands(runbook))
        terminal.expect(r"Recovered", timeout_s=120)
        terminal.expect(r"What did the runbook get wrong", timeout_s=5)
        terminal.answer("nothing: its local commands found the table and gave the grant back")
        assert process.wait(timeout=120) == 0, "".join(terminal.seen)
    finally:
        stop(process)
    report = out.read_text()
    figures = {m[0]: m[1] for m in re.findall(r"^\| ([^|]+?) \| (\d+) s \|$", report, re.MULTILINE)}
    assert figures.keys() >= {"detection (onset → first page)", "time to the right runbook",
                              "recovery (onset → SLIs healthy)"}, report
    assert int(figures["detection (onset → first page)"]) < DETECTION_BUDGET_S, report
    assert "its local commands found the table" in report


def test_a_redis_that_died_starts_again_from_its_state_folder(tmp_path: Path):
    """`chatwizard start-redis` (the RedisDown runbook's local fix), and the estate still stops it."""
    node = RedisNode(tmp_path / "redis", free_port())
    node.start()
    client = redis.Redis.from_url(node.url, socket_timeout=2)
    try:
        node.shutdown()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        subprocess.run([CHATWIZARD, "start-redis", "--state-dir", tmp_path], check=True, timeout=60)
        assert client.ping()
    finally:
        node.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_a_seed_draws_the_same_fault_and_every_fault_can_be_drawn():
    assert draw(None, 7) == draw(None, 7)
    assert {draw(None, seed)[0].name for seed in range(200)} == set(FAULTS)
    assert draw("redis-down", None) == (FAULTS["redis-down"], None)
