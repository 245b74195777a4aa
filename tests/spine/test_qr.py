"""One QR module: the printable PNG and the terminal text draw the same codes, and the text fits a terminal."""

from __future__ import annotations

import ast
import struct
import zlib
from pathlib import Path

from sovterm import qr

PAY_LINK = "https://shop.example.com/pay/" + "x" * 120
AUTH_LINK = "https://appcenter.intuit.com/connect/oauth2?" + "x" * 250


def _png_pixels(png: bytes) -> tuple[int, bytes]:
    """(width, greyscale pixels) of the unfiltered 8-bit PNG `qr.png` writes."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, at = {}, 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind, body = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = body
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, depth, colour) == (height, 8, 0) and b"IEND" in chunks
    raw = zlib.decompress(chunks[b"IDAT"])
    lines = [raw[row * (width + 1):(row + 1) * (width + 1)] for row in range(height)]
    assert all(line[0] == 0 for line in lines)  # filter type 0
    return width, b"".join(line[1:] for line in lines)


def test_png_draws_the_print_matrix_scale_pixels_per_module() -> None:
    modules = qr.matrix(PAY_LINK, **qr.PRINT)
    width, pixels = _png_pixels(qr.png(PAY_LINK, scale=3))
    assert width == len(modules) * 3
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            assert pixels[(y * 3 + 1) * width + x * 3 + 1] == (0x00 if dark else 0xFF)


def test_text_reads_back_as_the_screen_matrix() -> None:
    light = {"█": (False, False), "▄": (True, False), "▀": (False, True), " ": (True, True)}
    rows = qr.text_rows(PAY_LINK)
    drawn = [[light[c][half] for c in row] for row in rows for half in (0, 1)]
    modules = qr.matrix(PAY_LINK, **qr.SCREEN)
    assert drawn[:len(modules)] == modules and drawn[len(modules):] == [[False] * len(modules)]  # light padding
    assert qr.text(PAY_LINK) == "\n".join(rows)


def test_qr_of_a_pay_link_fits_a_small_terminal() -> None:
    lines = qr.text_rows(PAY_LINK)
    assert len(lines) <= 25 and all(len(line) == len(lines[0]) <= 60 for line in lines)


def test_qr_code_fits_an_80_column_terminal_or_is_left_out() -> None:
    text = qr.text_fitting(AUTH_LINK, 80)
    assert text is not None and text == qr.text(AUTH_LINK) and max(len(line) for line in text.splitlines()) <= 80
    assert qr.text_fitting("https://example.com/" + "y" * 2000, 80) is None
    assert qr.text_fitting(PAY_LINK, len(qr.text_rows(PAY_LINK)[0]) - 1) is None


def test_qr_is_a_leaf_module_with_no_copies_elsewhere() -> None:
    """The TUI may import only the control client and leaf helpers, so sovterm.qr imports nothing of sovterm;
    and no other module draws QR codes itself."""
    root = Path(qr.__file__).parent
    tree = ast.parse(Path(qr.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m.split(".")[0] for m in imported if m} <= {"__future__", "struct", "zlib", "qrcode"}
    makers = [str(p.relative_to(root)) for p in root.rglob("*.py") if "import qrcode" in p.read_text()]
    assert makers == ["qr.py"]
