"""Event records to payloads: what each of the ten types needs is checked before any call, naming the field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.subscription_events import (
    EVENT_TYPES,
    PRICED,
    delete_query,
    known_event_id,
    map_event,
)
from tests.contract.recordings import load

DS = "ds_1"
START = {
    "external_id": "ev-1",
    "customer_external_id": "acct-1",
    "subscription_external_id": "sub-1",
    "event_type": "subscription_start",
    "event_date": "2024-01-01T10:00:00+02:00",
    "effective_date": "2024-01-02",
    "plan_external_id": "pl-basic",
    "currency": "eur",
    "amount_in_cents": Decimal("9990.00"),
    "quantity": 2,
}
CANCEL = {key: START[key] for key in ("external_id", "customer_external_id", "subscription_external_id",
                                      "event_date", "effective_date")} | {"event_type": "subscription_cancelled"}


def refusal(record: dict, **kwargs) -> tuple[str | None, str]:
    with pytest.raises(RecordRejected) as caught:
        map_event(record, DS, amount_unit=kwargs.get("unit", "cents"))
    return caught.value.field, caught.value.reason


def test_a_start_maps_every_field_to_what_chartmogul_takes():
    payload = map_event({**START, "tax_amount_in_cents": 190, "event_order": 3}, DS, amount_unit="cents")

    assert payload.key == (DS, "ev-1")
    assert payload.create_body() == {"subscription_event": {
        "data_source_uuid": DS, "external_id": "ev-1", "customer_external_id": "acct-1",
        "subscription_external_id": "sub-1", "plan_external_id": "pl-basic", "event_type": "subscription_start",
        "event_date": "2024-01-01T08:00:00Z", "effective_date": "2024-01-02T00:00:00Z", "currency": "EUR",
        "amount_in_cents": 9990, "tax_amount_in_cents": 190, "quantity": 2, "event_order": 3}}


def test_a_cancellation_needs_no_price_and_sends_none():
    payload = map_event(CANCEL, DS, amount_unit="cents")

    body = payload.create_body()["subscription_event"]
    assert body["event_type"] == "subscription_cancelled"
    assert not {"plan_external_id", "currency", "amount_in_cents", "quantity"} & set(body)
    assert payload.fields["quantity"] is None  # unset fields stay in the payload as None (a full update clears them)


@pytest.mark.parametrize("event_type", sorted(PRICED))
@pytest.mark.parametrize("missing", ["plan_external_id", "currency", "amount_in_cents", "quantity"])
def test_a_start_or_update_without_its_price_is_refused_naming_the_field(event_type, missing):
    record = {**START, "event_type": event_type, missing: None}

    assert refusal(record) == (missing, f"field '{missing}' is required for a {event_type} event")


def test_a_retraction_needs_the_event_it_retracts():
    record = {**CANCEL, "event_type": "subscription_event_retracted"}

    assert refusal(record) == ("retracted_event_id", "field 'retracted_event_id' is required for a "
                                                     "subscription_event_retracted event")
    assert map_event({**record, "retracted_event_id": "138979488"}, DS, amount_unit="cents").fields[
        "retracted_event_id"] == 138979488


@pytest.mark.parametrize("event_type", [t for t in EVENT_TYPES if t not in PRICED and t != "subscription_event_retracted"])
def test_cancellations_and_retractions_of_scheduled_events_need_only_the_common_fields(event_type):
    assert map_event({**CANCEL, "event_type": event_type}, DS, amount_unit="cents").fields["event_type"] == event_type


def test_an_unknown_event_type_is_refused_naming_the_field():
    field, reason = refusal({**START, "event_type": "subscription_paused"})

    assert field == "event_type"
    assert reason.startswith("field 'event_type' must be one of scheduled_subscription_cancellation_retracted, ")
    assert reason.endswith("; got 'subscription_paused'")


@pytest.mark.parametrize("missing", ["customer_external_id", "subscription_external_id", "event_date", "effective_date",
                                     "event_type"])
def test_the_common_fields_are_required(missing):
    assert refusal({**START, missing: None}) == (missing, f"field '{missing}' is required")


def test_without_an_external_id_a_replay_would_double_the_event():
    assert refusal({**START, "external_id": " "}) == (
        "external_id", "field 'external_id' is required (without it a replayed event would be doubled)")


def test_amounts_in_units_become_exact_cents_and_a_third_decimal_is_refused():
    record = {**START, "amount_in_cents": None, "amount": Decimal("99.90"), "tax_amount": Decimal("18.98")}
    payload = map_event(record, DS, amount_unit="units")
    assert (payload.fields["amount_in_cents"], payload.fields["tax_amount_in_cents"]) == (9990, 1898)

    yen = map_event({**START, "currency": "JPY", "amount_in_cents": Decimal("1200")}, DS, amount_unit="units")
    assert yen.fields["amount_in_cents"] == 1200  # zero-decimal: stays whole

    assert refusal({**START, "amount_in_cents": Decimal("99.905")}, unit="units") == (
        "amount_in_cents", "field 'amount_in_cents' has more decimals than EUR amounts have (at most 2 decimals), "
        "got 99.905; never rounded")


def test_a_fraction_of_a_cent_is_refused_never_rounded():
    assert refusal({**START, "amount_in_cents": Decimal("12.5")}) == (
        "amount_in_cents", "field 'amount_in_cents' must be a whole number of cents, got 12.5")


def test_a_change_names_the_event_by_its_id_as_recorded_and_by_external_id_only_without_one():
    payload = map_event(CANCEL, DS, amount_unit="cents")
    recorded = load("subscription_event_update").find("PATCH", "^/subscription_events$").request_body

    by_id = payload.envelope({"quantity": 3}, known_event_id("138979498"))
    assert by_id == {"subscription_event": {"id": 138979498, "quantity": 3}}
    assert set(by_id["subscription_event"]) - {"quantity"} == set(recorded["subscription_event"]) - {"external_id"}
    assert payload.envelope({"quantity": 3}, None) == {"subscription_event": {
        "data_source_uuid": DS, "external_id": "ev-1", "quantity": 3}}


def test_a_delete_names_the_event_in_the_query_as_recorded():
    recorded = load("subscription_event_delete").find("DELETE", "^/subscription_events$")
    event_id = known_event_id(recorded.query["subscription_event[id]"])

    assert event_id is not None and delete_query(event_id) == recorded.query
    assert recorded.request_body is None


@pytest.mark.parametrize(("value", "expected"), [(138979498, 138979498), ("374277746", 374277746), (" 7 ", 7),
                                                 (None, None), ("", None), ("dryrun_1", None), (True, None)])
def test_only_a_whole_number_is_an_event_id(value, expected):
    assert known_event_id(value) == expected
