"""What the loader learnt of ChartMogul's behaviour, per data source (`tcm_facts`), so it is found out once.

Names in use: `bulk_customer_attributes` (whether a bulk body's customer attributes are kept), the
import sent to find that out, and how bulk polls are answered (data source ""). Committed at once;
a dry run learns nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from target_chartmogul.memory.database import now
from target_chartmogul.memory.schema import facts


class Facts:
    """Facts by (data source, name)."""

    def __init__(self, engine: sa.Engine, *, read_only: bool) -> None:
        self.engine = engine
        self.read_only = read_only

    def get(self, data_source_uuid: str, name: str) -> str | None:
        """A fact learnt in an earlier run (or this one), or None."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(facts.c.value).where(facts.c.data_source_uuid == data_source_uuid,
                                                               facts.c.name == name)).scalar()

    def set(self, data_source_uuid: str, name: str, value: str) -> None:
        """Remember a fact (a fact learnt again replaces the first)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(facts).where(facts.c.data_source_uuid == data_source_uuid, facts.c.name == name))
            conn.execute(sa.insert(facts).values(data_source_uuid=data_source_uuid, name=name, value=value,
                                                 learnt_at=now()))

    def forget(self, data_source_uuid: str, name: str) -> None:
        """Drop a fact."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(facts).where(facts.c.data_source_uuid == data_source_uuid, facts.c.name == name))
