"""A QR code as text for the terminal (pay links, the QuickBooks authorisation link).

The TUI may import only the control client from the daemon side, so it renders its own QR codes from the
URL the daemon returned. Two modules per character cell (upper/lower half blocks) keep a ~150-character
link at about 22 rows, which fits an 80x24 terminal in a scrolling dialog.
"""

from __future__ import annotations

import qrcode
from qrcode.constants import ERROR_CORRECT_L

# (top dark, bottom dark) -> cell. Dark modules are drawn as spaces and light ones as blocks, so the code
# reads as dark-on-light on a dark terminal; the light theme swaps colours through the widget's style.
_CELLS = {(False, False): "█", (True, False): "▄", (False, True): "▀", (True, True): " "}


def qr_lines(data: str, *, border: int = 2) -> list[str]:
    """Rows of text drawing the QR code of `data` with a light quiet zone of `border` modules."""
    code = qrcode.QRCode(border=border, error_correction=ERROR_CORRECT_L)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    return [
        "".join(_CELLS[(top, bottom)] for top, bottom in zip(matrix[row], matrix[row + 1], strict=True))
        for row in range(0, len(matrix), 2)
    ]


def qr_text(data: str, *, border: int = 2) -> str:
    return "\n".join(qr_lines(data, border=border))
