"""The reconcile HTML page: one self-contained file (no network, every value escaped) that a headless browser
renders, and the revenue months it charts.
"""

from __future__ import annotations

import pathlib

import pytest

from target_chartmogul.reconcile import page
from target_chartmogul.reconcile.findings import Finding, Findings
from target_chartmogul.reconcile.revenue import Revenue, month_of
from tests.page_checks import CHROMIUM, external_references, render_offline

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def sample() -> tuple[Findings, list[Finding], Revenue]:
    """Findings with hostile and non-ASCII text, and revenue in EUR (a credit month below zero) and JPY."""
    findings = Findings()
    found = [
        Finding("customers", "acct-<1>", "different", "name", HOSTILE, "Müller AG"),
        Finding("customers", "acct-2", "different", "custom.notes", {"note": "</td></tr><tr><td>"}, None),
        Finding("invoices", "inv-2", "missing", None, {"external_id": "inv-2", "line_items": [{"amount_in_cents": 9990}]}),
        Finding("revenue", "2025-02 EUR", "different", "amount_in_cents", 9990, 0),
    ]
    findings.extend(found)
    revenue = Revenue()
    for date, currency, amounts in (("2025-01-31T23:30:00Z", "EUR", [9990, -2500]), ("2025-02-05T00:00:00Z", "EUR", [9990]),
                                    ("2025-03-20T00:00:00+09:00", "JPY", [12000]), ("2025-04-01T00:00:00Z", "EUR", [-500])):
        revenue.add_source({"date": date, "currency": currency, "line_items": [{"amount_in_cents": a} for a in amounts]})
    revenue.add_chartmogul({"date": "2025-01-31T23:30:00.000Z", "currency": "EUR", "line_items": [{"amount_in_cents": 7490}]})
    revenue.add_chartmogul({"date": "2025-03-19T15:00:00.000Z", "currency": "jpy", "line_items": [{"amount_in_cents": 12000}]})
    return findings, found, revenue


def test_every_value_is_escaped_and_the_page_reaches_nothing():
    findings, ordered, revenue = sample()

    text = page.render(findings, ordered, revenue, generated="2026-12-07 10:00 UTC")

    assert external_references(text) == []
    assert "<script" not in text and "<img" not in text
    assert text.split("<h2>Differences</h2>", 1)[1].count("<tr>") == 1 + 4  # a value cannot open a row of its own
    assert ("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in text)
    assert "<td>acct-&lt;1&gt;</td>" in text
    assert "{&quot;note&quot;: &quot;&lt;/td&gt;&lt;/tr&gt;&lt;tr&gt;&lt;td&gt;&quot;}" in text
    assert "<code>Müller AG</code>" in text and '<meta charset="utf-8">' in text


def test_revenue_months_are_utc_months_per_currency():
    findings, ordered, revenue = sample()

    assert month_of({"date": "2025-03-01T00:30:00+01:00", "currency": "eur"}) == ("2025-02", "EUR")
    assert [(m.key, m.source, m.chartmogul) for m in revenue.months()] == [
        ("2025-01 EUR", 7490, 7490), ("2025-02 EUR", 9990, 0), ("2025-04 EUR", -500, 0), ("2025-03 JPY", 12000, 12000)]
    assert [(f.key, f.source, f.chartmogul) for f in revenue.findings()] == [("2025-02 EUR", 9990, 0),
                                                                             ("2025-04 EUR", -500, 0)]
    text = page.render(findings, ordered, revenue, generated="now")
    assert '<td class="n">-5.00 EUR</td>' in text and '<td class="n">12,000 JPY</td>' in text
    assert text.count("<svg ") == 2 and text.count("\u2260</text>") == 2  # EUR's two differing months marked


@pytest.mark.parametrize("markup", [
    '<img src="x.png">', '<link rel="stylesheet" href="s.css">', '<script>1</script>', '<p style="background:url(a)">',
    "<style>@import 'x.css';</style>", '<a href="#top">top</a>', "<p>see http://example.test</p>",
    '<meta http-equiv="refresh" content="0">', '<svg><use href="#a"/></svg>',
])
def test_the_self_containedness_check_sees_each_way_out(markup):
    assert external_references(f"<!DOCTYPE html><html><body>{markup}</body></html>") != []


@pytest.mark.subprocess  # a browser is a process of its own
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh installs it)")
def test_a_headless_browser_renders_the_page_without_touching_the_network(tmp_path):
    """The page opened in Chromium behind a recording proxy: it makes no request (a page with one external image,
    rendered the same way, makes that request: the check can fail), and the screenshot is a PNG."""
    findings, ordered, revenue = sample()
    report = tmp_path / "reconcile.html"
    report.write_text(page.render(findings, ordered, revenue, generated="now"), encoding="utf-8")
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><html><body><img src="http://images.example.test/logo.png"></body></html>')

    seen = render_offline(report, tmp_path / "reconcile.png", tmp_path / "profile-1")
    seen_leaky = render_offline(leaky, tmp_path / "leaky.png", tmp_path / "profile-2")

    assert seen == []
    assert seen_leaky == ["GET http://images.example.test/logo.png HTTP/1.1"]
    assert pathlib.Path(tmp_path / "reconcile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
