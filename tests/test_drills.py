"""Failover drills on throwaway estates: kill the primary under write load, promote the replica, and
check the clients' ledger of acknowledged writes against the promoted node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chatwizard.estate.backup import ARCHIVE_TIMEOUT_S
from chatwizard.estate.drills import backup_drill, drill_estate, failover_drill

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


def test_backups_restore_to_the_latest_point_and_to_a_chosen_second(tmp_path: Path):
    with drill_estate(tmp_path) as estate:
        result = asyncio.run(backup_drill(estate, tmp_path))
    figures = result.figures()
    assert result.encrypted_objects == "AES256", figures  # every object in the bucket, encrypted at rest
    # Restored to the latest point: the app serves from the new node, and what is lost is at most the
    # writes since the last archived WAL segment (ARCHIVE_TIMEOUT_S bounds it).
    assert result.rpo_s <= ARCHIVE_TIMEOUT_S + 5 and result.lost < result.acknowledged, figures
    assert result.rto_s < 15 * 60, figures
    # Restored to a time between two rows written 1 s apart: the one before is there, the one after is not.
    assert result.pitr_before_kept and result.pitr_after_dropped, figures
