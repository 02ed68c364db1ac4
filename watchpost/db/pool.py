from __future__ import annotations

from typing import Any, TypeAlias

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

# A row as the pool's connections return it: column name -> value.
Row: TypeAlias = dict[str, Any]
# A connection whose rows are dicts, and the pool of them: the types every query function takes.
Conn: TypeAlias = psycopg.Connection[DictRow]
Pool: TypeAlias = ConnectionPool[Conn]


def open_pool(url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0) -> Pool:
    """A connection pool whose connections return rows as dicts.

    Connections are checked before use, so a pool survives a Postgres restart: a dead connection
    is replaced instead of failing the next query.
    """
    pool = ConnectionPool(
        url,
        connection_class=psycopg.Connection[DictRow],
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs={"row_factory": dict_row},
        check=ConnectionPool.check_connection,
        open=False,
        name="watchpost",
    )
    pool.open(wait=False)
    return pool


def one(cursor: psycopg.Cursor[DictRow]) -> Row:
    """The one row a statement returns (an INSERT .. RETURNING, a count): a missing row is a bug."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row
