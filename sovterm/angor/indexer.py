"""An Angor indexer's project API (block-core/blockcore-indexer
`src/Blockcore.Indexer.Angor/Controllers/ProjectQueryController.cs`, routes `api/v1/query/Angor`): the project
as indexed on chain (its founder key, the kind-3030 event id committed in the OP_RETURN, the creating
transaction), its stats and its investments. Answers are validated; anything else is "garbage"."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

PREFIX = "api/v1/query/Angor"  # the controller also answers api/query/Angor; Angor's app uses this one
MAX_BODY = 1024 * 1024
INVESTMENTS_PAGE = 50  # the indexer's own limit per page


class IndexerProblem(Exception):
    """The indexer could not be read: `state` is down | slow | garbage."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class IndexedProject(_Camel):  # ProjectIndexerData
    founder_key: str
    nostr_event_id: str | None = None
    project_identifier: str
    created_on_block: int = 0
    trx_id: str | None = None
    total_investments_count: int | None = None


class ProjectStats(_Camel):
    investor_count: int = Field(ge=0)
    amount_invested: int = Field(ge=0)  # sats
    amount_spent_so_far_by_founder: int = Field(0, ge=0)
    amount_in_penalties: int = Field(0, ge=0)
    count_in_penalties: int = Field(0, ge=0)


class Investment(_Camel):  # ProjectInvestment
    investor_public_key: str
    total_amount: int = Field(ge=0)
    transaction_id: str
    hash_of_secret: str | None = None
    is_seeder: bool = False


_INVESTMENTS = TypeAdapter(list[Investment])
_PROJECTS = TypeAdapter(list[IndexedProject])


class Indexer:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, *, timeout_s: float) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s

    async def _get(self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
                   ) -> Any:
        """The JSON at `path`, None on 404 (unknown project); `headers` is filled with the answer's."""
        url = f"{self.base_url}/{PREFIX}/{path}"
        try:
            async with asyncio.timeout(self._timeout_s), self._http.get(url, params=params) as resp:
                if resp.status == 404:
                    return None
                if resp.status != 200:
                    state = "down" if resp.status >= 500 else "garbage"
                    raise IndexerProblem(state, f"the indexer answered HTTP {resp.status}")
                body = await resp.content.read(MAX_BODY + 1)
                if headers is not None:
                    headers.update(resp.headers)
        except TimeoutError:
            raise IndexerProblem("slow", f"no answer within {self._timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise IndexerProblem("down", f"unreachable ({type(exc).__name__})") from None
        if len(body) > MAX_BODY:
            raise IndexerProblem("garbage", "the answer is larger than any project's")
        try:
            return json.loads(body)
        except ValueError:
            raise IndexerProblem("garbage", "the answer is not JSON") from None

    @staticmethod
    def _model(model: Any, data: Any, what: str) -> Any:
        try:
            return model.validate_python(data) if isinstance(model, TypeAdapter) else model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the answer"
            raise IndexerProblem("garbage", f"{what}: {where} {first['msg'].lower()}") from None

    async def project(self, project_id: str) -> IndexedProject | None:
        data = await self._get(f"projects/{project_id}")
        return None if data is None else self._model(IndexedProject, data, "project")

    async def stats(self, project_id: str) -> ProjectStats | None:
        data = await self._get(f"projects/{project_id}/stats")
        return None if data is None else self._model(ProjectStats, data, "project stats")

    async def investments(self, project_id: str) -> list[Investment]:
        """The first page (the indexer's limit, 50), newest as the indexer orders them."""
        data = await self._get(f"projects/{project_id}/investments", {"offset": 0, "limit": INVESTMENTS_PAGE})
        return [] if data is None else self._model(_INVESTMENTS, data, "investments")

    async def projects(self, offset: int, limit: int) -> tuple[list[IndexedProject], int | None]:
        """One page of every project the indexer knows, and the total it reports (its Pagination-Total
        header; None when the backend does not send it)."""
        headers: dict[str, str] = {}
        data = await self._get("projects", {"offset": offset, "limit": limit}, headers)
        total = headers.get("Pagination-Total", "")
        return ([] if data is None else self._model(_PROJECTS, data, "projects"),
                int(total) if total.isdigit() else None)
