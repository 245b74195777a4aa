"""Open QuickBooks invoices found by number or customer, with their pay link."""

from __future__ import annotations

from tests.links.harness import World


async def test_search_by_number_or_customer_shows_the_active_link(world: World) -> None:
    links = world.links()
    everything = await links.search_invoices(None, limit=50)
    assert everything and all(float(i["balance"]) > 0 for i in everything)
    first = everything[0]
    by_number = await links.search_invoices(first["doc_number"], limit=50)
    assert [i["id"] for i in by_number] == [first["id"]]
    by_customer = await links.search_invoices(first["customer"][:4].upper(), limit=50)
    assert first["id"] in [i["id"] for i in by_customer]
    assert first["link_id"] is None
    link = await links.create_qbo(first["doc_number"], actor="alice", audit=world.audit)
    again = await links.search_invoices(first["doc_number"], limit=50)
    assert again[0]["link_id"] == link["link_id"]
    assert await links.search_invoices("no-such-invoice-or-customer", limit=50) == []
