"""What the operator reads when QuickBooks refuses (issue 13, point 6): Intuit's words and the intuit_tid
reach the job's reason (`sovterm sync status`/`dead`), whatever the shape of Intuit's answer."""

from __future__ import annotations

import pytest

from sovterm.sim.qbo import FaultRule
from sovterm.sync import queue
from tests.sync.helpers import invoice, put


@pytest.mark.parametrize(("fault", "words"), [
    ("401_gateway", ["must be reconnected", "HTTP 401 invalid_token", "Access token failed validation"]),
    ("403_scope", ["error 3100", "does not have sufficient scope", "accounting scope", "other environment",
                   "subscription has lapsed"]),
])
async def test_a_refusal_holds_the_job_with_intuits_words_and_the_tid(db, engine, qbo_state, fault, words):
    qbo_state.faults.append(FaultRule(fault, "salesreceipt", times=2))  # survives the token refresh
    await put(db, invoice("inv1"))
    await engine.drain()
    [held] = await queue.jobs_in_state(db, "held")
    for word in words:
        assert word in held.last_error, (word, held.last_error)
    assert "intuit_tid" in held.last_error
    assert held.attempts == 0  # held, not burnt
