"""Angor projects read from a real Nostr relay (`nostr-relay` from PyPI, one per module) and the indexer
simulator: found by project id and by founder npub, forged events dropped and counted, and an indexer or
relay that is down, slow or sends garbage shown as a state while the last good data stays."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from textual.widgets import DataTable, Input, ProgressBar, Static

from sovterm.angor.monitor import AngorError, AngorMonitor
from sovterm.angor.nostr import hex_to_npub
from sovterm.sim.angor import AngorIndexerState, SimProject, create_app, forged, seed_projects
from sovterm.sim.angor_relay import LocalRelay, publish, relay_command
from sovterm.sim.runner import ThreadedApp
from sovterm.store.db import Database
from sovterm.tui.app import SovtermApp
from sovterm.tui.screens.angor import AngorScreen, FollowScreen
from sovterm.tui.screens.confirm import ConfirmScreen
from tests.notify.receivers import free_port
from tests.tui.helpers import plain, until

pytestmark = pytest.mark.skipif(relay_command() is None, reason="the nostr-relay package (test extra) is not installed")


@dataclass
class World:
    relay: LocalRelay
    indexer: ThreadedApp
    state: AngorIndexerState
    projects: list[SimProject]
    forged_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    relay = LocalRelay(tmp_path_factory.mktemp("relay"), free_port()).start()
    state = AngorIndexerState(slow_s=2.0)
    projects = seed_projects(state, int(time.time()))
    indexer = ThreadedApp(create_app(state), name="angor-indexer-sim")
    # a 3030 from the second founder's key, newer, claiming a smaller target (so the project looks funded):
    # its id matches its content but the signature is the genuine event's
    genuine = projects[1].events()[0]
    fake = forged(genuine, created_at=genuine["created_at"] + 60,
                  content=json.dumps({**projects[1].info, "targetAmount": 1_000}))
    try:
        answers = asyncio.run(publish(relay.url, [e for p in projects for e in p.events()] + [fake]))
        assert all(ok for _, ok, _ in answers), answers  # the relay stores the forged one too
        yield World(relay, indexer, state, projects, fake["id"])
    finally:
        indexer.stop()
        relay.stop()


@pytest.fixture
async def monitor(world: World, tmp_path: Path) -> AsyncIterator[AngorMonitor]:
    db = await Database.open(tmp_path / "sovterm.db")
    world.state.mode = "ok"
    async with aiohttp.ClientSession() as http:
        yield AngorMonitor(db, http, indexer_url=world.indexer.url, relays=[world.relay.url], timeout_s=1.0)
    world.state.mode = "ok"
    await db.close()


def _by_id(listing: dict) -> dict[str, dict]:
    return {p["project_id"]: p for p in listing["projects"]}


async def test_projects_by_id_and_by_founder_with_the_forged_event_dropped(world: World, monitor: AngorMonitor) -> None:
    invest, legacy, _fund = world.projects
    await monitor.follow(invest.project_id)
    await monitor.follow(hex_to_npub(legacy.pubkey))
    summary = await monitor.refresh()
    assert summary == {"projects": 2, "sources_ok": 2, "sources": 2, "dropped_events": 1}

    shown = _by_id(await monitor.listing())
    one = shown[invest.project_id]
    assert (one["name"], one["project_type"], one["version"], one["phase"]) == ("Solar Mining Co-op", "invest", 2, "open")
    assert (one["target_sats"], one["invested_sats"], str(one["progress_percent"])) == (50_000_000, 31_250_000, "62.50")
    assert one["investor_count"] == 7 and one["penalty_days"] == 90 and one["problems"] == []
    assert one["nostr_event_id"] == invest.project_event_id  # the event committed on chain (the indexer's)
    assert [(s["percent"], s["release_sats"]) for s in one["stages"]] == [(30, 9_375_000), (30, 9_375_000),
                                                                           (40, 12_500_000)]
    two = shown[legacy.project_id]
    assert two["follow"] == hex_to_npub(legacy.pubkey) and two["version"] == 1
    assert two["target_sats"] == 20_000_000, "the forged event's target was believed"
    assert two["nostr_event_id"] != world.forged_id
    assert (two["in_penalties_count"], two["penalty_days"], two["phase"]) == (1, 120, "stages")
    assert [s["released"] for s in two["stages"]] == [True, False, False]
    relay = (await monitor.listing())["sources"][1]
    assert relay["state"] == "ok" and relay["dropped_events"] == 1

    detail = await monitor.show(legacy.project_id)
    assert len(detail["investments"]) == 11 and sum(i["is_seeder"] for i in detail["investments"]) == 1

    await monitor.unfollow(hex_to_npub(legacy.pubkey))  # its projects go with it
    assert list(_by_id(await monitor.listing())) == [invest.project_id]
    with pytest.raises(AngorError, match="no followed project"):
        await monitor.show(legacy.project_id)
    with pytest.raises(AngorError, match="is not followed"):
        await monitor.unfollow(legacy.project_id)


async def test_indexer_slow_garbage_down_keeps_the_last_good_data(world: World, monitor: AngorMonitor,
                                                                  tmp_path: Path) -> None:
    project = world.projects[2]
    await monitor.follow(project.project_id)
    await monitor.refresh()
    good = _by_id(await monitor.listing())[project.project_id]
    assert good["invested_sats"] == 1_200_000 and good["project_type"] == "fund"

    page = await monitor.browse(1, 2)  # the indexer's project list, to find one to follow
    assert page["total"] == 3 and [p["project_id"] for p in page["projects"]] == [p.project_id for p in world.projects[1:]]
    assert [p["followed"] for p in page["projects"]] == [False, True]

    for mode, detail in (("slow", "no answer within 1 s"), ("garbage", "the answer is not JSON")):
        world.state.mode = mode
        await monitor.refresh()
        listing = await monitor.listing()
        indexer = listing["sources"][0]
        assert (indexer["state"], indexer["detail"]) == (mode, detail)
        kept = _by_id(listing)[project.project_id]
        assert kept["invested_sats"] == 1_200_000 and kept["chain_age_s"] is not None
        assert f"indexer {mode}: {detail}" in kept["problems"]
        with pytest.raises(AngorError, match=f"is {mode}: {detail}"):
            await monitor.browse(0, 10)
    world.state.mode = "ok"

    # a new monitor on the same database, whose indexer and relays are gone: the stored data and its age
    async with aiohttp.ClientSession() as http:
        dead = f"127.0.0.1:{free_port()}"
        cut_off = AngorMonitor(monitor._db, http, indexer_url=f"http://{dead}", relays=[f"ws://{dead}"], timeout_s=1.0)
        await cut_off.refresh()
        listing = await cut_off.listing()
    assert [(s["kind"], s["state"]) for s in listing["sources"]] == [("indexer", "down"), ("relay", "down")]
    kept = _by_id(listing)[project.project_id]
    assert kept["name"] == "Bitcoin Library Fund" and kept["invested_sats"] == 1_200_000
    assert "no relay answered" in kept["problems"] and kept["nostr_age_s"] >= 0


async def test_bad_relays_are_states_beside_a_good_one(world: World, monitor: AngorMonitor) -> None:
    async def nonsense(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.send_str("<html>not nostr</html>")
        await ws.receive()
        return ws

    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(5)
        return ws

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="a web page")

    app = web.Application()
    app.router.add_get("/nonsense", nonsense)
    app.router.add_get("/silent", silent)
    app.router.add_get("/page", page)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"ws://127.0.0.1:{server.port}"
        bad = AngorMonitor(monitor._db, monitor._http, indexer_url=world.indexer.url, timeout_s=1.0,
                           relays=[world.relay.url, f"{base}/nonsense", f"{base}/silent", f"{base}/page"])
        await bad.follow(world.projects[0].project_id)
        await bad.refresh()
        listing = await bad.listing()
    states = [(s["state"], s["detail"]) for s in listing["sources"][1:]]
    assert states == [("ok", ""), ("garbage", "the relay sent something that is not JSON"),
                      ("slow", "no complete answer within 1 s"), ("garbage", "not a websocket relay (HTTP 200)")]
    (project,) = listing["projects"]
    assert project["name"] == "Solar Mining Co-op" and project["problems"] == []


async def test_daemon_cli_and_screen_show_projects_and_source_health(world: World, daemon_factory) -> None:
    """One daemon: follow through the CLI, the list and a project in JSON and text, the Angor screen, then an
    indexer answering garbage shown by the CLI and the screen while the figures stay."""
    invest, legacy, _ = world.projects
    d = daemon_factory(start=False)
    d.config.write_text(d.config.read_text() + f'[angor]\nindexer_url = "{world.indexer.url}"\n'
                        f'relays = ["{world.relay.url}"]\ntimeout_s = 2.0\n')
    d.start()
    assert d.cli("angor", "follow", invest.project_id).returncode == 0
    followed = d.cli("angor", "follow", hex_to_npub(legacy.pubkey), "--json")
    assert followed.returncode == 0 and json.loads(followed.stdout)["kind"] == "founder"
    bad = d.cli("angor", "follow", "bc1qnotaproject")
    assert bad.returncode == 1 and "neither an Angor project id nor a founder's Nostr key" in bad.stderr

    listed = json.loads(d.cli("angor", "list", "--json").stdout)
    assert {p["name"] for p in listed["projects"]} == {"Solar Mining Co-op", "Open Hardware Wallet"}
    assert listed["sources"][1]["dropped_events"] == 1
    human = d.cli("angor", "show", invest.project_id)
    assert human.returncode == 0, human.stderr
    assert "raised 31,250,000 / 50,000,000 sats (62.50 %) from 7 investor(s)" in human.stdout
    assert "penalty 90 days" in human.stdout and "3. 40 % = 12,500,000 sats on" in human.stdout

    browsed = d.cli("angor", "browse", "--limit", "2")
    assert browsed.returncode == 0 and f"{invest.project_id}  block {invest.created_on_block}  7 investment(s)  followed" \
        in browsed.stdout and "(1-2 of 3; sovterm angor follow ID)" in browsed.stdout
    assert d.cli("angor", "browse", "--limit", "51").returncode != 0

    world.state.mode = "garbage"
    try:
        assert d.cli("angor", "refresh").returncode == 1
        text = d.cli("angor")
        assert text.returncode == 1 and "GARBAGE: the answer is not JSON" in text.stdout
        assert "raised 31,250,000 / 50,000,000 sats" in text.stdout  # the last good figures stay

        app = SovtermApp(d.socket_path)
        async with app.run_test(size=(150, 40)) as pilot:
            await until(pilot, lambda: app.current_mode == "dashboard" and app.session.state.connected,
                        what="dashboard")
            await pilot.press("g")
            await until(pilot, lambda: isinstance(app.screen, AngorScreen) and app.screen.overview is not None,
                        what="Angor screen")
            screen = app.screen
            assert screen.query_one(DataTable).row_count == 2
            facts = plain(screen.query_one("#angor-text", Static))
            assert "Solar Mining Co-op" in facts and "stage 3: 40 % = 12,500,000 sats" in facts
            assert "penalty 90 days" in facts and "indexer garbage: the answer is not JSON" in facts
            assert screen.query_one("#angor-progress", ProgressBar).progress == 62.5
            sources = plain(screen.query_one("#angor-sources", Static))
            assert "GARBAGE" in sources and "1 forged event(s) dropped" in sources

            world.state.mode = "ok"
            await pilot.press("x")  # the selected project's follow (the first: followed by its id)
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
            await pilot.press("y")
            await until(pilot, lambda: screen.overview is not None and len(screen.overview["projects"]) == 1,
                        what="unfollowed")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, FollowScreen), what="follow dialog")
            app.screen.query_one(Input).value = invest.project_id
            await pilot.click("#angor-save")
            await until(pilot, lambda: screen.overview is not None and len(screen.overview["projects"]) == 2,
                        timeout=15, what="followed again from the screen")
    finally:
        world.state.mode = "ok"
