"""BTCNutServer's trusted mints, read from BTCPay (issue #17 point 2, "the plugin's store settings when BTCPay
exposes them"): the plugin's `CASHU` payment-method config comes back from BTCPay's own store payment-method
API with `includeConfig=true`, for a key that may modify the store settings; the mints part adds those mints
to the ones it checks, and says per store when the key may not read them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from sovterm.btcpay.errors import BTCPayAuthError, BTCPayNotFound
from sovterm.btcpay.permissions import STORE
from sovterm.mints.monitor import MintError, MintMonitor
from sovterm.parts.mints import listed_in_btcpay
from tests.btcpay.conftest import SimHarness

MINTS = ["https://Mint.Example.com/", "http://127.0.0.1:9/cashu"]  # as an operator typed them in the plugin


async def test_btcnutservers_trusted_mints_join_the_checked_list(sim: SimHarness, db: Any) -> None:
    cashu_store, full_key = sim.store_with_key()  # canmodifystoresettings: BTCPay shows the config
    sim.state.configure_cashu(cashu_store, MINTS)
    viewer_store, viewer_key = sim.store_with_key([STORE + "canviewstoresettings"])
    sim.state.configure_cashu(viewer_store, ["https://other.example.net"])
    plain_store, plain_key = sim.store_with_key()  # no Cashu payment method
    config = await sim.client(full_key).get_store_payment_method_config(cashu_store, "CASHU")
    assert config is not None and config["trustedMintsUrls"] == MINTS and config["paymentModel"] == 0
    with pytest.raises(BTCPayNotFound):
        await sim.client(plain_key).get_store_payment_method_config(plain_store, "CASHU")
    with pytest.raises(BTCPayAuthError):
        await sim.client(viewer_key).get_store_payment_method_config(viewer_store, "CASHU")

    keys = {cashu_store: full_key, viewer_store: viewer_key, plain_store: plain_key}
    for store_id in keys:
        await db.write("INSERT INTO btcpay_stores(store_id, selected, updated_at) VALUES(?, 1, 0)", (store_id,))
    services = SimpleNamespace(require_db=lambda: db, btcpay=SimpleNamespace(
        connected=True, client_for_store=lambda store_id: sim.client(keys[store_id])))
    async with aiohttp.ClientSession() as http:
        monitor = MintMonitor(db, http, configured=[], timeout_s=1.0, max_skew_s=60.0,
                              listed_in_btcpay=lambda: listed_in_btcpay(services))  # type: ignore[arg-type]
        summary = await monitor.check()
    assert await monitor.trusted() == {"http://127.0.0.1:9/cashu": f"btcpay:{cashu_store}",
                                       "https://mint.example.com": f"btcpay:{cashu_store}"}
    assert summary["mints"] == 2 and summary["down"] == 2  # checked like any trusted mint (nothing listens)
    assert summary["btcpay_notes"] == [
        f"store {viewer_store}: BTCPay shows the Cashu settings only to an API key with "
        "btcpay.store.canmodifystoresettings; without it, list the mints with `sovterm mints add`"]
    with pytest.raises(MintError, match="Cashu settings of store"):
        await monitor.remove("https://mint.example.com")  # untrusted where it is trusted: in the plugin
