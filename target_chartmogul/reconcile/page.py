"""The reconcile report as one self-contained HTML page: the monthly revenue of both sides as a chart, and the
differences as a table.

Self-contained means it opens anywhere without a network: CSS inline, the chart inline SVG (no
`xmlns` address needed in HTML), no script, no font, no image, no link. Every value from the
source or from ChartMogul is escaped (`html.escape`), so a customer named `<b>` stays text.
"""

from __future__ import annotations

import decimal
import html
import typing as t

from target_chartmogul.reconcile.findings import REVENUE, Finding, Findings
from target_chartmogul.reconcile.report import COLUMNS, summary_rows
from target_chartmogul.values.encoding import dumps
from target_chartmogul.values.numbers import minor_digits

if t.TYPE_CHECKING:
    from target_chartmogul.reconcile.revenue import MonthTotals, Revenue

SOURCE_COLOUR, CHARTMOGUL_COLOUR, DIFFERS_COLOUR = "#3b5bdb", "#f08c00", "#e03131"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #212529; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.verdict { font-size: 1.1rem; font-weight: 600; padding: .6rem 1rem; border-radius: 6px; display: inline-block; }
.agree { background: #d3f9d8; } .differ { background: #ffe3e3; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #dee2e6; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f1f3f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
td code { white-space: pre-wrap; word-break: break-word; font-size: .85rem; }
tr.differs td { background: #fff5f5; }
table.differences td:nth-child(2) { white-space: nowrap; }
table.differences td:nth-child(5), table.differences td:nth-child(6) { width: 32%; }
.legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .3rem 0 1rem; vertical-align: middle; }
svg text { font-size: 11px; fill: #495057; }
"""


def e(value: t.Any) -> str:
    """Escaped text of any value (quotes too: it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def shown(value: t.Any) -> str:
    """A finding's value as a person reads it: text as is, anything else as JSON (null for nothing)."""
    return value if isinstance(value, str) else dumps(value)


def amount(cents: int, currency: str) -> str:
    """Cents as currency units (`1,234.50 EUR`; JPY stays whole)."""
    digits = minor_digits(currency)
    units = decimal.Decimal(cents).scaleb(-digits)
    return f"{units:,.{digits}f} {currency}"


def chart(currency: str, months: list[MonthTotals]) -> str:
    """Grouped bars per month, the source's and ChartMogul's; a month whose sums differ is shaded and marked."""
    left, top, height, group, bar = 110, 16, 200, 96, 28
    width = left + group * len(months) + 16
    values = [v for m in months for v in (m.source, m.chartmogul)]
    high, low = max(0, *values), min(0, *values)
    span = (high - low) or 1

    def y(value: int) -> float:
        return top + (high - value) / span * height

    parts = [f'<svg role="img" aria-label="Monthly revenue in {e(currency)}" width="{width}" height="{top + height + 34}" '
             f'viewBox="0 0 {width} {top + height + 34}">']
    for value in sorted({high, low, 0}):
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#ced4da"/>'
                     f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{e(amount(value, currency))}</text>')
    for index, month in enumerate(months):
        x = left + index * group
        if month.differs:
            parts.append(f'<rect x="{x + 2}" y="{top}" width="{group - 4}" height="{height}" fill="#fff0f0"/>')
        for offset, (who, value, colour) in enumerate((("source", month.source, SOURCE_COLOUR),
                                                      ("ChartMogul", month.chartmogul, CHARTMOGUL_COLOUR))):
            y0, y1 = sorted((y(0), y(value)))
            parts.append(f'<rect x="{x + 18 + offset * (bar + 4)}" y="{y0:.1f}" width="{bar}" height="{max(y1 - y0, 1):.1f}" '
                         f'fill="{colour}"><title>{e(month.key)} {who}: {e(amount(value, currency))}</title></rect>')
        label_colour = DIFFERS_COLOUR if month.differs else "#495057"
        mark = " \u2260" if month.differs else ""
        parts.append(f'<text x="{x + group / 2:.1f}" y="{top + height + 16}" text-anchor="middle" '
                     f'style="fill:{label_colour}">{e(month.month)}{mark}</text>')
    parts.append("</svg>")
    return "".join(parts)


def revenue_section(revenue: Revenue) -> str:
    """Per currency: the chart, then the months as a table."""
    months = revenue.months()
    if not months:
        return "<p>No invoices in the input: no revenue to compare.</p>"
    legend = (f'<p class="legend"><span style="background:{SOURCE_COLOUR}"></span>source'
              f'<span style="background:{CHARTMOGUL_COLOUR}"></span>ChartMogul'
              f'<span style="background:#fff0f0"></span>a month whose sums differ (\u2260)</p>'
              "<p>Sum of the line-item amounts of the invoices dated in each month (UTC), per currency.</p>")
    out = [legend]
    for currency in sorted({m.currency for m in months}):
        mine = [m for m in months if m.currency == currency]
        out.append(f"<h3>{e(currency)}</h3>{chart(currency, mine)}")
        rows = "".join(f'<tr class="{"differs" if m.differs else ""}"><td>{e(m.month)}</td>'
                       f'<td class="n">{e(amount(m.source, currency))}</td><td class="n">{e(amount(m.chartmogul, currency))}</td>'
                       f'<td class="n">{e(amount(m.chartmogul - m.source, currency))}</td></tr>' for m in mine)
        out.append(f"<table><tr><th>month</th><th>source</th><th>ChartMogul</th><th>ChartMogul \u2212 source</th></tr>"
                   f"{rows}</table>")
    return "".join(out)


def differences_section(findings: t.Sequence[Finding]) -> str:
    """Every finding as a table row (values escaped)."""
    if not findings:
        return "<p>None: ChartMogul holds what the source says.</p>"
    head = "".join(f"<th>{name}</th>" for name in ("object", "key", "kind", "field", "source", "ChartMogul"))
    rows = "".join(
        f"<tr><td>{e(f.object)}</td><td>{e(f.key)}</td><td>{e(f.kind)}</td><td>{e(f.field or '')}</td>"
        f"<td><code>{e(shown(f.source))}</code></td><td><code>{e(shown(f.chartmogul))}</code></td></tr>"
        for f in findings)
    return f'<table class="differences"><tr>{head}</tr>{rows}</table>'


def render(findings: Findings, ordered: t.Sequence[Finding], revenue: Revenue, *, generated: str) -> str:
    """The whole page."""
    count = len(ordered)
    verdict = ('<p class="verdict agree">The source and ChartMogul agree.</p>' if not count else
               f'<p class="verdict differ">{count} difference(s), {sum(f.object == REVENUE for f in ordered)} of them '
               f"revenue month(s).</p>")
    summary = "".join("<tr>" + "".join(f'<td class="{"n" if i else ""}">{e(cell)}</td>' for i, cell in enumerate(row))
                      + "</tr>" for row in summary_rows(findings))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>target-chartmogul reconcile</title><style>{STYLE}</style></head><body>"
        f"<h1>Does ChartMogul hold what the source says?</h1>{verdict}<p>Reconciled {e(generated)} by "
        "target-chartmogul: nothing was written.</p>"
        f"<h2>Per object</h2><table><tr>{''.join(f'<th>{e(c)}</th>' for c in COLUMNS)}</tr>{summary}</table>"
        f"<h2>Monthly revenue</h2>{revenue_section(revenue)}"
        f"<h2>Differences</h2>{differences_section(ordered)}</body></html>\n"
    )
