"""PostgreSQL access: the pool, migrations and one module of queries per table family."""

from watchpost.db.migrate import apply_migrations
from watchpost.db.pool import Conn, Pool, Row, open_pool

__all__ = ["Conn", "Pool", "Row", "apply_migrations", "open_pool"]
