"""API key lifecycle: rotation keeps the old key only for the overlap window; revoked and expired keys
are refused; keys are stored only as hashes; other users' keys cannot be touched."""

from __future__ import annotations

import hashlib
import json

import redis

from chatwizard.core.cache import INVALIDATIONS
from chatwizard.core.security import generate_key, well_formed
from tests.conftest import AppServer, Databases


def test_a_key_with_a_typo_or_the_wrong_shape_is_refused_by_its_checksum_and_format():
    key = generate_key()
    assert well_formed(key)
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    for bad in (typo, key[:-1], key + "x", "cwx_" + key[4:], key[:8] + "-" + key[9:], key.upper(),
                key[:8] + "\u0661" + key[9:], ""):
        assert not well_formed(bad), bad


async def test_rotation_overlap_then_expiry(app_server: AppServer, databases: Databases, redis_node, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        [old] = (await client.get("/v1/keys")).json()
        rotated = await client.post(f"/v1/keys/{old['id']}/rotate")
        assert rotated.status_code == 201
        new_key = rotated.json()["key"]
        assert new_key.startswith("cwk_") and new_key != user.key
        assert (await client.get("/v1/me")).status_code == 200, "the old key stopped inside the overlap"
        keys = {k["id"]: k for k in (await client.get("/v1/keys")).json()}
    assert keys[old["id"]]["expires_at"] is not None and len(keys) == 2
    async with app_server.client(new_key) as client:
        assert (await client.get("/v1/me")).status_code == 200
    # A day passes: move the window's end into the past, in the database and in the lookup cache
    # (which holds the same expiry time and checks it on every use), as the app drops an entry: delete
    # it and publish the deletion to every process's near cache.
    databases.primary.psql(f"UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = '{old['id']}'")
    lookup = f"cw:key:{hashlib.sha256(user.key.encode()).hexdigest()}"
    store = redis.Redis.from_url(redis_node.url)
    store.delete(lookup)
    store.publish(INVALIDATIONS, json.dumps([lookup]))
    async with app_server.client(user.key) as client:
        expired = await client.get("/v1/me")
    assert expired.status_code == 401 and expired.json()["detail"] == "API key expired"
    async with app_server.client(new_key) as client:
        assert (await client.post(f"/v1/keys/{old['id']}/rotate")).status_code == 404  # expired: nothing to rotate
    stored = databases.primary.psql("SELECT string_agg(encode(key_hash, 'hex'), ' ') FROM api_keys")
    assert user.key not in stored and new_key not in stored


async def test_others_keys_cannot_be_rotated_or_revoked(app_server: AppServer, make_user):
    owner, other = await make_user(), await make_user()
    async with app_server.client(owner.key) as client:
        [key] = (await client.get("/v1/keys")).json()
    async with app_server.client(other.key) as client:
        assert (await client.post(f"/v1/keys/{key['id']}/rotate")).status_code == 404
        assert (await client.delete(f"/v1/keys/{key['id']}")).status_code == 404
    async with app_server.client(owner.key) as client:
        assert (await client.get("/v1/me")).status_code == 200
