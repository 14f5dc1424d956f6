"""Failover drills on throwaway estates: kill the primary under write load, promote the replica, and
check the clients' ledger of acknowledged writes against the promoted node."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatwizard.estate.backup import ARCHIVE_TIMEOUT_S
from chatwizard.estate.drills import backup_drill, drill_estate, failover_drill

RTO_TARGET_S = 60


def test_failover_with_synchronous_replication_loses_no_acknowledged_write(tmp_path: Path):
    """The asynchronous variant runs in `make drill` (docs/reliability/), to keep `make test` short."""
    with drill_estate(tmp_path) as estate:
        result = asyncio.run(failover_drill(estate, synchronous=True))
        assert not estate.replica.in_recovery  # the replica is the primary now
    figures = result.figures()
    assert result.acknowledged > 50, figures
    assert result.lost == 0, figures  # what RDS Multi-AZ gives: nothing acknowledged is lost
    assert result.rto_s < RTO_TARGET_S, figures
    # Writes failed fast while no node took them (503, never a hang), then succeeded on the promoted node.
    assert set(result.writes) <= {201, 503}, figures


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
