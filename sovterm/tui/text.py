"""Putting daemon text (customer and store names, error messages) into Textual markup literally.

`textual.markup.escape` only escapes brackets that start with a lower-case letter, `#`, `/` or `@`, but the
markup parser also takes `[Co-op]` or `[Main]` for a style and drops it: a customer "Brewers [Co-op]" would
show as "Brewers ". Every `[` is escaped here instead.
"""

from __future__ import annotations

ZERO_WIDTH_SPACE = "\u200b"


def escape(text: str) -> str:
    escaped = text.replace("[", "\\[")
    # a trailing backslash would escape the markup tag that follows it; a zero-width space keeps them apart
    return escaped + ZERO_WIDTH_SPACE if escaped.endswith("\\") else escaped
