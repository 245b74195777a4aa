"""The lines of a sale document: what was sold (BTCPay's Point-of-Sale cart, or `itemCode`/`itemDesc`), how
much of the price was sales tax (`taxIncluded`), and a rounding/adjustment line so the document's total is
always what was received. Pure functions; `sync.items` looks the QuickBooks items up, `sync.documents`
puts the lines into a SalesReceipt (docs/accounting.md, "Items" and "Sales tax").

The metadata shape is BTCPay's (read in its source, never copied): the PoS app writes `posData` =
`PosAppData` (`cart[]` of `{id, title, price, count}` where `price` may be a number, a string or
`{"value": …}`; `amounts[]` custom amounts; `discountAmount`, `tip`, `subTotal`, `tax`, `total`), `itemCode`
/`itemDesc` when the cart holds one item, `taxIncluded` (the items' tax) and `taxOnTip`
(`BTCPayServer/Plugins/PointOfSale/Controllers/UIPointOfSaleController.cs`,
`BTCPayServer/Services/Invoices/PosAppData.cs`, `PoSOrder.cs`). Older BTCPay stored `posData` as a JSON
string; both are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

CENT = Decimal("0.01")
TaxKind = Literal["none", "us", "inclusive"]
#: codes of the lines that are no BTCPay item: they post to the store's default item
SALE, CUSTOM, DISCOUNT, TIP, ADJUSTMENT = "@sale", "@custom", "@discount", "@tip", "@adjustment"


def _money(value: Any) -> Decimal | None:
    """A BTCPay amount (number, string, or `{"value": …}` as PosAppCartItemPriceJsonConverter reads it)."""
    if isinstance(value, dict):
        value = value.get("value")
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class SoldLine:
    code: str  # BTCPay item id (cart) or itemCode; a CUSTOM/DISCOUNT/… code for the rest
    title: str
    qty: int
    unit_price: Decimal | None  # None: the invoice's price (`itemCode` alone names no price)

    @property
    def amount(self) -> Decimal:
        return _cents((self.unit_price or Decimal(0)) * self.qty)


@dataclass(frozen=True)
class SaleDetail:
    """What a BTCPay invoice says was sold, and the tax inside its price."""

    lines: tuple[SoldLine, ...] = ()
    tax: Decimal = Decimal(0)  # taxIncluded + taxOnTip: part of the price that is sales tax

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(line.code for line in self.lines if not line.code.startswith("@")))


def pos_data(metadata: dict[str, Any]) -> dict[str, Any]:
    raw = metadata.get("posData")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def sale_detail(metadata: dict[str, Any]) -> SaleDetail:
    """The cart (or the one item) and the tax of an invoice's metadata; empty when it names nothing."""
    tax = sum((t for t in (_money(metadata.get("taxIncluded")), _money(metadata.get("taxOnTip")))
               if t is not None and t > 0), Decimal(0))
    data = pos_data(metadata)
    lines: list[SoldLine] = []
    for entry in data.get("cart") or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        price = _money(entry.get("price"))
        try:
            count = max(1, int(entry.get("count") or 1))
        except (TypeError, ValueError):
            count = 1
        if price is None or price < 0:
            continue
        lines.append(SoldLine(str(entry["id"])[:100], str(entry.get("title") or entry["id"])[:100], count, price))
    for n, value in enumerate(data.get("amounts") or [], start=1):
        amount = _money(value)
        if amount is not None and amount > 0:
            lines.append(SoldLine(CUSTOM, f"Custom Amount {n}", 1, amount))
    custom = _money(data.get("customAmount"))
    if custom is not None and custom > 0:
        lines.append(SoldLine(CUSTOM, "Custom amount", 1, custom))
    if lines:
        discount = _money(data.get("discountAmount"))
        if discount is not None and discount > 0:
            lines.append(SoldLine(DISCOUNT, "Discount", 1, -discount))
        tip = _money(data.get("tip"))
        if tip is not None and tip > 0:
            lines.append(SoldLine(TIP, "Tip", 1, tip))
    elif metadata.get("itemCode") or metadata.get("itemDesc"):
        code = str(metadata.get("itemCode") or metadata.get("itemDesc"))[:100]
        lines.append(SoldLine(code, str(metadata.get("itemDesc") or code)[:100], 1, None))
    return SaleDetail(tuple(lines), _cents(tax))


@dataclass(frozen=True)
class DocLine:
    """One line of the document: `net` is revenue, `tax` its share of the sales tax."""

    code: str
    title: str
    qty: int
    unit_price: Decimal | None  # as sold: qty × unit_price is the line's amount as the customer saw it
    net: Decimal
    tax: Decimal = Decimal(0)

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def document_lines(detail: SaleDetail, total: Decimal, tax_kind: TaxKind,
                   price: Decimal | None = None) -> tuple[list[DocLine], Decimal]:
    """(lines, sales tax) of a sale document whose total must be `total`, what was received.

    The cart's lines keep their quantity and unit price as sold; whatever the cart does not explain
    (rounding, an over- or underpayment) goes on one adjustment line, so the lines always add up to `total`.
    Sales tax is split out, never revenue: each line's share of it is worked out in proportion to its amount
    (the largest line takes the cent left by rounding). Whether the listed prices held the tax (PoS "tax
    included in price") or it was added on top is read from the amounts: the lines' net is the listed amount
    less its share in the first case, the listed amount in the second. Less received than the `price` (a
    partial payment) carries the same part of the tax."""
    tax = detail.tax if tax_kind != "none" else Decimal(0)
    if price is not None and 0 < total < price:
        tax = _cents(tax * total / price)
    if tax >= total:
        tax = Decimal(0)
    named_price = min(price, total) if price else total  # `itemCode` alone: what of the price was paid
    sold = [s if s.unit_price is not None else SoldLine(s.code, s.title, 1, named_price) for s in detail.lines]
    if not sold:  # nothing named: one line for the sale on the store's sales item
        sold = [SoldLine(SALE, "", 1, None)]
        prices_hold_tax = True
        listed = [total]
    else:
        listed = [s.amount for s in sold]
        # judged against the invoice's price (what the cart was priced at), not an over- or underpayment
        against, full_tax = (price, detail.tax) if price else (total, tax)
        prices_hold_tax = (any(s.unit_price is None for s in detail.lines)  # the price itself: tax inside
                           or abs(sum(listed) - against) <= abs(sum(listed) + full_tax - against))
    wanted = total if prices_hold_tax else total - tax  # what the listed amounts should add up to
    rest = wanted - sum(listed, Decimal(0))
    shares = _shares(listed, tax)
    lines = [DocLine(s.code, s.title, s.qty, s.unit_price, amount - share if prices_hold_tax else amount, share)
             for s, amount, share in zip(sold, listed, shares, strict=True)]
    if rest != 0:
        on_top = "" if prices_hold_tax else f" plus {tax} tax"
        lines.append(DocLine(ADJUSTMENT, f"Rounding/adjustment: the cart adds up to {wanted - rest}{on_top}, "
                                         f"{total} was received", 1, rest, rest))
    return lines, tax


def _shares(amounts: list[Decimal], tax: Decimal) -> list[Decimal]:
    """The tax split over the amounts in proportion (the largest takes what rounding left)."""
    base = sum(amounts, Decimal(0))
    if tax == 0 or base == 0:
        return [Decimal(0)] * len(amounts)
    shares = [_cents(tax * amount / base) for amount in amounts]
    biggest = max(range(len(amounts)), key=lambda i: amounts[i])
    shares[biggest] += tax - sum(shares, Decimal(0))
    return shares


def refund_tax(sale_tax: Decimal, booked: Decimal, refunded_before: Decimal, tax_before: Decimal,
               refund: Decimal) -> Decimal:
    """The sales tax inside a refund of a taxed sale: the same part of the tax the sale documents split out
    (`sale_tax`) as the refund is of what the invoice booked (`booked`: its sales and the network fee the
    customer paid).

    Exact, in integer cents: the tax of everything refunded so far (`refunded_before` + `refund`) is
    `sale_tax × refunded / booked`, rounded half-even to the cent; this refund's tax is that less the tax the
    earlier refunds carried (`tax_before`). So refunds in any number of pieces give back exactly the tax of
    what they refund, and the whole sale refunded gives back exactly `sale_tax`, never a cent more (what is
    refunded beyond `booked` carries no tax). A refund keeps at least one cent of revenue on its line
    (QuickBooks takes no line of 0); a cent held back that way is given back by the next refund."""
    tax_c, booked_c, refund_c = _minor(sale_tax), _minor(booked), _minor(refund)
    if tax_c <= 0 or booked_c <= 0:
        return Decimal(0)
    q, r = divmod(tax_c * min(_minor(refunded_before) + refund_c, booked_c), booked_c)
    due = q + (1 if 2 * r > booked_c or (2 * r == booked_c and q % 2) else 0)
    return Decimal(max(0, min(due - _minor(tax_before), refund_c - 1))) / 100


def _minor(amount: Decimal) -> int:
    """A fiat amount in integer cents (amounts here are already to the cent)."""
    return int(_cents(amount) * 100)
