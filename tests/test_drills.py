"""Failover drills on throwaway estates: kill the primary under write load, promote the replica, and
check the clients' ledger of acknowledged writes against the promoted node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chatwizard.estate.drills import drill_estate, failover_drill

RTO_TARGET_S = 60


@pytest.mark.parametrize("synchronous", [False, True], ids=["asynchronous", "synchronous"])
def test_failover_keeps_acknowledged_writes_and_writes_again_within_the_rto(tmp_path: Path, synchronous: bool):
    with drill_estate(tmp_path) as estate:
        result = asyncio.run(failover_drill(estate, synchronous=synchronous))
        assert not estate.replica.in_recovery  # the replica is the primary now
    figures = result.figures()
    assert result.acknowledged > 50, figures
    assert result.rto_s < RTO_TARGET_S, figures
    # Writes failed fast while no node took them (503, never a hang), then succeeded on the promoted node.
    assert set(result.writes) <= {201, 503}, figures
    if synchronous:  # what RDS Multi-AZ gives: nothing acknowledged is lost
        assert result.lost == 0, figures
    else:  # asynchronous replication may lose the last moment's writes: the drill measures how many
        assert result.lost <= result.acknowledged * 0.05, figures
