"""PostgreSQL for the end-to-end tests, driven through `psql` (no Python DB driver needed).

The server is the one `scripts/postgres.sh` started (env `TCM_PG_HOST`/`TCM_PG_PORT`/`TCM_PG_USER`),
or, when those are unset, a private one this module starts in a temporary directory with
Debian's PostgreSQL 15 binaries (as the `postgres` user when running as root: initdb refuses root).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import typing as t
import uuid

PG_BIN = pathlib.Path(os.environ.get("TCM_PG_BIN", "/usr/lib/postgresql/15/bin"))
SEED_SQL = pathlib.Path(__file__).resolve().parent / "sql" / "seed.sql"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


def binary(name: str) -> str:
    """A PostgreSQL client/server program: Debian's versioned bin dir first, then PATH."""
    candidate = PG_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        msg = f"PostgreSQL program '{name}' not found in {PG_BIN} or on PATH (apt-get install postgresql)"
        raise PostgresUnavailable(msg)
    return found


@dataclasses.dataclass
class Server:
    """A reachable server; `stop` is set for a server this module started."""

    host: str
    port: int
    user: str
    password: str = ""
    stop: t.Callable[[], None] | None = None

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        env.pop("PGDATABASE", None)
        return env

    def psql(self, database: str, sql: str | None = None, *, file: pathlib.Path | None = None,
             timeout: float = 60) -> str:
        """Run SQL (or a file) with ON_ERROR_STOP; returns unaligned, tuples-only output."""
        args = [binary("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database]
        if file is not None:
            args += ["-f", str(file)]
        if sql is not None:
            args += ["-c", sql]
        proc = subprocess.run(args, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False)
        if proc.returncode != 0:
            msg = f"psql failed ({proc.returncode}) on {database}: {proc.stderr.strip() or proc.stdout.strip()}"
            raise RuntimeError(msg)
        return proc.stdout

    def is_ready(self) -> bool:
        try:
            proc = subprocess.run(
                [binary("pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
                capture_output=True, timeout=10, check=False,
            )
        except (PostgresUnavailable, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0

    def create_database(self, prefix: str = "tcm_e2e") -> Database:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return Database(self, name)


@dataclasses.dataclass
class Database:
    """One test database."""

    server: Server
    name: str

    def execute(self, sql: str) -> str:
        return self.server.psql(self.name, sql)

    def load(self, path: pathlib.Path = SEED_SQL) -> None:
        self.server.psql(self.name, file=path)

    def rows(self, query: str) -> list[dict[str, t.Any]]:
        """Rows of a query as JSON objects (PostgreSQL does the JSON encoding)."""
        out = self.execute(f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({query}) AS q").strip()
        return json.loads(out)

    def drop(self) -> None:
        self.server.psql("postgres", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def tap_config(self, schemas: t.Sequence[str] = ("billing",)) -> dict[str, t.Any]:
        """Configuration for meltanolabs-tap-postgres."""
        return {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "password": self.server.password,
            "database": self.name,
            "filter_schemas": list(schemas),
        }


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_private() -> Server:
    """initdb + pg_ctl start into a temporary directory; returns a server that can stop itself."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    as_root = os.geteuid() == 0
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="tcm-e2e-pg-"))
    data, log = workdir / "data", workdir / "log.txt"
    port = _free_port()
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            msg = "running as root and there is no 'postgres' user to run initdb as (apt-get install postgresql)"
            raise PostgresUnavailable(msg) from None
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        workdir.chmod(0o700)

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        if as_root:
            args = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(args)]
        return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)

    init = run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    if init.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
    if start.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()} {tail}")

    def stop() -> None:
        run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(workdir, ignore_errors=True)

    return Server("127.0.0.1", port, "postgres", stop=stop)


def connect_or_start() -> Server:
    """The server named by TCM_PG_* (scripts/postgres.sh), else a private one started now."""
    host = os.environ.get("TCM_PG_HOST")
    if host:
        server = Server(
            host=host,
            port=int(os.environ.get("TCM_PG_PORT", "5432")),
            user=os.environ.get("TCM_PG_USER", "postgres"),
            password=os.environ.get("TCM_PG_PASSWORD", ""),
        )
        if not server.is_ready():
            msg = (f"TCM_PG_HOST={host} TCM_PG_PORT={server.port} is set but no PostgreSQL answers there "
                   "(source scripts/postgres.sh && postgres_start)")
            raise PostgresUnavailable(msg)
        return server
    server = _start_private()
    if not server.is_ready():
        if server.stop:
            server.stop()
        raise PostgresUnavailable("the private PostgreSQL server started but does not answer")
    return server
