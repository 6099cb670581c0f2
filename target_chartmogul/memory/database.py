"""Opening the sync memory's database: the URL as SQLAlchemy takes it, the schema brought current, the folder beside it.

A bad URL, an unreachable server or a missing driver is one FatalError naming the `ledger_url` setting.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import pathlib
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from target_chartmogul.errors import FatalError
from target_chartmogul.memory.migrations import prepare_schema


def now() -> dt.datetime:
    """The time a row is stamped with (UTC)."""
    return dt.datetime.now(dt.timezone.utc)


def _require_psycopg() -> None:
    """The PostgreSQL driver (psycopg) comes with the `postgres` extra only: say so, not `No module named`."""
    if importlib.util.find_spec("psycopg") is None:
        msg = (
            "ledger_url is a postgresql:// URL, which needs the PostgreSQL driver: "
            "pip install 'target-chartmogul[postgres]' (or use the default sqlite:/// ledger_url)"
        )
        raise FatalError(msg)


def engine_url(url: str) -> sa.URL:
    """`postgresql://` means psycopg 3 here (the `postgres` extra); create sqlite's folder."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        _require_psycopg()
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        if parsed.query.get("uri"):  # a file: URI names its own options; leave it as given
            return parsed
        path = pathlib.Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(database=str(path))
    return parsed


def state_dir(ledger_url: str, rejects_path: str | pathlib.Path) -> pathlib.Path:
    """Where a run keeps files beside the sync memory (the bulk spool): the folder of a SQLite sync memory, else the
    folder of the rejects file.
    """
    parsed = make_url(ledger_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.query.get("uri"):
        return pathlib.Path(parsed.database).expanduser().parent
    return pathlib.Path(rejects_path).expanduser().parent


def open_engine(url: str) -> sa.Engine:
    """An engine on a current schema; a bad URL or an unreachable server is a FatalError naming the setting."""
    engine: sa.Engine | None = None
    try:
        where = make_url(url).render_as_string(hide_password=True)
        engine = sa.create_engine(engine_url(url), future=True)
        prepare_schema(engine, where)
    except FatalError:
        if engine is not None:
            engine.dispose()
        raise
    except Exception as exc:  # a bad URL or an unreachable server: say which setting
        if engine is not None:
            engine.dispose()
        raise FatalError(f"cannot open the sync memory (ledger_url): {type(exc).__name__}: {exc}") from None
    return engine


def upsert_for(engine: sa.Engine) -> t.Callable[[sa.Table], t.Any]:
    """The dialect's INSERT, which takes ON CONFLICT clauses (SQLite and PostgreSQL spell them alike)."""
    return t.cast("t.Callable[[sa.Table], t.Any]", postgresql.insert if engine.dialect.name == "postgresql"
                  else sqlite.insert)
