from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.btcpay.conftest import sim  # noqa: F401 (the spec-checked BTCPay simulator, for the client's calls)
from tests.links.harness import World, make_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async for w in make_world(tmp_path):
        yield w
