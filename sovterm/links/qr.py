"""QR codes of pay links: a PNG for printing (written here, so no imaging library is needed) and text
for the terminal."""

from __future__ import annotations

import struct
import zlib

import qrcode
from qrcode.constants import ERROR_CORRECT_M

from sovterm.qbo.qr import render_qr


def _matrix(data: str) -> list[list[bool]]:
    code = qrcode.QRCode(border=4, error_correction=ERROR_CORRECT_M)
    code.add_data(data)
    code.make(fit=True)
    return code.get_matrix()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(data: str, *, scale: int = 8) -> bytes:
    """An 8-bit greyscale PNG of the QR code, `scale` pixels per module."""
    matrix = _matrix(data)
    size = len(matrix) * scale
    rows = bytearray()
    for line in matrix:
        pixels = b"".join((b"\x00" if dark else b"\xff") * scale for dark in line)
        rows += (b"\x00" + pixels) * scale  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + _chunk(b"IEND", b""))


def terminal(data: str, *, max_width: int = 120) -> str | None:
    """Text QR for a terminal; None if it would be wider than `max_width`."""
    return render_qr(data, max_width=max_width)
