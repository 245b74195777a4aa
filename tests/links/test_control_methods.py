"""The links part's control methods as the server runs them: the part they need, the audit rows the
service writes through the call's recorder, and answers that carry exactly the service's keys."""

from __future__ import annotations

import pytest

from sovterm.control import protocol as rpc
from sovterm.parts.links import register_methods
from tests.links.harness import World
from tests.support.dispatch import Dispatch, wire


@pytest.fixture
def control(world: World) -> Dispatch:
    return Dispatch(world.db, register_methods, links=world.links())


async def test_answers_are_the_services_own_keys_and_values(control: Dispatch) -> None:
    links = control.running["links"]
    qbo = await control.call("links.create", qbo_invoice="1001")
    fixed = await control.call("links.create", amount="25.00", currency="usd", memo=None)
    assert set(fixed) == {"link_id", "kind", "store_id", "amount", "currency", "memo", "state", "created_at",
                          "created_by", "expires_at", "kid", "url"}  # no QuickBooks keys on a fixed link
    assert fixed["memo"] is None and qbo["memo_written"] is None and qbo["balance"] == "100.00"
    assert "amount" not in qbo
    assert await control.call("links.list") == wire(await links.list())
    got = await control.call("links.get", link_id=qbo["link_id"])
    assert got == wire({**await links.link(qbo["link_id"]), "url": qbo["url"]})
    assert await control.call("qbo.invoices.search", query="100", limit=5) == wire(
        await links.search_invoices("100", limit=5))
    assert await control.call("links.keys.list") == wire([k.__dict__ for k in await links.keys.list()])


async def test_each_link_created_or_ended_writes_one_audit_row(control: Dispatch) -> None:
    made = await control.call("links.create", qbo_invoice="1001")
    dry = await control.call("links.bulk_create", dry_run=True)
    assert dry["would_create"] and dry["created"] == []
    bulk = await control.call("links.bulk_create")
    assert "would_create" not in bulk and len(bulk["created"]) == 2
    ended = await control.call("links.expire", link_id=made["link_id"])
    assert ended["state"] == "expired"
    with pytest.raises(rpc.RpcError, match="no pay link nope"):
        await control.call("links.expire", link_id="nope")
    rotated = await control.call("links.keys.rotate")
    rows = await control.audit_rows()
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("link.create", made["link_id"], "created"),
        *[("link.create", link["link_id"], "created") for link in bulk["created"]],
        ("link.expire", made["link_id"], "expired"),
        ("link.expire", "nope", "refused"),
        ("link.keys.rotate", rotated["active"], "rotated"),
    ]
    assert rows[0][3] == {"qbo_invoice": "1001", "balance": "100.00", "expires_at": made["expires_at"]}
    assert rows[3][3] == {"previous_state": "active"}


async def test_a_stopped_links_part_answers_one_clear_error_and_audits_nothing(control: Dispatch) -> None:
    control.stop("links")
    for method, params in (("links.list", {}), ("links.create", {"qbo_invoice": "1001"}),
                           ("qbo.invoices.search", {})):
        with pytest.raises(rpc.RpcError) as refused:
            await control.call(method, **params)
        assert refused.value.code == rpc.USER_ERROR
        assert refused.value.message.startswith("the links part is not running")
    assert await control.audit_rows() == []
