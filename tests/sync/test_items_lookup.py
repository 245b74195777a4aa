"""Item look-ups cost QuickBooks queries (metered): an item that matched nothing is asked about again only
after `LOOKUP_AGAIN_S`, whatever the policy."""

from __future__ import annotations

from typing import Any

from sovterm.store.db import Database
from sovterm.sync import items, lines
from tests.sync.helpers import DirectBooks, seeded_mapping


class CountingClient:
    def __init__(self, inner: Any) -> None:
        self.inner, self.queries = inner, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def query(self, sql: str, **kw: Any) -> Any:
        self.queries.append(sql)
        return await self.inner.query(sql, **kw)


async def test_unknown_item_is_looked_up_once_then_again_after_the_pause(db: Database, books: DirectBooks,
                                                                         qbo_state: Any) -> None:
    client = CountingClient(books.qbo)

    async def source() -> Any:
        return client

    catalog = items.Catalog(db, source)
    mapping = seeded_mapping(qbo_state)
    detail = lines.sale_detail({"itemCode": "mystery", "itemDesc": "Mystery box"})
    for policy in ("default", "hold"):
        await items.set_policy(db, mapping.store_id, policy)
        await db.write("DELETE FROM sync_items")
        client.queries.clear()
        for _ in range(3):
            try:
                found = await catalog.resolve(mapping.store_id, detail, mapping)
                assert found == {"mystery": items.ItemRef(mapping.item_id)}
            except items.Unmapped as held:
                assert policy == "hold" and "'mystery'" in held.message
        # SKU, then the title, then the code as a name: three queries the first time, none the next two
        assert len(client.queries) == 3, (policy, client.queries)
        await db.write("UPDATE sync_items SET looked_up_at = looked_up_at - ?", (items.LOOKUP_AGAIN_S + 1,))
        client.queries.clear()
        for _ in range(2):  # looked up again once, and that look-up is remembered too
            try:
                await catalog.resolve(mapping.store_id, detail, mapping)
            except items.Unmapped:
                pass
        assert len(client.queries) == 3, (policy, client.queries)
