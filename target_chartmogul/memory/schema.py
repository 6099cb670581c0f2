"""The sync memory's tables as this release declares them (migrations.py brings older memories to this shape).

Each table belongs to one concern of the memory: `tcm_synced_objects` and `tcm_unproven` to objects.py,
`tcm_rejected_records` and `tcm_stream_schemas` to rejects.py, `tcm_invoice_replacements` and
`tcm_bulk_imports` to journals.py, `tcm_facts` to facts.py, `tcm_schema` to migrations.py.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
synced = sa.Table(
    "tcm_synced_objects",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("object", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(1000), primary_key=True),
    sa.Column("uuid", sa.String(100), nullable=True),
    sa.Column("payload_hash", sa.String(64), nullable=True),
    sa.Column("record_hash", sa.String(64), nullable=True),
    sa.Column("stream", sa.String(500), nullable=True),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tags", sa.Text, nullable=True),  # JSON list of the customer tags the loader set; NULL = unknown
    sa.Column("parent", sa.String(1000), nullable=True),  # a line item's invoice (external id)
    sa.Column("status", sa.String(32), nullable=True),  # an invoice's status last applied (voided, written_off)
)
unproven = sa.Table(  # (data source, object) whose rows an upgrade left without hashes it can trust: listed once
    "tcm_unproven",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("object", sa.String(32), primary_key=True),
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
)
rejected = sa.Table(
    "tcm_rejected_records",
    metadata,
    sa.Column("stream", sa.String(500), primary_key=True),
    sa.Column("record_key", sa.String(2000), primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("field", sa.String(500), nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
)
schemas = sa.Table(
    "tcm_stream_schemas",
    metadata,
    sa.Column("stream", sa.String(500), primary_key=True),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("key_properties", sa.Text, nullable=False),
)
replacements = sa.Table(  # invoices being replaced: the new content, kept until the replacement is done
    "tcm_invoice_replacements",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("external_id", sa.String(1000), primary_key=True),
    sa.Column("customer_uuid", sa.String(100), nullable=False),
    sa.Column("invoice", sa.Text, nullable=False),  # the import body (JSON), transactions included
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(32), nullable=True),  # voided / written_off, set after the import; NULL: none
)
bulk_imports = sa.Table(  # bulk imports submitted and not yet recorded: polled again by the next run
    "tcm_bulk_imports",
    metadata,
    sa.Column("local_id", sa.String(64), primary_key=True),
    sa.Column("data_source_uuid", sa.String(100), nullable=False),
    sa.Column("import_id", sa.String(100), nullable=True),  # NULL: sent, ChartMogul's answer not yet read
    sa.Column("entries", sa.Text, nullable=False),  # JSON: what each record brought and what to remember
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
)
facts = sa.Table(  # what the loader learnt of ChartMogul's behaviour, per data source (bulk_customer_attributes)
    "tcm_facts",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("learnt_at", sa.DateTime(timezone=True), nullable=False),
)
version_table = sa.Table(  # one row: the schema version, stamped when the memory is created or migrated
    "tcm_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)
