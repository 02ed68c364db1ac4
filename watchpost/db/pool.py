from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0
) -> ConnectionPool:
    """A connection pool whose connections return rows as dicts.

    Connections are checked before use, so a pool survives a Postgres restart: a dead connection
    is replaced instead of failing the next query.
    """
    pool = ConnectionPool(
        url,
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
