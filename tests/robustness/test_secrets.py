"""The API key appears nowhere the target writes: stdout (STATE), stderr at DEBUG, the rejects
file, the request log, and the sync memory (every table of it, in PostgreSQL).
"""

from __future__ import annotations

import base64
import json

import sqlalchemy as sa

from tests.billing import CUSTOMERS_STREAM, INVOICES_STREAM, encode, invoice_row, raw_record
from tests.robustness.load import LOAD, fault_figures, load_config, record_figures
from tests.running import API_KEY, run_cli


def secret_forms() -> dict[str, str]:
    return {
        "key": API_KEY,
        "basic auth user:": base64.b64encode(f"{API_KEY}:".encode()).decode(),
        "basic auth key": base64.b64encode(API_KEY.encode()).decode(),
        "basic auth :key": base64.b64encode(f":{API_KEY}".encode()).decode(),
        "key tail": API_KEY[-12:],
    }


def dump_database(url: str) -> str:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        parts = []
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            assert tables, "the sync memory has no tables"
            for table in tables:
                rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).fetchall()
                parts.append(f"{table}: {len(rows)} rows\n" + "\n".join(repr(tuple(r)) for r in rows))
        return "\n".join(parts)
    finally:
        engine.dispose()


def test_api_key_appears_nowhere(fake, ds, base_config, pg_database_url, tmp_path):
    request_log = tmp_path / "requests.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    config = load_config(base_config, request_log=str(request_log), rejects_path=str(rejects),
                         ledger_url=pg_database_url, request_timeout=1, max_retries=8)
    fake.random_faults(rate=0.08, kinds=("error_before", "error_after", "drop_after", "status_429"), seed=505)
    bad_invoice = invoice_row(LOAD.invoices[0]) | {"external_id": "inv-bad", "currency": "euro"}
    bad_rows = [
        encode({"type": "RECORD", "stream": CUSTOMERS_STREAM, "record": {"external_id": "cus-bad", "name": "Bad",
                                                                        "country": "Germany"}}),
        raw_record(INVOICES_STREAM, bad_invoice),
    ]
    messages = LOAD.messages()
    messages = [*messages[:-1], *bad_rows, messages[-1]]

    result = run_cli(config, messages, tmp_path, env={"TARGET_CHARTMOGUL_LOGLEVEL": "DEBUG"}, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| DEBUG" in result.stderr  # the run really logged at DEBUG
    reject_lines = rejects.read_text().splitlines()
    assert {json.loads(r)["key"]["external_id"] for r in reject_lines} == {"cus-bad", "inv-bad"}
    # One line per attempt, as the fake saw them (test_observability checks the same on a small run).
    assert len(request_log.read_text().splitlines()) == len(fake.requests)
    memory = dump_database(pg_database_url)
    assert "cus-001" in memory  # the dump really holds the written objects

    places = {
        "stdout (STATE)": result.stdout,
        "stderr": result.stderr,
        "rejects file": rejects.read_text(),
        "request log": request_log.read_text(),
        "sync memory": memory,
    }
    leaks = [(place, form) for place, text in places.items() for form, secret in secret_forms().items()
             if secret in text]
    assert leaks == [], leaks
    figures = fault_figures(fake)
    record_figures("secrets", {"requests": figures["requests"], "faults": figures["faults"],
                               "request_log_lines": len(request_log.read_text().splitlines()),
                               "stderr_lines": len(result.stderr.splitlines()), **LOAD.measure(fake, ds)})
    LOAD.assert_exact(fake, ds)
