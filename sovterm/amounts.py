"""Bitcoin amounts as text: whole satoshis or plain decimals, never scientific notation.

`str(Decimal("0.00000001"))` is `"1E-8"` and `str(Decimal("0.00000000"))` is `"0E-8"`: Python switches
to scientific notation below a millionth. A bookkeeper reading a memo, a CLI line or the JSON of the
control API must see `0.00000001`, so every BTC amount that becomes text goes through here. Text that
was stored as `1E-8` before still reads back (`Decimal("1E-8")` parses it).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

SATS_PER_BTC = 100_000_000
MSATS_PER_SAT = 1_000


def plain(value: Decimal) -> str:
    """The decimal in positional notation, with exactly the digits it holds: 1E-8 → '0.00000001'."""
    return format(value, "f")


def sats_to_btc(sats: int) -> str:
    """Whole satoshis as BTC with all eight decimals, exactly (integer arithmetic): 1 → '0.00000001'."""
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(sats), SATS_PER_BTC)
    return f"{sign}{whole}.{frac:08d}"


def msats_to_sats(msats: int) -> int:
    """Lightning millisatoshis as whole satoshis, rounded half-even (a wallet holds whole sats)."""
    return int((Decimal(msats) / MSATS_PER_SAT).to_integral_value(ROUND_HALF_EVEN))
