"""One object lifecycle: map → decide (memory, listing, compare) → create / update / delete → remember.

Plans, customers, transactions, subscription events and contacts are written by this engine
(`ObjectSink` runs it); the invoice sinks use its shared steps (`held`, `look_up`, `delete`,
`remember`). What differs per object is its `Rules` (its resource in the table, its mapping,
its compare, its bodies and its special rules); every decision is made here, once:

1. **Unchanged** when the sync memory holds exactly this payload (no call).
2. **Remembered**: ChartMogul's copy (this run's listing of a lost memory, or one read) is
   compared and what differs is written; a change the memory proves is written without a
   read. A 404 means it is gone: it is created again.
3. **Matched**: an object ChartMogul holds that is this one though the memory has no id
   (a customer by email, a contact by name): compared as above.
4. **Created**; a refusal that says the external id is used (the table's message, or, where
   no message is recorded, the object found by looking it up) means it exists: it is looked
   up and compared, or counted created when the refusal answered a retry of our own create
   whose first answer was lost.
5. **Remembered** in the sync memory.

Deletes: by the id the memory keeps, else the one ChartMogul's copy shows; a 404 means it is
gone already. Each decision's writes run inside `client.change(...)`, which a dry run shows
as the change (the stream, the record's key, each field as `old → new`).
"""

from __future__ import annotations

import dataclasses
import importlib
import typing as t

from target_chartmogul.api.changes import CREATE, DELETE, UPDATE, Change, key_text
from target_chartmogul.api.errors import APIError
from target_chartmogul.api.resources import delete_if_present, get_or_none, is_duplicate, is_missing
from target_chartmogul.config.registry import BY_NAME, RESOURCES, rules_path
from target_chartmogul.errors import RecordRejected
from target_chartmogul.memory.ledger import payload_hash
from target_chartmogul.sinks.base import ChartMogulSink
from target_chartmogul.values import compare

if t.TYPE_CHECKING:
    from singer_sdk.target_base import Target

    from target_chartmogul.api.client import ChartMogulClient, Response
    from target_chartmogul.bulk.entries import BulkWriter
    from target_chartmogul.memory.ledger import Entry

Record = dict[str, t.Any]
Obj = dict[str, t.Any]
Key = tuple[str, str]  # (data source, external id): the sync memory's key of the object
Changes = dict[str, tuple[t.Any, t.Any]]  # field -> (ChartMogul's value, the record's)
P = t.TypeVar("P")


class Payload(t.Protocol):
    """What the default rules read of a payload: the object's name, and its create body."""

    data_source_uuid: str
    external_id: str

    def body(self) -> Obj:
        """The body of its create."""


CREATED, UPDATED, UNCHANGED, DELETED, IMPORTED = "created", "updated", "unchanged", "deleted", "imported"
SKIPPED = "skipped"  # a deleted row whose object may exist but cannot be told (not deleted)
PRESENT = "already_present"  # insert: it exists, and is left as it is
KEPT = "changed_not_applied"  # the object may not be touched (`invoice_changes: keep`)
IDENTITY = ("data_source_uuid", "external_id")  # a body's fields that name the object (never PATCHed)


@dataclasses.dataclass
class Item(t.Generic[P]):
    """One record on its way: its payload, its key in the sync memory, what the memory hashes, what it holds."""

    record: Record
    payload: P
    key: Key
    fingerprint: t.Any
    record_hash: str | None = None
    entry: Entry | None = None
    facts: dict[str, t.Any] = dataclasses.field(default_factory=dict)  # what its rules learnt on the way


def field_changes(wanted: t.Mapping[str, t.Any], held: t.Mapping[str, t.Any], names: t.Iterable[str] | None = None,
                  **rules: t.Any) -> Changes:
    """`compare.changed_fields` (the one rule for "changed") as field -> (ChartMogul's value, the record's)."""
    changed = compare.changed_fields(wanted, held, compared=names, **rules)
    return {name: (held.get(name), wanted.get(name)) for name in changed}


class Rules(t.Generic[P]):
    """What one object brings to its lifecycle. Every default reads the object's line of the resource table.

    A new object overrides `map` (its mapping); the rest is needed only where it differs from ChartMogul's
    usual REST resource (POST `{path}`, GET/PATCH/DELETE `{path}/{uuid}`, duplicates refused by message).
    """

    kind: t.ClassVar[str]  # its resource in the table (`config.registry`)
    bulk: BulkWriter | None = None  # the bulk lane's adapter, when its new objects can ride in a bulk import
    updated: t.ClassVar[str] = UPDATED  # what an update counts as
    blind_updates: t.ClassVar[bool] = True  # a change the memory proves is written without reading first
    ids_lost_creates: t.ClassVar[bool] = True  # a create answered only on a retry is looked up for its id

    def __init__(self, sink: ChartMogulSink) -> None:
        self.sink = sink
        self.context = sink.context
        self.settings = sink.settings
        self.logger = sink.logger
        self.resource = RESOURCES[self.kind]

    @property
    def client(self) -> ChartMogulClient:
        """The run's client."""
        return self.context.client

    @property
    def default_data_source(self) -> str | None:
        """The data source of records that name none."""
        return self.sink.config.get("data_source_uuid")

    # Mapping ---------------------------------------------------------------------------------
    def map(self, record: Record) -> P:
        """The payload, or RecordRejected naming the field."""
        raise NotImplementedError

    def key(self, payload: P) -> Key:
        """Where the sync memory keeps it: (data source, external id)."""
        named = t.cast("Payload", payload)
        return (str(named.data_source_uuid), str(named.external_id))

    def body(self, payload: P) -> Obj:
        """The body of its create."""
        return t.cast("Payload", payload).body()

    def patch_body(self, payload: P) -> Obj:
        """What an update sends when every field is sent (the body without what names the object)."""
        return {name: value for name, value in self.body(payload).items() if name not in IDENTITY}

    def fingerprint(self, payload: P) -> t.Any:
        """What the sync memory hashes to tell whether ChartMogul holds exactly this."""
        return self.body(payload)

    def raw_key(self, record: Record) -> Key | None:
        """The memory key read off the record itself, where an unchanged record need not be mapped (None: map)."""
        return None

    def record_hash(self, record: Record) -> str | None:
        """A hash of the record that, held by the memory with its payload, proves it unchanged before mapping."""
        return None

    def dedupe_key(self, record: Record) -> t.Hashable | None:
        """Records of one object in one batch (None: by data source and external id)."""
        return None

    def arrived(self, record: Record) -> None:
        """A record was staged (transactions offer a payment to its invoice's import)."""

    # Deciding --------------------------------------------------------------------------------
    def ensure_listed(self, data_sources: t.Iterable[str]) -> None:
        """A lost memory: list these data sources' objects once (their ids are adopted, their copies compared)."""
        if self.resource.root is not None:
            for ds in sorted(ds for ds in set(data_sources) if ds):
                self.context.refs.holdings.ensure(self.kind, ds)

    def before(self, items: list[Item[P]]) -> None:
        """Before a batch is written (contacts pair rows with what ChartMogul holds)."""

    def prepare(self, item: Item[P]) -> None:
        """What deciding needs (a contact's customer); RecordRejected, or Unresolved to wait."""

    def settled(self, item: Item[P]) -> tuple[str, str | None] | None:
        """(outcome, id) when another object's write carried it (a payment in its invoice's import)."""
        return None

    def knows(self, entry: Entry | None) -> bool:
        """Whether the memory knows the object ChartMogul holds (by its id)."""
        return entry is not None and bool(entry.uuid)

    @property
    def insert_only(self) -> bool:
        """`mode: insert`: an object ChartMogul holds is left as it is."""
        return self.settings.mode == "insert"

    def copy(self, item: Item[P]) -> Obj | None:
        """ChartMogul's copy from this run's listing (dropped: it is stale once written), or None."""
        holdings = self.context.refs.holdings
        held = holdings.get(self.kind, *item.key)
        holdings.drop(self.kind, *item.key)
        return held

    def read(self, item: Item[P]) -> Obj | None:
        """ChartMogul's copy, read by the id the memory keeps; None when it is gone (404)."""
        return get_or_none(self.client, self.kind, item.entry.uuid if item.entry else None)

    def matches(self, item: Item[P]) -> list[Obj]:
        """Objects ChartMogul holds that are this one though the memory has no id for it (none by default)."""
        return []

    def changes(self, item: Item[P], held: Obj) -> Changes:
        """What ChartMogul holds differently from the record (`values.compare`)."""
        wanted = self.patch_body(item.payload)
        return field_changes(wanted, held, wanted)

    def kept(self, item: Item[P], changes: Changes | None) -> bool:
        """Whether this change (None: a create) may not be written; the rules say why."""
        return False

    def look_up(self, item: Item[P]) -> Obj | None:
        """The object as ChartMogul holds it now, found by its external id (after a refused create)."""
        return self.context.refs.held(self.kind, *item.key, fresh=True)

    def is_duplicate(self, exc: APIError, item: Item[P]) -> bool:
        """Whether a refused create may mean "it exists" (the table's message; any refusal where none is recorded)."""
        return self.resource.duplicate is None or is_duplicate(exc, self.kind)

    def uuid_of(self, held: t.Mapping[str, t.Any] | None) -> str | None:
        """The id ChartMogul's copy names it by."""
        if not held:
            return None
        found = held.get(self.resource.id_field, held.get("uuid"))
        return str(found) if found is not None else None

    def gone(self, item: Item[P]) -> None:
        """ChartMogul no longer holds it: the memory and this run forget it (it is created again)."""
        self.logger.info("%s %s is gone from ChartMogul; creating it again", self.resource.noun, item.key[1])
        self.context.ledger.deleted(self.sink.object_name, *item.key)
        self.context.refs.forget(self.kind, *item.key)
        self.context.refs.holdings.drop(self.kind, *item.key)

    # Writing (inside `client.change`) -------------------------------------------------------
    def before_write(self, item: Item[P]) -> None:
        """Just before a write (subscription events need their customer and plan)."""

    def create(self, item: Item[P]) -> Response:
        """POST it."""
        return self.client.post(self.resource.created_at(), self.body(item.payload))

    def created(self, item: Item[P], response: Response) -> None:
        """After a create (a retried one may have saved a copy)."""
        if isinstance(response.body, dict):
            self.context.refs.holdings.put(self.kind, *item.key, response.body)

    def refused(self, item: Item[P], exc: APIError) -> t.NoReturn:
        """A create refused for another reason than a used external id."""
        raise exc

    def update(self, item: Item[P], held: Obj, changes: Changes) -> Obj | None:
        """PATCH what differs; the answer (None when it has no body)."""
        answer = self.client.patch(self.resource.one(self.uuid_of(held)), {name: new for name, (_, new) in changes.items()})
        return answer.body if isinstance(answer.body, dict) else None

    def update_known(self, item: Item[P], uuid: str) -> Obj | None:
        """PATCH every field, by the id the memory keeps (the memory proves a change); the answer."""
        answer = self.client.patch(self.resource.one(uuid), self.patch_body(item.payload))
        return answer.body if isinstance(answer.body, dict) else None

    # Deleting --------------------------------------------------------------------------------
    def to_delete(self, key: Key, record: Record, entry: Entry | None) -> str | None:
        """The id of a deleted row's object the memory has no id for: ChartMogul's copy shows it (None: none)."""
        return self.uuid_of(self.context.refs.held(self.kind, *key))

    def not_to_delete(self, key: Key, entry: Entry | None) -> bool:
        """A deleted row no id was found for: forgotten; True when its object may still exist (it could not be
        told apart: skipped), False when ChartMogul does not hold it.
        """
        self.context.refs.forget(self.kind, *key, gone=True)
        return False

    def delete(self, key: Key, uuid: str) -> None:
        """DELETE it (gone already is fine)."""
        delete_if_present(self.client, self.kind, uuid)

    # Remembering -----------------------------------------------------------------------------
    def remember(self, item: Item[P], written: t.Any, uuid: str | None) -> None:
        """Note it in the sync memory (`written` None: ChartMogul holds other data than the record)."""
        self.sink.remember(*item.key, uuid=uuid, payload=written, record_hash=item.record_hash)


class Lifecycle(t.Generic[P]):
    """The engine: every create / update / delete / unchanged of an object is decided here."""

    def __init__(self, sink: ChartMogulSink, rules: Rules[P]) -> None:
        self.sink = sink
        self.rules = rules
        self.resource = rules.resource

    @property
    def client(self) -> ChartMogulClient:
        """The run's client."""
        return self.sink.context.client

    def change(self, record: Record, action: str, changes: Changes | None = None) -> t.Any:
        """The writes of one decision about a record, as a dry run shows them."""
        return self.change_of(key_text(self.sink.record_key(record)), action, changes)

    def change_of(self, key: str, action: str, changes: Changes | None = None, named: t.Sequence[str] = ()) -> t.Any:
        """The writes of one decision about the object `key` names (changes by value, or only by name)."""
        return self.client.change(Change(self.sink.stream_name, key, action, dict(changes or {}), list(named)))

    # A batch -----------------------------------------------------------------------------------
    def write(self, records: list[Record]) -> None:
        """Map, consult the sync memory (a lost one: list the data source once), then write concurrently."""
        items = self.items(records)
        self.sink.run_each(items, self.write_item, records_of=lambda item: [item.record])

    def items(self, records: list[Record]) -> list[Item[P]]:
        """The mapped records (the unmappable rejected) with what the memory holds of each; a record the memory
        holds exactly (`record_hash`) is counted unchanged without being mapped.
        """
        rules = self.rules
        raw = [rules.raw_key(record) for record in records]
        rules.ensure_listed(key[0] for key in raw if key is not None)
        known = self.sink.memory_lookup(key for key in raw if key is not None)
        items: list[Item[P]] = []
        for record, key in zip(records, raw, strict=True):
            digest = rules.record_hash(record)
            entry = known.get(key) if key is not None else None
            if digest is not None and entry is not None and entry.record_hash == digest and entry.payload_hash:
                self.sink.count(UNCHANGED)  # the very record written last time: not even mapped
                continue
            try:
                payload = rules.map(record)
            except RecordRejected as exc:
                self.sink.reject(record, exc.reason, field=exc.field)
                continue
            items.append(Item(record, payload, rules.key(payload), rules.fingerprint(payload), digest))
        rules.ensure_listed(item.key[0] for item in items)
        looked_up = {key for key in raw if key is not None}  # mapping rarely moves a key: look up only those it did
        known.update(self.sink.memory_lookup({item.key for item in items} - looked_up))
        for item in items:
            item.entry = known.get(item.key)
        rules.before(items)
        return items

    def write_item(self, item: Item[P]) -> str:
        """Decide and write one object, then remember it; the outcome to count."""
        rules, entry = self.rules, item.entry
        if entry is not None and entry.payload_hash is not None and entry.payload_hash == payload_hash(item.fingerprint):
            if item.record_hash is not None and entry.record_hash != item.record_hash:  # other columns changed
                rules.remember(item, item.fingerprint, entry.uuid)
            return UNCHANGED
        settled = rules.settled(item)
        if settled is None:
            rules.prepare(item)
            settled = self.decide(item)
        outcome, uuid = settled
        uuid = uuid or (entry.uuid if entry is not None else None)
        rules.remember(item, None if outcome in (PRESENT, KEPT) else item.fingerprint, uuid)
        if uuid:
            self.sink.context.refs.remember(rules.kind, *item.key, {"uuid": uuid})
        return outcome

    # Deciding ----------------------------------------------------------------------------------
    def decide(self, item: Item[P]) -> tuple[str, str | None]:
        """Update what the memory knows, else what ChartMogul holds that matches it, else create it."""
        rules = self.rules
        if rules.knows(item.entry):
            if rules.insert_only:
                return PRESENT, item.entry.uuid if item.entry else None
            done = self.update_remembered(item)
            if done is not None:
                return done
        matches = rules.matches(item)
        if matches:
            results = [self.bring_in_line(item, held) for held in matches]
            changed = next((outcome for outcome, _ in results if outcome != UNCHANGED), UNCHANGED)
            return changed, results[0][1]
        return self.create(item)

    def update_remembered(self, item: Item[P]) -> tuple[str, str | None] | None:
        """An object the memory knows: compared with ChartMogul's copy, or (a change the memory proves, no copy at
        hand) written without a read. None when ChartMogul no longer holds it.
        """
        rules = self.rules
        uuid = item.entry.uuid if item.entry else None
        held = rules.copy(item)
        if held is None and uuid and rules.blind_updates and item.entry and item.entry.payload_hash is not None:
            try:
                with self.change(item.record, UPDATE):
                    rules.before_write(item)
                    answer = rules.update_known(item, uuid)
            except APIError as exc:
                if not is_missing(exc):
                    raise
                rules.gone(item)
                return None
            return rules.updated, rules.uuid_of(answer) or uuid
        if held is None:
            held = rules.read(item)
        if held is None:
            rules.gone(item)
            return None
        return self.bring_in_line(item, held)

    def bring_in_line(self, item: Item[P], held: Obj) -> tuple[str, str | None]:
        """Write what ChartMogul holds differently; unchanged when nothing differs."""
        rules = self.rules
        uuid = rules.uuid_of(held)
        changes = rules.changes(item, held)
        if not changes:
            return UNCHANGED, uuid
        if rules.kept(item, changes):
            return KEPT, uuid
        with self.change(item.record, UPDATE, changes):
            rules.before_write(item)
            answer = rules.update(item, held, changes)
        return rules.updated, rules.uuid_of(answer) or uuid

    def create(self, item: Item[P]) -> tuple[str, str | None]:
        """POST it; "it exists" is looked up and compared (or, answering a retry of our own create, created)."""
        rules = self.rules
        if rules.kept(item, None):
            return KEPT, None
        try:
            with self.change(item.record, CREATE):
                rules.before_write(item)
                response = rules.create(item)
        except APIError as exc:
            if not rules.is_duplicate(exc, item):
                rules.refused(item, exc)
            ours = exc.attempts > 1  # our own earlier attempt saved it; its answer was lost
            if ours and not rules.ids_lost_creates:
                return CREATED, None
            held = rules.look_up(item)
            if held is None:
                if self.resource.duplicate is None:
                    raise  # a refusal of its own: no such object exists
                msg = (f"ChartMogul says {self.resource.kind} {item.key[1]!r} exists but no such "
                       f"{self.resource.kind} was found")
                raise RecordRejected(msg, field="external_id", status=exc.status) from None
            if ours:
                return CREATED, rules.uuid_of(held)
            if rules.insert_only:
                return PRESENT, rules.uuid_of(held)
            return self.bring_in_line(item, held)
        rules.created(item, response)
        return CREATED, rules.uuid_of(response.body if isinstance(response.body, dict) else None)

    def landed(self, pairs: list[tuple[Record, Obj | None]]) -> None:
        """Records a bulk import reported imported, with ChartMogul's listed copy: what differs is written, each is
        remembered and counted `imported`. Those ChartMogul holds as sent (nearly all) are settled here, without a
        worker thread each; the others (and any that fails to map) go the concurrent way, which writes or refuses.
        """
        rules = self.rules
        others: list[tuple[Record, Obj | None]] = []
        for record, held in pairs:
            try:
                item = None if held is None else self._landed_item(record)
                if item is None or held is None or rules.changes(item, held):
                    others.append((record, held))
                    continue
            except Exception:  # refused (or a bug) on the concurrent way, which says why
                others.append((record, held))
                continue
            rules.remember(item, item.fingerprint, rules.uuid_of(held))
            self.sink.count(IMPORTED)
        self.sink.run_each(others, lambda pair: self.landed_one(*pair), records_of=lambda pair: [pair[0]])

    def _landed_item(self, record: Record) -> Item[P]:
        rules = self.rules
        payload = rules.map(record)
        return Item(record, payload, rules.key(payload), rules.fingerprint(payload), rules.record_hash(record))

    def landed_one(self, record: Record, held: Obj | None) -> str:
        """One imported record, brought in line with what ChartMogul holds."""
        rules = self.rules
        item = self._landed_item(record)
        if held is None:
            msg = (f"ChartMogul's bulk import reported it imported, but the data source has no {self.resource.kind} "
                   "with this external_id")
            raise RecordRejected(msg, field="external_id")
        _, uuid = self.bring_in_line(item, held)
        rules.remember(item, item.fingerprint, uuid)
        return IMPORTED

    # Shared steps (the invoice writer uses them too) ------------------------------------------
    def held(self, key: Key, uuid: str) -> Obj | None:
        """ChartMogul's copy by the id the memory keeps; None when it is gone (the memory and this run forget it)."""
        held = get_or_none(self.client, self.rules.kind, uuid)
        if held is None:
            self.sink.context.refs.forget(self.rules.kind, *key, gone=True)
        return held

    def look_up(self, key: Key) -> Obj | None:
        """The object as ChartMogul holds it now, found by external id (never an earlier listing)."""
        return self.sink.context.refs.held(self.rules.kind, *key, fresh=True)

    def duplicate(self, message: t.Any) -> bool:
        """Whether an error message is ChartMogul's refusal of a used external id for this kind (the table's)."""
        expected = self.resource.duplicate
        return expected is not None and isinstance(message, str) and expected.casefold() in message.casefold()

    def delete_held(self, record: Record, key: Key, uuid: str) -> str:
        """DELETE the object by its id (gone already is fine); the memory and this run forget it."""
        with self.change(record, DELETE):
            self.rules.delete(key, uuid)
        self.sink.context.refs.forget(self.rules.kind, *key, gone=True)
        return DELETED

    # Deleting ----------------------------------------------------------------------------------
    def delete(self, keys: list[Key], records: list[Record]) -> None:
        """Delete the objects of these rows concurrently; a refusal lands on its row."""
        known = self.sink.memory_lookup(keys)
        self.sink.run_each(list(zip(records, keys, strict=True)),
                           lambda pair: self.delete_one(pair[1], pair[0], known.get(pair[1])),
                           records_of=lambda pair: [pair[0]])

    def delete_one(self, key: Key, record: Record, entry: Entry | None) -> str | None:
        """Delete one object by the id the memory keeps, else the one ChartMogul's copy shows."""
        rules = self.rules
        uuid = entry.uuid if entry is not None and entry.uuid else rules.to_delete(key, record, entry)
        if uuid is None:
            return SKIPPED if rules.not_to_delete(key, entry) else UNCHANGED
        return self.delete_held(record, key, uuid)


def rules_class(object_name: str) -> type[Rules[t.Any]]:
    """The rules an object's registry line names."""
    path = rules_path(BY_NAME[object_name])
    if path is None:
        msg = f"object {object_name!r} has no lifecycle rules in the registry"
        raise ValueError(msg)
    return t.cast("type[Rules[t.Any]]", getattr(importlib.import_module(path[0]), path[1]))


class ObjectSink(ChartMogulSink):
    """The sink of every object whose writes follow the lifecycle: the rules come from its registry line."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        self.object_name = str(self.context.stream(stream_name).object)
        super().__init__(target, stream_name, schema, key_properties)
        self.rules: Rules[t.Any] = rules_class(self.object_name)(self)
        self.lifecycle: Lifecycle[t.Any] = Lifecycle(self, self.rules)

    def dedupe_key(self, record: Record) -> t.Hashable:
        """The rules' key (customers by email), else one object per data source and external id."""
        key = self.rules.dedupe_key(record)
        return key if key is not None else super().dedupe_key(record)

    def process_record(self, record: Record, context: dict[str, t.Any]) -> None:
        """Stage the record; the rules may note its arrival."""
        super().process_record(record, context)
        self.rules.arrived(record)

    @property
    def bulk_writer(self) -> BulkWriter | None:
        """The rules' bulk adapter (customers, subscription events)."""
        return self.rules.bulk

    def landed(self, records: list[tuple[Record, Obj | None]]) -> None:
        """Records a bulk import reported imported (`bulk.writers.Side`)."""
        self.lifecycle.landed(records)

    def write_records(self, records: list[Record]) -> None:
        """Deleted rows are deleted; the others go through the lifecycle."""
        self.lifecycle.write(self.split_deletions(records))

    def delete_rows(self, keys: list[Key], records: list[Record]) -> None:
        """Delete through the lifecycle (a 404 means gone already)."""
        self.lifecycle.delete(keys, records)
