"""The account ledger: an append-only table of events in any SQLAlchemy database.

Every fact is one row of ``modelkit_events``, keyed by what it is about, and never changed:

========  =========================================  =======================================
kind      key (unique)                               written by
========  =========================================  =======================================
decision  post                                       ``modelkit moderate --ledger``
strike    post, category                             a ``remove`` decision; a confirmed item
item      item id (post, category, round)            a ``review`` decision, a sample, a report,
                                                     an appeal: something for a person to check
report    post, reporter, category                   ``modelkit review report``
answer    item id                                    ``modelkit review import``
appeal    post, category                             :meth:`Ledger.appeal`
overturn  post, category                             an ``overturn`` answer
========  =========================================  =======================================

Inserts skip a row whose key is already there (``ON CONFLICT DO NOTHING`` in one transaction per
batch), so replaying a decisions folder, rerunning a killed ``moderate`` or two processes writing
the same post at once leave one row per fact: the unique key does the work, not a lock file.
Account states are computed from the events (:mod:`modelkit.accounts.escalation`); penalties
are never stored, so an overturn or a late event changes them by changing the input.

The schema's version is in ``modelkit_meta``; a ledger of a newer version is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import DataError

SCHEMA_VERSION = 1
KINDS = ("decision", "strike", "item", "report", "answer", "appeal", "overturn")


class LedgerError(DataError):
    """The ledger cannot be opened, or holds something this modelkit cannot read."""


def event_key(kind: str, *parts: Any) -> str:
    """The unique key of a fact: its kind and a digest of what it is about (ids are any text)."""
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


def item_id(post_id: str, category: str, round_: str = "") -> str:
    """A review item's id: a post's category, in a round ("" first, "appeal" after an appeal)."""
    return hashlib.sha256(f"{post_id}\0{category}\0{round_}".encode()).hexdigest()[:16]


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    except (ValueError, OverflowError, OSError):  # past year 9999 (a ladder of 10^8 days)
        return f"{seconds:.0f} s after 1970"


@dataclass(frozen=True)
class Event:
    """One row of the ledger (``data``: the kind's own fields, see the module docstring)."""

    seq: int
    kind: str
    at: float
    account_id: str | None
    post_id: str | None
    category: str | None
    item_id: str | None
    actor: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        row = {"seq": self.seq, "kind": self.kind, "at": self.at, "time": format_time(self.at)}
        row.update((name, value) for name, value in (("account_id", self.account_id), ("post_id", self.post_id),
                                                    ("category", self.category), ("item_id", self.item_id),
                                                    ("actor", self.actor)) if value is not None)
        if self.data:
            row["data"] = self.data
        return row


def new_event(kind: str, key_parts: Sequence[Any], at: float, *, account_id: str | None = None,
              post_id: str | None = None, category: str | None = None, item: str | None = None,
              actor: str | None = None, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An event row ready to insert (``key_parts``: what makes it unique)."""
    return {"key": event_key(kind, *key_parts), "kind": kind, "at": float(at), "account_id": account_id,
            "post_id": post_id, "category": category, "item_id": item, "actor": actor,
            "data": json.dumps(dict(data or {}), ensure_ascii=False, sort_keys=True), "recorded": time.time()}


class Ledger:
    """The events of one database (``url``: any SQLAlchemy URL; a plain path means a SQLite file).

    Opening creates the tables when they are missing and refuses a database written by a newer
    schema; a database that cannot be reached is a :class:`LedgerError` naming the URL (its
    password hidden) at once, before anything is scored.
    """

    def __init__(self, url: str | os.PathLike, create: bool = True) -> None:
        import sqlalchemy as sa

        from ._schema import create_engine

        url = str(url)
        shown = _masked(url)
        if not url.strip():
            raise LedgerError("ledger: no URL or path given")
        try:
            # A path is a SQLite file, its characters taken as they are (not parsed as a URL).
            parsed = sa.engine.make_url(url) if "://" in url else sa.engine.URL.create("sqlite", database=url)
            self._shown = parsed.render_as_string(hide_password=True)
            if parsed.get_backend_name() == "sqlite":
                if parsed.database in (None, "", ":memory:") or "mode=memory" in url:
                    raise LedgerError(f"ledger {self._shown}: an in-memory database would be lost when the command "
                                      "ends; give a file path or a database URL")
                if not create and not Path(parsed.database).exists():
                    raise LedgerError(f"ledger {self._shown}: no such file (modelkit moderate --ledger makes one)")
            self.engine = create_engine(parsed)
        except (sa.exc.ArgumentError, ImportError, ValueError) as err:  # malformed URL, driver not installed
            if isinstance(err, LedgerError):
                raise
            raise LedgerError(f"ledger {shown}: {err}") from None
        try:
            with self.engine.begin() as connection:
                self._check_or_create(connection, create)
        except sa.exc.SQLAlchemyError as err:
            raise LedgerError(f"ledger {self._shown}: cannot open it: {_first_line(err)}") from None

    def _check_or_create(self, connection: Any, create: bool) -> None:
        """Refuse a database of a newer schema, or whose ``modelkit_events`` is some other table,
        before writing anything to it; then create what is missing (``create``)."""
        import sqlalchemy as sa

        from ._schema import events, metadata, meta_table

        tables = set(sa.inspect(connection).get_table_names())
        if meta_table.name in tables:
            found = connection.execute(sa.select(meta_table.c.value).where(
                meta_table.c.key == "schema_version")).scalar()
            if found is not None:
                if not str(found).isdigit():
                    raise LedgerError(f"ledger {self._shown}: schema version {found!r} is not one modelkit wrote")
                if int(found) > SCHEMA_VERSION:
                    raise LedgerError(f"ledger {self._shown}: written by a newer modelkit (schema version {found}; this "
                                      f"one reads {SCHEMA_VERSION}); upgrade modelkit to use it")
        if events.name in tables:
            columns = {column["name"] for column in sa.inspect(connection).get_columns(events.name)}
            missing = sorted({column.name for column in events.columns} - columns)
            if missing:
                raise LedgerError(f"ledger {self._shown}: its table {events.name} is not a modelkit ledger's (no "
                                  f"column {missing[0]})")
        elif not create:
            raise LedgerError(f"ledger {self._shown}: holds no modelkit ledger (modelkit moderate --ledger makes one)")
        if create:
            metadata.create_all(connection)
            self._insert(connection, meta_table, [{"key": "schema_version", "value": str(SCHEMA_VERSION)}], "key")

    @contextmanager
    def _said(self) -> Iterator[None]:
        """Database errors (a full disk, a lost connection) as a LedgerError naming the ledger;
        the transaction they happened in is rolled back, so nothing of it was written."""
        import sqlalchemy as sa

        try:
            yield
        except sa.exc.SQLAlchemyError as err:
            raise LedgerError(f"ledger {self._shown}: {_first_line(err)}") from None

    @property
    def name(self) -> str:
        """The ledger's URL, its password hidden."""
        return self._shown

    def __repr__(self) -> str:
        return f"Ledger({self._shown!r})"

    def close(self) -> None:
        """Release the connections; a SQLite ledger's write-ahead log is folded into its file
        first, so that the ``.db`` file alone holds the ledger (a copy of it is whole)."""
        if self.engine.dialect.name == "sqlite":
            try:
                with self.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except Exception:  # noqa: BLE001 - a read-only or full disk: the log stays beside the file
                pass
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------
    # Writing
    # ----------------------------------------------------------------------------------------
    def append(self, rows: Iterable[dict[str, Any]]) -> Counter:
        """Insert event rows (:func:`new_event`) in one transaction; a row whose key is already
        in the ledger is skipped. Returns how many rows of each kind were new."""
        from ._schema import events

        rows = list(rows)
        if not rows:
            return Counter()
        with self._said(), self.engine.begin() as connection:
            new = self._insert(connection, events, rows, "key")
        return Counter(row["kind"] for row, is_new in zip(rows, new) if is_new)

    def append_groups(self, groups: Sequence[Sequence[dict[str, Any]]]) -> list[list[bool] | None]:
        """Insert groups of event rows in one transaction, each group's later rows only when its
        first is new (an answer and what it does: a second import of the answer does nothing,
        even when two imports race). Per group, whether each row was new (None: the first was
        not, nothing of the group was written)."""
        from ._schema import events

        out: list[list[bool] | None] = []
        with self._said(), self.engine.begin() as connection:
            for group in groups:
                if not self._insert_one(connection, events, group[0], "key"):
                    out.append(None)
                    continue
                out.append([True, *self._insert(connection, events, list(group[1:]), "key")])
        return out

    def _upsert_insert(self) -> Any:
        """The dialect's ``insert`` that has ``on_conflict_do_nothing`` (None: this database has none)."""
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            return None
        return insert

    def _insert_one(self, connection: Any, table: Any, row: dict[str, Any], key: str) -> bool:
        """Insert one row unless its key is there; exactly whether it was new, even with another
        writer racing (RETURNING says what this statement inserted)."""
        insert = self._upsert_insert()
        if insert is None:
            return self._insert(connection, table, [row], key)[0]
        statement = insert(table).values(**row).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
        return connection.execute(statement).first() is not None

    def _insert(self, connection: Any, table: Any, rows: list[dict[str, Any]], key: str) -> list[bool]:
        """Each row inserted unless its ``key`` is there (or earlier in ``rows``); whether it was
        new, per row. The keys already stored are read first and the rest inserted in one
        statement (thousands of rows a chunk); the insert still skips conflicts, so a writer
        racing in between adds no second row (it only makes that row's answer here say new)."""
        import sqlalchemy as sa

        column = table.c[key]
        keys = [row[key] for row in rows]
        stored: set[str] = set()
        for start in range(0, len(keys), 500):  # databases cap the parameters of one statement
            stored.update(connection.execute(sa.select(column).where(column.in_(keys[start:start + 500]))).scalars())
        new, fresh = [], []
        for row in rows:
            is_new = row[key] not in stored
            stored.add(row[key])
            new.append(is_new)
            if is_new:
                fresh.append(row)
        if not fresh:
            return new
        insert = self._upsert_insert()
        if insert is not None:
            connection.execute(insert(table).on_conflict_do_nothing(index_elements=[key]), fresh)
            return new
        # Any other database: a savepoint per row, a duplicate key rolls back that row only.
        for position, row in enumerate(rows):
            if not new[position]:
                continue
            try:
                with connection.begin_nested():
                    connection.execute(table.insert().values(**row))
            except sa.exc.IntegrityError:
                new[position] = False
        return new

    # ----------------------------------------------------------------------------------------
    # Reading
    # ----------------------------------------------------------------------------------------
    def events(self, *, kinds: Sequence[str] | None = None, account_id: str | None = None,
               post_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None) -> Iterator[Event]:
        """Events in the order they were stored, filtered by kind, account, posts or items."""
        import sqlalchemy as sa

        from ._schema import events

        query = sa.select(events).order_by(events.c.seq)
        if kinds is not None:
            query = query.where(events.c.kind.in_(list(kinds)))
        if account_id is not None:
            query = query.where(events.c.account_id == account_id)
        for name, values in (("post_id", post_ids), ("item_id", item_ids)):
            if values is not None:
                values = list(dict.fromkeys(values))
                if not values:
                    return
                # Large lists go in slices: databases cap the parameters of one statement.
                for start in range(0, len(values), 500):
                    yield from self._rows(query.where(events.c[name].in_(values[start:start + 500])))
                return
        yield from self._rows(query)

    def _rows(self, query: Any) -> Iterator[Event]:
        with self._said(), self.engine.connect() as connection:
            for row in connection.execute(query):
                yield Event(row.seq, row.kind, row.at, row.account_id, row.post_id, row.category, row.item_id,
                            row.actor, json.loads(row.data) if row.data else {})

    def counts(self) -> dict[str, int]:
        """Events per kind."""
        import sqlalchemy as sa

        from ._schema import events

        with self._said(), self.engine.connect() as connection:
            found = dict(connection.execute(sa.select(events.c.kind, sa.func.count()).group_by(events.c.kind)).all())
        return {kind: int(found.get(kind, 0)) for kind in KINDS}


def open_ledger(url: str | os.PathLike | Ledger, create: bool = True) -> Ledger:
    """A :class:`Ledger` for ``url`` (a ledger is returned as it is); ``create=False``: one that
    must exist already (what reading commands open, so that a mistyped path is an error, not an
    empty ledger)."""
    return url if isinstance(url, Ledger) else Ledger(url, create)


def _masked(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for errors about URLs that do not parse)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__
