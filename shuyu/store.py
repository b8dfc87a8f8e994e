"""The metadata store: SQLAlchemy engine, one transaction per state change.

SQLite (default) takes the write lock at BEGIN (`BEGIN IMMEDIATE`) so concurrent writers queue
instead of failing on lock upgrade; PostgreSQL uses row locks (`SELECT ... FOR UPDATE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from shuyu.errors import PlatformError
from shuyu.schema import ledger_head, metadata

GENESIS = "0" * 64


class Store:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: Engine = _make_engine(url)

    def create_schema(self) -> None:
        try:
            with self.transaction() as conn:
                metadata.create_all(conn)
                _add_missing_columns(conn)
                if conn.execute(select(ledger_head.c.id)).first() is None:
                    conn.execute(insert(ledger_head).values(id=1, seq=0, hash=GENESIS))
        except OperationalError as exc:
            raise PlatformError(
                f"cannot create the metadata store at {safe_url(self.url)}: {exc.orig}",
                fix="check SHUYU_DB_URL and that the database server is running",
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One unit of work: everything inside commits together or not at all."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise PlatformError(
                f"metadata store {safe_url(self.url)} failed: {exc.orig}",
                fix="check the database is reachable and retry; nothing was changed",
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise PlatformError(
                f"metadata store {safe_url(self.url)} is not readable: {exc.orig}",
                fix="run `shuyu init` or check SHUYU_HOME / SHUYU_DB_URL",
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _add_missing_columns(conn: Connection) -> None:
    """Stores made by an earlier version lack the columns added since (e.g. the identity
    columns of `users`, the tenant of `jobs`): add them, nullable or with their server default.
    Nothing is dropped or changed."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        existing = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            default = ""
            if column.server_default is not None:
                default = f" DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
            conn.exec_driver_sql(
                f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{default}'
            )


def _make_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60})

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        return create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise PlatformError(
            f"cannot use metadata store URL {safe_url(url)}: {exc}",
            fix="set SHUYU_DB_URL to sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        ) from exc


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
