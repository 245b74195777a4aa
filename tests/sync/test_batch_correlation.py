"""One payment's story in the log when its QuickBooks document went out in a batch with another's (issue
#17 point 4): each job's lines carry its own correlation id, the shared batch request lists both, and
`sovterm logs --cid X` (the daemon's `log_filter`) shows neither payment the other's lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sovterm.logs import LogRing
from sovterm.parts.core import log_filter
from tests.sync.helpers import invoice, put


@pytest.fixture
def ring() -> Iterator[LogRing]:
    ring, logger = LogRing(), logging.getLogger("sovterm")
    level = logger.level
    logger.addHandler(ring)
    logger.setLevel("INFO")
    yield ring
    logger.removeHandler(ring)
    logger.setLevel(level)


async def test_a_batch_of_two_payments_keeps_each_payments_story_apart(db, engine, ring) -> None:
    sender = engine.documents.sender
    sender.min_batch, sender.singles = 2, 0  # the two documents can only go out together, in one batch
    await put(db, invoice("inv-a"))
    await put(db, invoice("inv-b"))
    await engine.drain()
    assert (sender.stats["batches"], sender.stats["batched"], sender.stats["singles"]) == (1, 2, 0)
    lines = [line for _, line in ring.recent(5000)]
    batch = [x for x in lines if x["msg"].startswith("qbo POST batch")]
    assert len(batch) == 1 and batch[0]["cids"] == ["inv-a", "inv-b"] and "cid" not in batch[0]
    for mine, other in (("inv-a", "inv-b"), ("inv-b", "inv-a")):
        story = [x for x in lines if log_filter("DEBUG", None, None, mine)(x)]
        own = [x for x in story if x.get("cid") == mine]
        assert own and len(own) == len(story) - 1  # its own lines, and the batch request it shares
        text = "\n".join(x["msg"] for x in own)
        assert "created (Id" in text and "in a batch of 2" in text  # its document, said under its own id
        assert f"for invoice {mine} posted SalesReceipt:" in text
        assert other not in text and not any(x.get("cid") == other for x in story)
