"""Refused webhooks cost bounded disk: N refused requests into a real daemon, and the database's growth.

Run: `.venv/bin/python bench/webhook_refusals.py [--count 100000] [--concurrency 16]`.
Prints the refusal rate and the database's growth (after a WAL checkpoint) in bytes and per refusal,
and how many log lines the flood wrote. Target (#19 point 1): 100,000 refusals grow it < 1 MB.
Each request is the costly kind measured before the fix: an 8,000-character store id in the URL (a store
we do not follow), a 4 KB body and a forged signature; the daemon's per-address rate limit is lifted for
the run, since the point is what a refusal costs once admitted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hardening.conftest import LoggedDaemon, post_many, run  # noqa: E402
from tests.support.daemon import write_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sovterm-bench-") as tmp:
        root = Path(tmp)
        d = LoggedDaemon(root, write_config(root, {"listener": {"rate_limit_webhook_per_min": 10**9}}))
        d.start()
        try:
            before = d.db_bytes()
            started = time.perf_counter()
            statuses = run(post_many(f"{d.url}/webhooks/btcpay/{'S' * 8000}", args.count, b"x" * 4000,
                                     headers={"BTCPay-Sig": "sha256=" + "0" * 64}, concurrency=args.concurrency))
            elapsed = time.perf_counter() - started
            grown = d.db_bytes() - before
            logs = [p for p in (root / "data" / "logs").glob("*") if p.is_file()]
            lines = sum(1 for p in logs for line in p.read_text(errors="replace").splitlines()
                        if "refused BTCPay webhook" in line)
        finally:
            d.stop()
    print(f"refused requests: {args.count:,} {statuses} in {elapsed:.1f} s ({args.count / elapsed:,.0f}/s)")
    print(f"database growth: {grown:,} bytes ({grown / args.count:.2f} bytes per refusal; target < 1,000,000)")
    print(f"log lines about refusals: {lines}")


if __name__ == "__main__":
    main()
