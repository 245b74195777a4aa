"""Exactly once through SIGKILL (issue 5, point 3): a daemon syncing 2,000 settled invoices (half history
found by the first poll, half paid live and announced by webhooks) is killed at random moments at least
20 times and restarted each time; then QuickBooks holds exactly one document per invoice and the totals
match BTCPay to the cent. The second variant also makes 20 % of QuickBooks calls fail (429, 500, a
hang past the client's timeout, a connection dropped after the document was committed)."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from sovterm.qbo.postings import marker_for, marker_of
from sovterm.sim.qbo import FaultRule
from tests.support.system import System, start_system

from .conftest import settle

HISTORY = 1000
LIVE = 1000
KILLS = 20
SCALE = 0.05  # one "minute" of Intuit's limits is 3 s


def settle_many(state: Any, store_id: str, n: int, seed: int, *, muted: bool) -> list[tuple[str, Decimal]]:
    """n invoices paid over Lightning (settled at once) on the simulator's loop; [(id, amount)]."""
    rng = random.Random(seed)
    state.muted = muted
    try:
        out = []
        for _ in range(n):
            amount = Decimal(rng.randint(100, 99_999)) / 100
            inv = state.create_invoice(store_id, amount, "USD")
            state.pay(inv.id, method="BTC-LN")
            out.append((inv.id, amount))
        return out
    finally:
        state.muted = False


def live_payments(system: System, stop: threading.Event, out: list[tuple[str, Decimal]]) -> None:
    """Customers keep paying while the daemon is being killed: batches of 25 every 20 ms."""
    for n in range(LIVE // 25):
        if stop.is_set():
            return
        out += system.btcpay.call(settle_many, system.btcpay.state, system.store_id, 25, 1000 + n, muted=False,
                                  timeout=30)
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("faults", [False, True], ids=["sigkill", "sigkill+faults"])
def test_sigkill_at_random_moments_never_duplicates_or_loses(tmp_path, faults: bool) -> None:
    rng = random.Random(5 if faults else 4)
    history: list[tuple[str, Decimal]] = []

    def seed_history(system: System) -> None:
        history.extend(system.btcpay.call(settle_many, system.btcpay.state, system.store_id, HISTORY, 1,
                                          muted=True, timeout=60))

    system = start_system(
        tmp_path, mode="deposit", qbo_time_scale=SCALE, limits_time_scale=SCALE, before_setup=seed_history,
        sync={"interval_s": 1, "lease_s": 5, "backoff_base_s": 0.05, "backoff_max_s": 0.5, "max_attempts": 50},
        qbo_settings={"request_timeout_s": 1}, btcpay_settings={"poll_interval_s": 10},
    )
    try:
        if faults:
            system.qbo.call(setattr, system.qbo.state, "hang_s", 2.0)
            for kind in ("429", "500", "timeout", "drop_after_commit"):
                system.qbo.call(system.qbo.state.faults.append, FaultRule(kind, "*", probability=0.05))
        live: list[tuple[str, Decimal]] = []
        stop = threading.Event()
        payer = threading.Thread(target=live_payments, args=(system, stop, live), daemon=True)
        payer.start()
        kills = 0
        try:
            while kills < KILLS:
                time.sleep(rng.uniform(0.2, 1.2))
                system.daemon.kill()  # SIGKILL
                kills += 1
                system.daemon.start()
        finally:
            stop.set()
            payer.join(60)
        assert kills >= KILLS
        expected = dict(history + live)
        assert len(expected) == HISTORY + LIVE

        def all_posted() -> bool:
            system.cli("sync", "now", timeout=120)
            row = system.sql("SELECT COUNT(*) FROM sync_postings WHERE status = 'posted'")[0][0]
            busy = system.sql("SELECT COUNT(*) FROM sync_jobs WHERE state IN ('queued', 'running')")[0][0]
            return row >= len(expected) and not busy

        system.wait_for(all_posted, timeout=120, what="every invoice posted")
        if faults:
            fired = system.qbo.call(lambda: sum(1 for e in system.qbo.state.request_log if e[4] in (429, 500)))
            assert fired > 50, fired  # the faults did fire
        receipts = system.qbo_docs("SalesReceipt")
        by_marker: dict[str, list[dict[str, Any]]] = {}
        for doc in receipts:
            by_marker.setdefault(doc["DocNumber"], []).append(doc)
        wanted = {marker_for("sale", system.store_id, inv_id, 0): amount for inv_id, amount in expected.items()}
        duplicates = {m: len(d) for m, d in by_marker.items() if len(d) > 1}
        assert not duplicates, f"{len(duplicates)} invoices posted more than once"
        assert set(by_marker) == set(wanted), (len(set(wanted) - set(by_marker)), len(set(by_marker) - set(wanted)))
        for marker, amount in wanted.items():
            assert Decimal(str(by_marker[marker][0]["TotalAmt"])) == amount
        assert sum(Decimal(str(d["TotalAmt"])) for d in receipts) == sum(expected.values())
        assert system.sql("SELECT COUNT(*) FROM sync_jobs WHERE state = 'dead'") == [(0,)]
        ledger = dict(system.sql("SELECT marker, qbo_id FROM sync_postings WHERE kind = 'sale'"))
        assert {m: d[0]["Id"] for m, d in by_marker.items()} == ledger
        report = system.cli_json("reconcile", "--from", "2000-01-01", "--to", "2100-01-01", timeout=120)
        assert report["ok"] is True
    finally:
        system.close()


@pytest.mark.slow
def test_payments_and_transfers_survive_a_kill_and_a_lost_answer_without_docnumber(tmp_path) -> None:
    """Issue 13, point 5: Payments (invoicing mode) and payout Transfers carry no DocNumber and QuickBooks
    lets no query filter one by it. Each goes through both unknown outcomes: the daemon SIGKILLed while
    QuickBooks holds back the answer to a create it committed (the restart finds the `pending` posting's
    document by date and memo), and an answer dropped after the commit (found before any resend)."""
    s = start_system(tmp_path, mode="invoicing", qbo_invoices=4,
                     sync={"interval_s": 1, "lease_s": 5, "backoff_base_s": 0.05, "backoff_max_s": 0.5})
    try:
        s.qbo.call(setattr, s.qbo.state, "hang_s", 60.0)  # longer than the daemon waits to be killed
        faults = s.qbo.state.faults
        paid: list[Any] = []
        payouts: list[Any] = []

        def ours(entity: str, subject: str) -> list[dict[str, Any]]:
            return [d for d in s.qbo_docs(entity) if subject in str(d.get("PrivateNote", ""))]

        for entity in ("payment", "transfer"):
            for kind in ("hang_after_commit", "drop_after_commit"):
                s.qbo.call(faults.append, FaultRule(kind, entity, times=1))  # type: ignore[arg-type]
                if entity == "payment":
                    number = str(1001 + len(paid))
                    due = next(d["Balance"] for d in s.qbo_docs("Invoice") if d["DocNumber"] == number)
                    paid.append(settle(s, due, metadata={"orderId": number}))
                    subject = paid[-1].id
                else:
                    state = s.btcpay.state
                    payout = s.btcpay.call(state.create_payout, s.store_id, Decimal(f"{20 + 10 * len(payouts)}.00"),
                                           "USD", approved=True, payout_method_id="BTC-LN")
                    # paid from the node the Lightning invoices filled, with no routing fee: the Transfer alone
                    s.btcpay.call(state.pay_lightning_payout, s.store_id, payout.id, fee_msat=0)
                    payouts.append(payout)
                    subject = payout.id
                s.wait_for(lambda e=entity, x=subject: ours(e.capitalize(), x), what=f"{entity} committed")
                if kind == "hang_after_commit":
                    s.daemon.kill()  # QuickBooks has the document; the ledger row is still `pending`
                    s.daemon.start()

        def settled() -> bool:
            s.cli("sync", "now", timeout=60)
            rows = s.sql("SELECT status FROM sync_postings")
            busy = s.sql("SELECT COUNT(*) FROM sync_jobs WHERE state IN ('queued', 'running')")[0][0]
            return len(rows) == 4 and all(r[0] == "posted" for r in rows) and not busy

        s.wait_for(settled, timeout=60, what="every posting recorded")
        assert s.qbo.call(lambda: [f.times for f in faults]) == [0, 0, 0, 0]  # every fault fired
        ledger = dict(s.sql("SELECT marker, qbo_id FROM sync_postings"))
        for entity, subjects in (("Payment", [i.id for i in paid]), ("Transfer", [p.id for p in payouts])):
            for subject in subjects:
                [doc] = ours(entity, subject)  # exactly one document per posting
                assert "DocNumber" not in doc and ledger[marker_of(doc)] == doc["Id"]
        assert all(Decimal(d["Balance"]) == 0 for d in s.qbo_docs("Invoice") if d["DocNumber"] in ("1001", "1002"))
        assert s.sql("SELECT COUNT(*) FROM sync_jobs WHERE state = 'dead'") == [(0,)]
        report = s.cli_json("reconcile", "--from", "2000-01-01", "--to", "2100-01-01")
        assert report["ok"] is True, report["differences"]
    finally:
        s.close()


def pay_days(state: Any, store_id: str, n: int, seed: int, days: list[int]) -> list[tuple[str, int, Decimal]]:
    """n Lightning invoices with their payment received on earlier days (midday UTC, `days` days ago; created
    now, so BTCPay's invoice list shows them to the poll as new after a missed webhook):
    [(id, days ago, amount)]."""
    rng = random.Random(seed)
    out = []
    today = int(time.time()) // 86_400 * 86_400
    for _ in range(n):
        ago = rng.choice(days)
        at = today - ago * 86_400 + 43_200 + rng.randint(-3600, 3600)
        amount = Decimal(rng.randint(100, 99_999)) / 100
        inv = state.create_invoice(store_id, amount, "USD")
        state.pay(inv.id, method="BTC-LN", at=at)
        out.append((inv.id, ago, amount))
    return out


@pytest.mark.slow
def test_summary_mode_through_sigkill_posts_each_day_exactly_once(tmp_path) -> None:
    """Issue 15, point 1: in daily summary mode, payments of five closed days keep arriving while the daemon
    is SIGKILLed at random moments (and once while QuickBooks holds back the answer to a day's Deposit it
    committed); afterwards each day's documents carry every invoice once: no document twice, the day's
    total to the cent, and the books-match report agrees."""
    rng = random.Random(15)
    days = [1, 2, 3, 4, 5]
    s = start_system(tmp_path, mode="summary", sync={"interval_s": 1, "lease_s": 5, "backoff_base_s": 0.05,
                                                     "backoff_max_s": 0.5, "max_attempts": 50},
                     btcpay_settings={"poll_interval_s": 10})
    try:
        first = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 6 * 86_400))
        s.cli_ok("setup", "mode", "summary", "--from", first, "--timezone", "UTC")
        s.qbo.call(setattr, s.qbo.state, "hang_s", 60.0)
        s.qbo.call(s.qbo.state.faults.append, FaultRule("hang_after_commit", "deposit", times=1))
        expected = s.btcpay.call(pay_days, s.btcpay.state, s.store_id, 50, 1, days, timeout=60)
        s.wait_for(lambda: [d for d in s.qbo_docs("Deposit") if "daily summary" in str(d.get("PrivateNote"))],
                   timeout=60, what="a day's Deposit committed, its answer held back")
        s.daemon.kill()  # QuickBooks has the document; the ledger row is still `pending`
        s.daemon.start()
        for n in range(KILLS // 2):
            expected += s.btcpay.call(pay_days, s.btcpay.state, s.store_id, 25, 100 + n, days, timeout=60)
            time.sleep(rng.uniform(0.2, 1.2))
            s.daemon.kill()
            s.daemon.start()

        def settled() -> bool:
            s.cli("sync", "now", timeout=60)
            due = s.sql("SELECT COUNT(*) FROM sync_jobs WHERE state = 'running' OR (state = 'queued' AND "
                        "next_run_at <= ?)", (time.time(),))[0][0]
            unbound = s.sql("SELECT COUNT(*) FROM sync_summary_entries WHERE doc_seq IS NULL")[0][0]
            entered = s.sql("SELECT COUNT(DISTINCT invoice_id) FROM sync_summary_entries")[0][0]
            pending = s.sql("SELECT COUNT(*) FROM sync_postings WHERE status != 'posted'")[0][0]
            return not due and not unbound and not pending and entered == len(expected)

        s.wait_for(settled, timeout=120, what="every invoice in a posted summary")
        docs = [d for entity in ("Deposit", "Purchase") for d in s.qbo_docs(entity)
                if "daily summary" in str(d.get("PrivateNote"))]
        markers = [d["DocNumber"] for d in docs]
        assert len(markers) == len(set(markers)), "a summary document was posted twice"
        ledger = dict(s.sql("SELECT marker, qbo_id FROM sync_postings WHERE invoice_id LIKE 'summary:%'"))
        assert {d["DocNumber"]: d["Id"] for d in docs} == ledger
        today = int(time.time()) // 86_400 * 86_400
        for ago in days:
            day = time.strftime("%Y-%m-%d", time.gmtime(today - ago * 86_400))
            total = sum(Decimal(str(d["TotalAmt"])) for d in docs if d["TxnDate"] == day)
            assert total == sum(a for _, d, a in expected if d == ago), day
        # a summary and one adjustment per batch of late arrivals at most, per day: never one per invoice
        assert len(docs) <= len(days) * (1 + 1 + KILLS // 2)
        assert not s.qbo_docs("SalesReceipt")
        assert s.sql("SELECT COUNT(*) FROM sync_jobs WHERE state = 'dead'") == [(0,)]
        report = s.cli_json("reconcile", "--from", first, "--to", time.strftime("%Y-%m-%d"), timeout=120)
        assert report["ok"] is True, report["differences"]
    finally:
        s.close()
