"""An Angor indexer simulator, and Angor projects with their signed Nostr events, for tests and the demo.

The routes and answers follow block-core/blockcore-indexer (read at commit 22f4cd5):
`src/Blockcore.Indexer.Angor/Controllers/ProjectQueryController.cs` (routes under both `api/query/Angor`
and `api/v1/query/Angor`; `limit` 1-50, default 10; a list is the bare array unless `?envelope` asks for
`{offset, limit, total, items}`; `Pagination-*` headers from `Core/Paging/Paging.cs`; 404 for an unknown
project), with the DTOs `Operations/Types/ProjectIndexerData.cs`, `ProjectStats.cs` and
`ProjectInvestment.cs` serialised camelCase as ASP.NET does. The kind-3030 content follows block-core/angor
(commit d73cef3) `docs/nip-3030-crowdfunding.md` and `src/shared/Angor.Shared/Models/ProjectInfo.cs`.

The NIP-01 event id is computed here on its own (not with sovterm.angor's), so tests of sovterm's
verification do not check the code against itself. `mode` makes the indexer slow or answer garbage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

import bech32
from aiohttp import web
from coincurve import PrivateKey

PREFIXES = ("/api/query/Angor", "/api/v1/query/Angor")
DAY = 86400


def signed_event(secret: bytes, kind: int, content: str, tags: list[list[str]], created_at: int) -> dict[str, Any]:
    """A NIP-01 event signed with BIP-340 Schnorr by `secret`."""
    key = PrivateKey(secret)
    pubkey = key.public_key_xonly.format().hex()
    serial = json.dumps([0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False)
    event_id = hashlib.sha256(serial.encode("utf-8")).hexdigest()
    return {"id": event_id, "pubkey": pubkey, "created_at": created_at, "kind": kind, "tags": tags,
            "content": content, "sig": key.sign_schnorr(bytes.fromhex(event_id)).hex()}


def forged(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The event with fields changed and its id recomputed, but the original signature kept: what a relay
    (or anyone in between) could serve to make a project look better funded or say something else. Its id
    is right; its signature is not."""
    out = {**event, **changes}
    serial = json.dumps([0, out["pubkey"], out["created_at"], out["kind"], out["tags"], out["content"]],
                        separators=(",", ":"), ensure_ascii=False)
    return {**out, "id": hashlib.sha256(serial.encode("utf-8")).hexdigest()}


@dataclass
class SimProject:
    secret: bytes  # the project's Nostr key
    info: dict[str, Any]  # ProjectInfo, camelCase
    profile: dict[str, Any]
    description: str
    created_on_block: int
    trx_id: str
    investments: list[dict[str, Any]] = field(default_factory=list)
    penalties: list[str] = field(default_factory=list)  # investor keys whose funds are in penalty
    created_at: int = 0

    @property
    def project_id(self) -> str:
        return str(self.info["projectIdentifier"])

    @property
    def pubkey(self) -> str:
        return PrivateKey(self.secret).public_key_xonly.format().hex()

    def events(self) -> list[dict[str, Any]]:
        """The kind-3030 project event, the kind-0 profile and the kind-30078 description, signed."""
        at = self.created_at
        return [
            signed_event(self.secret, 3030, json.dumps(self.info), [["d", self.project_id]], at),
            signed_event(self.secret, 0, json.dumps(self.profile), [], at),
            signed_event(self.secret, 30078, self.description, [["d", "angor:project"]], at),
        ]

    @property
    def project_event_id(self) -> str:
        return str(self.events()[0]["id"])


def make_project(rng: random.Random, now: int, *, name: str, target_sats: int, version: int = 2,
                 project_type: int = 0, started_days_ago: int = 10, penalty_days: int = 90,
                 investors: int = 5, raised_sats: int = 0) -> SimProject:
    """A project as an Angor founder would create it: keys, an id, stages 30/30/40 % a month apart after the
    investment window, and `investors` investments adding up to `raised_sats`."""
    secret = rng.randbytes(32)
    founder = PrivateKey(rng.randbytes(32)).public_key.format().hex()
    recovery = PrivateKey(rng.randbytes(32)).public_key.format().hex()
    # Angor derives the id from the founder key; any 20-byte digest gives an id of the same form
    ident = bech32.bech32_encode("angor", bech32.convertbits(hashlib.sha256(bytes.fromhex(founder)).digest()[:20], 8, 5))
    start = now - started_days_ago * DAY
    end = start + 30 * DAY
    info: dict[str, Any] = {
        "founderKey": founder, "founderRecoveryKey": recovery, "projectIdentifier": ident,
        "nostrPubKey": PrivateKey(secret).public_key_xonly.format().hex(),
        "startDate": start, "expiryDate": end + 180 * DAY, "penaltyDays": penalty_days, "targetAmount": target_sats,
        "stages": [{"amountToRelease": pct, "releaseDate": end + (n + 1) * 30 * DAY}
                   for n, pct in enumerate((30, 30, 40))],
        "projectSeeders": {"threshold": 0, "secretHashes": []},
    }
    if version >= 2:
        info.update({"version": 2, "projectType": project_type, "networkName": "Bitcoin", "endDate": end})
    project = SimProject(secret=secret, info=info,
                         profile={"name": name.lower().replace(" ", "-"), "display_name": name,
                                  "about": f"{name}: funded on Angor", "website": "https://example.org"},
                         description=f"# {name}\nWhat the money is for, stage by stage.",
                         created_on_block=870_000 + rng.randint(0, 20_000), trx_id=rng.randbytes(32).hex(),
                         created_at=start - DAY)
    for n in range(investors):
        amount = raised_sats // investors + (raised_sats % investors if n == 0 else 0)
        project.investments.append({
            "investorPublicKey": PrivateKey(rng.randbytes(32)).public_key.format().hex(), "totalAmount": amount,
            "transactionId": rng.randbytes(32).hex(),
            "hashOfSecret": rng.randbytes(32).hex() if n == 0 else "", "isSeeder": n == 0})
    return project


@dataclass
class AngorIndexerState:
    projects: dict[str, SimProject] = field(default_factory=dict)
    mode: str = "ok"  # ok | slow | garbage
    slow_s: float = 30.0
    requests: int = 0

    def add(self, project: SimProject) -> SimProject:
        self.projects[project.project_id] = project
        return project

    def invest(self, project_id: str, investor_key: str, sats: int, txid: str) -> None:
        self.projects[project_id].investments.append(
            {"investorPublicKey": investor_key, "totalAmount": sats, "transactionId": txid, "hashOfSecret": "",
             "isSeeder": False})

    def project_json(self, p: SimProject) -> dict[str, Any]:
        return {"founderKey": p.info["founderKey"], "nostrEventId": p.project_event_id,
                "projectIdentifier": p.project_id, "createdOnBlock": p.created_on_block, "trxId": p.trx_id,
                "totalInvestmentsCount": len(p.investments)}

    def stats_json(self, p: SimProject) -> dict[str, Any]:
        penalised = [i for i in p.investments if i["investorPublicKey"] in p.penalties]
        return {"investorCount": len(p.investments), "amountInvested": sum(i["totalAmount"] for i in p.investments),
                "amountSpentSoFarByFounder": 0,
                "amountInPenalties": sum(i["totalAmount"] for i in penalised), "countInPenalties": len(penalised)}


def _page(request: web.Request, items: list[Any]) -> web.Response:
    try:
        offset = int(request.query.get("offset", 0))
        limit = int(request.query.get("limit", 10))
    except ValueError:
        return _problem("The value is not valid.")
    if offset < 0 or not 1 <= limit <= 50:
        return _problem("The field limit must be between 1 and 50.")
    total = len(items)
    page = items[offset:offset + limit]
    headers = {"Pagination-Offset": str(offset), "Pagination-Limit": str(limit), "Pagination-Total": str(total)}
    body: Any = {"offset": offset, "limit": limit, "total": total, "items": page} if "envelope" in request.query else page
    return web.json_response(body, headers=headers)


def _problem(detail: str) -> web.Response:
    """ASP.NET's validation answer (ProblemDetails), as [ApiController] sends it."""
    return web.json_response({"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                              "title": "One or more validation errors occurred.", "status": 400,
                              "errors": {"limit": [detail]}}, status=400, content_type="application/problem+json")


def create_app(state: AngorIndexerState) -> web.Application:
    @web.middleware
    async def modes(request: web.Request, handler: Any) -> web.StreamResponse:
        state.requests += 1
        if state.mode == "slow":
            await asyncio.sleep(state.slow_s)
        if state.mode == "garbage":
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        return await handler(request)

    def project_of(request: web.Request) -> SimProject:
        project = state.projects.get(request.match_info["project_id"])
        if project is None:
            raise web.HTTPNotFound()
        return project

    async def projects(request: web.Request) -> web.Response:
        return _page(request, [state.project_json(p) for p in state.projects.values()])

    async def project(request: web.Request) -> web.Response:
        return web.json_response(state.project_json(project_of(request)))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state.stats_json(project_of(request)))

    async def investments(request: web.Request) -> web.Response:
        return _page(request, project_of(request).investments)

    async def investment(request: web.Request) -> web.Response:
        key = request.match_info["investor"]
        found = next((i for i in project_of(request).investments if i["investorPublicKey"] == key), None)
        return web.json_response(found)

    app = web.Application(middlewares=[modes])
    for prefix in PREFIXES:
        app.router.add_get(f"{prefix}/projects", projects)
        app.router.add_get(f"{prefix}/projects/{{project_id}}", project)
        app.router.add_get(f"{prefix}/projects/{{project_id}}/stats", stats)
        app.router.add_get(f"{prefix}/projects/{{project_id}}/investments", investments)
        app.router.add_get(f"{prefix}/projects/{{project_id}}/investments/{{investor}}", investment)
    return app


def seed_projects(state: AngorIndexerState, now: int, seed: int = 3) -> list[SimProject]:
    """The demo's projects: a v2 Invest project well into its window, a v1 (legacy) project in its stages,
    and a v2 Fund project without a fixed window."""
    rng = random.Random(seed)
    made = [
        make_project(rng, now, name="Solar Mining Co-op", target_sats=50_000_000, started_days_ago=12,
                     investors=7, raised_sats=31_250_000),
        make_project(rng, now, name="Open Hardware Wallet", target_sats=20_000_000, version=1, started_days_ago=75,
                     penalty_days=120, investors=11, raised_sats=21_400_000),
        make_project(rng, now, name="Bitcoin Library Fund", target_sats=5_000_000, project_type=1, penalty_days=30,
                     investors=3, raised_sats=1_200_000),
    ]
    made[1].penalties.append(made[1].investments[-1]["investorPublicKey"])
    return [state.add(p) for p in made]
