"""The authorisation link as a QR code in text, for an operator on an SSH terminal with a phone at hand."""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_L


def render_qr(url: str, *, max_width: int = 80) -> str | None:
    """Half-block text QR of `url` (light modules drawn, for dark terminals); None if wider than `max_width`."""
    code = qrcode.QRCode(border=2, error_correction=ERROR_CORRECT_L)
    code.add_data(url)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    text = out.getvalue()
    width = max(len(line) for line in text.splitlines())
    return text if width <= max_width else None
