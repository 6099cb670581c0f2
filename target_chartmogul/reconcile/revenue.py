"""Revenue per month of invoice date and per currency: the sum of line-item amounts, in the source and in ChartMogul.

A month (UTC) of one currency differs when the two sums differ; each such month is one
`revenue` finding (`"2025-03 EUR"`, both sums in cents). ChartMogul's side counts every invoice
it holds in the data source when the invoices stream is a complete full-table version, and
otherwise only the invoices the input has (an incremental input says nothing of the others).
"""

from __future__ import annotations

import collections
import dataclasses
import typing as t

from target_chartmogul.reconcile.findings import REVENUE, Finding
from target_chartmogul.values import dates
from target_chartmogul.values.numbers import integer

Obj = t.Mapping[str, t.Any]
Month = tuple[str, str]  # ("2025-03", "EUR")


@dataclasses.dataclass(frozen=True)
class MonthTotals:
    """One month of one currency: both sums in cents."""

    month: str
    currency: str
    source: int
    chartmogul: int

    @property
    def key(self) -> str:
        """The finding's key: `2025-03 EUR`."""
        return f"{self.month} {self.currency}"

    @property
    def differs(self) -> bool:
        """Whether the two sums differ."""
        return self.source != self.chartmogul


def month_of(invoice: Obj) -> Month:
    """The (UTC month, currency) an invoice's revenue counts in."""
    moment = dates.parse(invoice["date"], "date")
    return (f"{moment.year:04d}-{moment.month:02d}", str(invoice["currency"]).upper())


def line_total(invoice: Obj) -> int:
    """The sum of an invoice's line-item amounts in cents (a credit line counts negative; an unset amount as 0)."""
    return sum(integer(line.get("amount_in_cents") or 0, "amount_in_cents") for line in invoice.get("line_items") or [])


class Revenue:
    """The sums of both sides, added invoice by invoice."""

    def __init__(self) -> None:
        self.source: collections.Counter[Month] = collections.Counter()
        self.chartmogul: collections.Counter[Month] = collections.Counter()
        self.invoices = collections.Counter[str]()

    def add_source(self, invoice: Obj) -> None:
        """An invoice of the input, as a write would send it."""
        self.source[month_of(invoice)] += line_total(invoice)
        self.invoices["source"] += 1

    def add_chartmogul(self, invoice: Obj) -> None:
        """An invoice as ChartMogul lists it."""
        self.chartmogul[month_of(invoice)] += line_total(invoice)
        self.invoices["chartmogul"] += 1

    def months(self) -> list[MonthTotals]:
        """Every month either side has, by currency, then month."""
        keys = sorted(set(self.source) | set(self.chartmogul), key=lambda key: (key[1], key[0]))
        return [MonthTotals(month, currency, self.source[(month, currency)], self.chartmogul[(month, currency)])
                for month, currency in keys]

    def findings(self) -> list[Finding]:
        """One `revenue` finding per month whose sums differ."""
        return [Finding(REVENUE, month.key, "different", "amount_in_cents", month.source, month.chartmogul)
                for month in self.months() if month.differs]
