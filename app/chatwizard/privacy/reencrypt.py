"""Re-encrypt personal text under the ring's first key, so an older key can leave the ring.

After a rotation (a new key first in CHATWIZARD_FIELD_KEYS) rows written before it stay under their
old key. ``chatwizard reencrypt`` rewrites them, and any value stored before encryption, in batches in
id order. Each batch is one short UPDATE that skips a row changed since it was read, so the job runs
beside live traffic and can be stopped and run again. A value under a key that is no longer in the
ring cannot be read: it is counted by key version and left as it is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from chatwizard.core.crypto import ENCRYPTED_COLUMNS, PREFIX, FieldCipher, FieldKeyError

BATCH_ROWS = 500


@dataclass
class Rewritten:
    rewritten: int = 0
    unreadable: Counter[str] = field(default_factory=Counter)  # values per key version not in the ring


async def reencrypt(conn: asyncpg.Connection, cipher: FieldCipher,
                    batch_rows: int = BATCH_ROWS) -> dict[str, Rewritten]:
    """Rewrite every encrypted column's values not yet under the first key; the outcome per column."""
    if cipher.current is None:
        raise FieldKeyError("CHATWIZARD_FIELD_KEYS is not set: there is no key to encrypt with")
    return {column: await reencrypt_column(conn, cipher, column, batch_rows)
            for column in ENCRYPTED_COLUMNS}


async def reencrypt_column(conn: asyncpg.Connection, cipher: FieldCipher, column: str,
                           batch_rows: int) -> Rewritten:
    table, name = column.split(".")  # "messages.content": also the associated data of its values
    current = f"{PREFIX}{cipher.current}:"
    # Table and column names come from ENCRYPTED_COLUMNS, never from input.
    select = (f"SELECT id, {name} AS value FROM {table} WHERE ($1::uuid IS NULL OR id > $1) "
              f"AND left({name}, $2) <> $3 ORDER BY id LIMIT $4")
    update = (f"UPDATE {table} t SET {name} = u.new "
              f"FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, old, new) "
              f"WHERE t.id = u.id AND t.{name} = u.old")
    outcome, after = Rewritten(), None
    while True:
        rows = await conn.fetch(select, after, len(current), current, batch_rows)
        ids: list[UUID] = []
        old: list[str] = []
        new: list[str] = []
        for row in rows:
            try:
                plain = cipher.decrypt(row["value"], column)
            except FieldKeyError:
                outcome.unreadable[row["value"].removeprefix(PREFIX).partition(":")[0]] += 1
                continue
            ids.append(row["id"])
            old.append(row["value"])
            new.append(cipher.encrypt(plain, column))
        if ids:
            outcome.rewritten += int((await conn.execute(update, ids, old, new)).split()[-1])
        if len(rows) < batch_rows:
            return outcome
        after = rows[-1]["id"]
