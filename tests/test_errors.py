"""Every ChartMogul error-body shape is understood (chartmogul-api.md §9)."""

from __future__ import annotations

import json

import pytest

from target_chartmogul.api.errors import APIError, is_already_exists, parse_error_body


@pytest.mark.parametrize(
    ("status", "body", "message", "fields"),
    [
        (401, {"code": 401, "message": "No valid API key provided", "param": None}, "No valid API key provided", {}),
        (400, {"code": 400, "message": 'Parameter "name" is missing', "param": "name"}, 'Parameter "name" is missing',
         {"name": 'Parameter "name" is missing'}),
        (422, {"errors": {"external_id": "The external ID for this customer already exists in our system."}},
         "external_id: The external ID for this customer already exists in our system.",
         {"external_id": "The external ID for this customer already exists in our system."}),
        (422, {"name": ["Name can't be blank"], "plan_ids": ["Plan ids can't be blank"],
               "error_details": [{"param": "name", "code": "blank", "message": "Name can't be blank"}]},
         "name: Name can't be blank; plan_ids: Plan ids can't be blank",
         {"name": "Name can't be blank", "plan_ids": "Plan ids can't be blank"}),
        (404, {"error": "Invoice not found"}, "Invoice not found", {}),
        (404, {"error": "Invoice not found", "error_details": [{"param": "invoice", "code": "invalid",
                                                              "message": "Invoice not found"}]},
         "Invoice not found", {"invoice": "Invoice not found"}),
        (422, {"message": "Status transition is not allowed"}, "Status transition is not allowed", {}),
        (422, {"invoices": [{"external_id": "a", "errors": {}},
                            {"external_id": "b", "errors": {"currency": ["is invalid"]}}]},
         "currency: is invalid", {"currency": "is invalid"}),
    ],
)
def test_json_error_shapes(status, body, message, fields):
    parsed_message, parsed_fields, parsed_body = parse_error_body(status, json.dumps(body))
    assert parsed_message == message
    assert parsed_fields == fields
    assert parsed_body == body


@pytest.mark.parametrize("text", ["500 Internal Server Error", "504 Gateway Timeout Error"])
def test_plain_text_5xx_bodies(text):
    message, fields, body = parse_error_body(500, text)
    assert (message, fields, body) == (text, {}, None)


def test_empty_body_names_the_status():
    assert parse_error_body(502, "")[0] == "HTTP 502"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"external_id": "The external ID for this customer already exists in our system."}, True),
        ({"external_id": "The external ID for this invoice already exists in our system."}, True),
        ({"transactions.external_id": "has already been taken"}, True),
        ({"external_id": "A plan with this identifier already exists in our system."}, True),
        ({"country": "Country is invalid"}, False),
    ],
)
def test_duplicate_messages_are_recognised(fields, expected):
    error = APIError(422, "; ".join(fields.values()), fields=fields)
    assert is_already_exists(error) is expected
