"""Settings refuse unsafe production configuration (no TLS, no field-encryption keys, sign-in links over
http or mail without STARTTLS) with a message naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chatwizard.core.crypto import new_key_entry
from chatwizard.core.settings import Settings

SAFE = {"database_url": "postgresql://app@db.internal/chatwizard?sslmode=verify-full",
        "redis_url": "rediss://cache.internal:6379/0", "field_keys": new_key_entry("v1"),
        "public_url": "https://chat.example", "smtp_starttls": True}


@pytest.mark.parametrize(("override", "message"), [
    ({"database_url": "postgresql://app@db.internal/chatwizard"}, "CHATWIZARD_DATABASE_URL must use sslmode=verify-full"),
    ({"replica_url": "postgresql://app@replica.internal/chatwizard?sslmode=require"}, "CHATWIZARD_REPLICA_URL"),
    ({"redis_url": "redis://cache.internal:6379/0"}, "CHATWIZARD_REDIS_URL must be a rediss://"),
    ({"field_keys": None}, "CHATWIZARD_FIELD_KEYS is required in production"),
    ({"public_url": "http://chat.example"}, "CHATWIZARD_PUBLIC_URL must be an https:// address in production"),
    ({"smtp_starttls": False}, "CHATWIZARD_SMTP_STARTTLS must be true in production"),
])
def test_production_requires_verified_tls(override, message):
    with pytest.raises(ValidationError, match=message):
        Settings(environment="production", **{**SAFE, **override})


def test_production_with_tls_and_development_without_are_accepted():
    assert Settings(environment="production", **SAFE).environment == "production"
    assert Settings(environment="development").redis_url.get_secret_value().startswith("redis://")


def test_pool_bounds_are_checked():
    with pytest.raises(ValidationError, match="CHATWIZARD_DB_POOL_MIN must not exceed"):
        Settings(db_pool_min=20, db_pool_max=5)
