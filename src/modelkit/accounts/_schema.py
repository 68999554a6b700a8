"""The ledger's tables, and an engine set up for several writing processes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

meta_table = sa.Table(
    "modelkit_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

events = sa.Table(
    "modelkit_events", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # when it happened (seconds since 1970, UTC)
    sa.Column("account_id", sa.Text),
    sa.Column("post_id", sa.Text),
    sa.Column("category", sa.String(128)),
    sa.Column("item_id", sa.String(32)),
    sa.Column("actor", sa.Text),  # the reporter, reviewer or appellant
    sa.Column("data", sa.Text, nullable=False),  # JSON
    sa.Column("recorded", sa.Float, nullable=False),  # when it was written
    sa.Index("ix_modelkit_events_account", "account_id", "kind"),
    sa.Index("ix_modelkit_events_post", "post_id", "kind"),
    sa.Index("ix_modelkit_events_item", "item_id", "kind"),
    sa.Index("ix_modelkit_events_kind", "kind"),
)

# How long a SQLite writer waits for another process's transaction before giving up (seconds).
SQLITE_BUSY_TIMEOUT = 120


def create_engine(url: Any) -> Any:
    """An engine for ``url``. SQLite gets write-ahead logging (readers never block the writer)
    and transactions that take the write lock when they begin: a transaction that read first
    and then wrote could otherwise fail at once when another process wrote in between."""
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

    @sa.event.listens_for(engine, "connect")
    def _connect(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # the driver's own transaction handling off: BEGIN below
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
