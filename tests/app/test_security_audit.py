"""The deeper audit sends attack traffic, so it refuses any target that is not this machine."""

from __future__ import annotations

import pytest

from chatwizard.estate.security_audit import check_loopback


@pytest.mark.parametrize("url", ["https://api.chatwizard.example", "http://10.0.0.5:8000", "http://192.168.1.2"])
def test_the_audit_refuses_targets_off_this_machine(url: str):
    with pytest.raises(SystemExit, match="loopback only"):
        check_loopback(url)


def test_the_audit_accepts_loopback():
    check_loopback("http://127.0.0.1:8000")
