"""QR codes, made once and drawn two ways: a PNG to print (a pay link) and half-block text for a terminal
(a pay link in the CLI and the TUI, the QuickBooks authorisation link in `setup.qbo.start`).

A leaf module (the standard library and qrcode only): the TUI may import only the control client from the
daemon side, so it draws its codes here from the URL the daemon returned. The PNG is written here too,
so no imaging library is needed.
"""

from __future__ import annotations

import struct
import zlib

import qrcode
from qrcode.constants import ERROR_CORRECT_L, ERROR_CORRECT_M

# Paper gets smudged and is scanned from afar: medium error correction and the standard four-module quiet
# zone. A terminal is small: low correction and two modules keep a ~150-character link at about 22 rows.
PRINT = {"border": 4, "error_correction": ERROR_CORRECT_M}
SCREEN = {"border": 2, "error_correction": ERROR_CORRECT_L}

# (top dark, bottom dark) -> cell, two modules per character. Dark modules are drawn as spaces and light
# ones as blocks, so the code reads dark-on-light on a dark terminal (the TUI paints its box black).
_CELLS = {(False, False): "█", (True, False): "▄", (False, True): "▀", (True, True): " "}


def matrix(data: str, *, border: int, error_correction: int) -> list[list[bool]]:
    """The modules of the QR code of `data`, quiet zone included (True = dark)."""
    code = qrcode.QRCode(border=border, error_correction=error_correction)
    code.add_data(data)
    code.make(fit=True)
    return code.get_matrix()


def text_rows(data: str) -> list[str]:
    """Rows of half-block text drawing the QR code of `data`; a light half row pads an odd height."""
    modules = matrix(data, **SCREEN)
    if len(modules) % 2:
        modules.append([False] * len(modules[0]))
    return [
        "".join(_CELLS[(top, bottom)] for top, bottom in zip(modules[row], modules[row + 1], strict=True))
        for row in range(0, len(modules), 2)
    ]


def text(data: str) -> str:
    """The QR code of `data` as lines of text for a terminal."""
    return "\n".join(text_rows(data))


def text_fitting(data: str, width: int) -> str | None:
    """The text QR code, or None when it is wider than `width` columns (the caller shows the link alone)."""
    rows = text_rows(data)
    return "\n".join(rows) if len(rows[0]) <= width else None


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(data: str, *, scale: int = 8) -> bytes:
    """An 8-bit greyscale PNG of the QR code of `data` for printing, `scale` pixels per module."""
    modules = matrix(data, **PRINT)
    size = len(modules) * scale
    rows = bytearray()
    for line in modules:
        pixels = b"".join((b"\x00" if dark else b"\xff") * scale for dark in line)
        rows += (b"\x00" + pixels) * scale  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + _chunk(b"IEND", b""))
