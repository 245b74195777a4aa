"""The read-only status page (`GET /`, `GET /status.json`) for people who never open a terminal.

Umbrel lists only apps that open to a web page, and a bookkeeper may never touch a terminal, so the
listener shows connector states, readiness, loops and the sync queue, plus how to open the TUI. It can
change nothing and holds no secret. On StartOS nothing authenticates this page, so it also shows no
amounts, customer names, store or invoice ids: counts, rates, states and ages only (an operator whose page
is behind a login may turn on `[status_page] show_amounts`). Every value is escaped; the page needs no
JavaScript: its chart is SVG drawn here.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from aiohttp import web

from sovterm import __version__, alerts
from sovterm.alerts import SYNC_TIMEOUT_S, SyncRead
from sovterm.analytics.report import Report
from sovterm.formatting import age, money_text, percent
from sovterm.services import Services
from sovterm.web.app import SERVICES, page_policy, readiness

RECENT_LIMIT = 10
REFRESH_S = 30
ANALYTICS_MAX_AGE_S = 60.0  # the page's report is shared this long between visitors (the listener is public)
POSTING_OK = {"posted": True, "pending": None, "voiding": None}  # True green, None amber, else red
SEVERITY_OK = {"error": False, "warning": None, "info": True}  # the badge colour of an alert
QUEUE_FIELDS = ("queued", "running", "dead", "held", "unmatched")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _scalar_numbers(data: Any) -> dict[str, float | int | None]:
    """Only counts and ages from a part's status: never its strings (they may name customers)."""
    if not isinstance(data, dict):
        data = vars(data) if hasattr(data, "__dict__") else {}
    return {
        str(k): v for k, v in data.items()
        if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
    }


def _posting(item: Any, now: float) -> dict[str, Any]:
    get = item.get if isinstance(item, dict) else (lambda k, d=None: getattr(item, k, d))
    age = get("age_s")
    if age is None:
        at = get("posted_at") or get("updated_at") or get("created_at") or get("at")
        age = round(now - float(at), 1) if isinstance(at, (int, float)) else None
    return {
        "entity": str(get("entity") or ""),
        "kind": str(get("kind") or ""),
        "status": str(get("status") or ""),
        "age_s": age,
    }


async def sync_view(services: Services, sync: SyncRead, now: float) -> dict[str, Any]:
    if sync.summary is None:
        return {"available": False}
    out: dict[str, Any] = {"available": True, "summary": _scalar_numbers(sync.summary), "recent": []}
    if sync.error:
        out["error"] = sync.error
    recent = getattr(services.sync, "recent", None)
    if callable(recent):
        try:
            items = await asyncio.wait_for(recent(RECENT_LIMIT), SYNC_TIMEOUT_S)
            out["recent"] = [_posting(i, now) for i in list(items)[:RECENT_LIMIT]]
        except Exception as exc:  # the page reports a part's failure, it never fails with it
            out.setdefault("error", f"recent postings unavailable ({type(exc).__name__})")
    return out


def analytics_view(report: Report, show_amounts: bool) -> dict[str, Any]:
    """The shop's figures for the page: counts and rates always; money only when the operator allows it."""
    total_payments = sum(m.payments for m in report.methods) or 1
    out: dict[str, Any] = {
        "available": True,
        "days": (report.date_to - report.date_from).days + 1,
        "created": report.created,
        "settled": report.settled,
        "conversion": str(report.rate(report.converted)),
        "expired_rate": str(report.rate(report.expired)),
        "methods": [{"method": m.method, "share": str((Decimal(m.payments) / total_payments).quantize(Decimal("0.0001")))}
                    for m in report.methods if m.payments],
        "series": [{"period": b.period, "settled": b.settled} for b in report.series],
    }
    if show_amounts:
        out.update(currency=report.currency, volume=f"{report.volume:.2f}", average_ticket=f"{report.average_ticket:.2f}")
        for row, bucket in zip(out["series"], report.series, strict=True):
            row["volume"] = f"{bucket.volume:.2f}"
    return out


async def _analytics(services: Services) -> dict[str, Any]:
    analytics = services.analytics
    if analytics is None:
        return {"available": False}
    page = services.settings.status_page
    today = date.today()
    try:
        report = await asyncio.wait_for(
            analytics.shared_report(today - timedelta(days=page.analytics_days - 1), today,
                                    max_age_s=ANALYTICS_MAX_AGE_S), SYNC_TIMEOUT_S)
    except Exception as exc:  # the page reports a part's failure, it never fails with it
        return {"available": False, "error": f"analytics unavailable ({type(exc).__name__})"}
    return analytics_view(report, page.show_amounts)


async def status_view(services: Services) -> dict[str, Any]:
    """What the page shows, as data (also served as /status.json); the alerts come from `sovterm.alerts`."""
    now = time.time()
    ready, checks = await readiness(services)
    connectors = [
        {"name": name, "state": c["state"], "detail": c["detail"], "ready": c["ready"],
         "since_s": round(now - c["since"], 1)}
        for name, c in sorted(services.connectors.snapshot().items())
    ]
    loops = [
        {"name": name, "fresh": b["fresh"], "paused": b["paused"], "interval_s": b["interval_s"],
         "last_run_age_s": b["last_run_age_s"], "last_ok": b["last_ok"]}
        for name, b in sorted((checks.get("loops") or {}).items())
    ]
    sync = await alerts.read_sync(services.sync)
    return {
        "sovterm": __version__,
        "ready": ready,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "database": checks.get("database"),
        "disk_free_mb": checks.get("disk_free_mb"),
        "connectors": connectors,
        "loops": loops,
        "sync": await sync_view(services, sync, now),
        "analytics": await _analytics(services),
        "alerts": [a.model_dump(mode="json") for a in await alerts.for_daemon(services, ready, checks, sync)],
    }


# ---- HTML -----------------------------------------------------------------------------------------


def _badge(ok: bool | None, text: str) -> str:
    cls = "ok" if ok else ("warn" if ok is None else "bad")
    return f'<span class="badge {cls}">{escape(text)}</span>'


def _connectors(view: dict[str, Any]) -> str:
    if not view["connectors"]:
        return '<p class="muted">No connector has reported yet.</p>'
    rows = "".join(
        f"<tr><th scope=row>{escape(c['name'])}</th><td>{_badge(c['ready'], c['state'].replace('_', ' '))}</td>"
        f"<td class=detail>{escape(c['detail'])}</td><td class=nowrap>since {escape(age(c['since_s']).removesuffix(' ago'))}</td></tr>"
        for c in view["connectors"]
    )
    return f'<div class="scroll"><table class="stack"><tbody>{rows}</tbody></table></div>'


def _sync(view: dict[str, Any]) -> str:
    sync = view["sync"]
    if not sync.get("available"):
        return '<p class="muted">Sync not set up yet.</p>'
    s = sync.get("summary", {})
    tiles = "".join(
        f'<div class="tile{" alert" if k in ("dead", "held", "unmatched") and s.get(k) else ""}">'
        f'<span class="num">{escape("–" if s.get(k) is None else str(s[k]))}</span>'
        f'<span class="label">{escape(k)}</span></div>'
        for k in QUEUE_FIELDS
    )
    last = (
        f"<p>Last poll of BTCPay: <strong>{escape(age(s.get('last_poll_age_s')))}</strong> · "
        f"last QuickBooks posting: <strong>{escape(age(s.get('last_posting_age_s')))}</strong></p>"
    )
    recent = sync.get("recent") or []
    if recent:
        items = "".join(
            f"<tr><td>{escape(p['entity'] or p['kind'])}</td><td>{escape(p['kind'])}</td>"
            f"<td>{_badge(POSTING_OK.get(p['status'], False), p['status'] or '?')}</td>"
            f"<td class=nowrap>{escape(age(p['age_s']))}</td></tr>"
            for p in recent
        )
        table = (
            "<h3>Recent postings</h3><div class=scroll><table><thead><tr><th>Document</th><th>For</th>"
            f"<th>State</th><th>When</th></tr></thead><tbody>{items}</tbody></table></div>"
        )
    else:
        table = f'<p class="muted">{escape(sync.get("error") or "No postings yet.")}</p>'
    return f'<div class="tiles">{tiles}</div>{last}{table}'


CHART_W, CHART_H = 600, 120


def bar_chart(values: list[int], labels: list[str], what: str) -> str:
    """Bars drawn on the server as inline SVG (no script, no external asset); integer geometry from integer
    values (counts, or cents)."""
    top = max(values, default=0) or 1
    width = CHART_W // max(len(values), 1)
    bars = "".join(
        f'<rect x="{i * width + 1}" y="{CHART_H - v * CHART_H // top}" width="{max(width - 2, 1)}" '
        f'height="{v * CHART_H // top}"><title>{escape(label)}: {escape(text)}</title></rect>'
        for i, (v, label, text) in enumerate(zip(values, labels, _bar_texts(values, what), strict=True))
    )
    return (f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" preserveAspectRatio="none" role="img" '
            f'aria-label="{escape(what)} per day">{bars}</svg>')


def _bar_texts(values: list[int], what: str) -> list[str]:
    if what.startswith("volume"):
        return [f"{Decimal(v) / 100:,.2f}" for v in values]
    return [str(v) for v in values]


def _analytics_html(view: dict[str, Any]) -> str:
    a = view.get("analytics") or {}
    if not a.get("available"):
        return f'<p class="muted">{escape(a.get("error") or "No analytics yet.")}</p>'
    tiles = [("created", str(a["created"])), ("settled", str(a["settled"])),
             ("conversion", percent(a["conversion"])), ("expired", percent(a["expired_rate"]))]
    if "volume" in a:
        tiles += [("volume", money_text(Decimal(a["volume"]), a["currency"])),
                  ("average ticket", money_text(Decimal(a["average_ticket"]), a["currency"]))]
        chart = bar_chart([int(Decimal(b["volume"]) * 100) for b in a["series"]], [b["period"] for b in a["series"]],
                          f"volume ({a['currency']})")
        title = f"Settled volume ({escape(a['currency'])}) per day"
    else:
        chart = bar_chart([b["settled"] for b in a["series"]], [b["period"] for b in a["series"]], "settled invoices")
        title = "Settled invoices per day"
    html_tiles = "".join(f'<div class="tile"><span class="num">{escape(v)}</span><span class="label">{escape(k)}</span>'
                         "</div>" for k, v in tiles)
    methods = " · ".join(f"{escape(m['method'])} {escape(percent(m['share']))}" for m in a["methods"])
    return (f'<p class="muted">Last {a["days"]} days, every followed store.</p><div class="tiles">{html_tiles}</div>'
            f"<h3>{title}</h3>{chart}"
            + (f"<p>Payments by method: {methods}</p>" if methods else ""))


def _loops(view: dict[str, Any]) -> str:
    if not view["loops"]:
        return '<p class="muted">No scheduled loops.</p>'
    rows = "".join(
        f"<tr><th scope=row>{escape(lp['name'])}</th>"
        f"<td>{_badge(lp['fresh'] and not lp['paused'], 'paused' if lp['paused'] else ('ok' if lp['fresh'] else 'stale'))}</td>"
        f"<td class=nowrap>every {float(lp['interval_s']):.0f} s</td>"
        f"<td class=nowrap>last run {escape(age(lp['last_run_age_s']))}</td></tr>"
        for lp in view["loops"]
    )
    return f'<div class="scroll"><table class="stack"><tbody>{rows}</tbody></table></div>'


TERMINAL_HELP = """
<h2 id="tui">Open the terminal UI</h2>
<p>Everything administrative (connecting BTCPay Server and QuickBooks, mappings, payouts) happens in
the terminal UI, which talks to the daemon over a private socket. Pick your platform:</p>
<div class="cards">
<section class="card"><h3>Umbrel</h3>
<ol><li>In umbrelOS open the <strong>Terminal</strong> (in Settings) and choose to run commands
within the <strong>Sovterm</strong> app (it opens a shell in the daemon's container), then run
<code>sovterm tui</code>.</li>
<li>Or over SSH: <code>ssh umbrel@umbrel.local</code>, then
<code>docker exec -it sovterm_daemon_1 sovterm tui</code>.</li></ol></section>
<section class="card"><h3>StartOS</h3>
<ol><li><code>ssh start9@&lt;your-server&gt;.local</code></li>
<li>StartOS 0.4: <code>start-cli package attach sovterm</code>, then <code>sovterm tui</code>.<br>
StartOS 0.3.5: <code>sudo podman exec -it sovterm.embassy sovterm tui</code>.</li></ol></section>
<section class="card"><h3>Debian (systemd)</h3>
<ol><li>Log in over SSH as a member of <code>sovterm-admin</code> (and <code>sovterm-viewer</code>).</li>
<li>Run <code>sovterm tui</code>.</li></ol></section>
</div>
<p class="muted">Quit the TUI with <kbd>ctrl+q</kbd>; the daemon keeps running. <code>sovterm status</code>
prints this overview in a terminal.</p>
"""

CSS = """
:root{color-scheme:light dark;--bg:#f7f7f5;--fg:#1d1d1f;--muted:#5f6368;--card:#fff;--line:#dcdcd8;
--ok:#1a7f37;--okbg:#dafbe1;--bad:#b42318;--badbg:#fee4e2;--warn:#8a5a00;--warnbg:#fff4cc;--accent:#f7931a}
@media (prefers-color-scheme:dark){:root{--bg:#121212;--fg:#ececec;--muted:#a0a0a0;--card:#1d1d1d;
--line:#333;--ok:#6bdc8a;--okbg:#10301b;--bad:#ff8a80;--badbg:#3d1512;--warn:#ffd36b;--warnbg:#3a2e0c}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:62rem;margin:0 auto;padding:1rem}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;border-bottom:3px solid var(--accent);padding-bottom:.5rem}
header h1{margin:0;font-size:1.5rem} header .meta{color:var(--muted);font-size:.9rem;margin-left:auto}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem} h3{font-size:1rem;margin:.75rem 0 .25rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem 1rem}
.cards{display:grid;gap:.75rem;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr))}
.cards ol{padding-left:1.2rem;margin:.25rem 0}
.scroll{overflow-x:auto} table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th[scope=row]{font-weight:600} .nowrap{white-space:nowrap}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-size:.85rem;font-weight:600;white-space:nowrap}
.badge.ok{color:var(--ok);background:var(--okbg)} .badge.bad{color:var(--bad);background:var(--badbg)}
.badge.warn{color:var(--warn);background:var(--warnbg)}
.alerts{border-left:4px solid var(--bad)} .alerts ul{margin:.25rem 0;padding-left:1.2rem} .alerts li{margin:.25rem 0}
.fix{color:var(--muted);font-size:.9rem}
.tiles{display:grid;gap:.5rem;grid-template-columns:repeat(auto-fit,minmax(7rem,1fr))}
.tile{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.5rem;text-align:center}
.tile .num{display:block;font-size:1.6rem;font-weight:700} .tile .label{color:var(--muted);font-size:.85rem}
.tile.alert{border-color:var(--bad)} .tile.alert .num{color:var(--bad)}
code,kbd{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;background:var(--bg);
border:1px solid var(--line);border-radius:.25rem;padding:0 .25rem;overflow-wrap:anywhere}
.muted{color:var(--muted)} footer{color:var(--muted);font-size:.85rem;margin:2rem 0 1rem}
td{overflow-wrap:anywhere}
.chart{display:block;width:100%;height:8rem;background:var(--card);border:1px solid var(--line);border-radius:.5rem}
.chart rect{fill:var(--accent)}
@media (max-width:36rem){main{padding:.6rem} header .meta{margin-left:0;width:100%} th,td{padding:.35rem .3rem}
table.stack,.stack tbody,.stack tr{display:block} .stack tr{border-bottom:1px solid var(--line);padding:.3rem 0}
.stack th,.stack td{display:inline-block;border:none;padding:.1rem .4rem .1rem 0}
.stack td.detail{display:block}}
"""


PAGE_HEADERS = {**HEADERS, "Content-Security-Policy": page_policy(f"<style>{CSS}</style>")}


def _alert(alert: dict[str, Any], now: float) -> str:
    since = age(now - alert["since"]).removesuffix(" ago")
    return (f'<li>{_badge(SEVERITY_OK[alert["severity"]], alert["severity"])} {escape(alert["text"])}'
            f' <span class="muted nowrap">since {escape(since)}</span><br>'
            f'<span class="fix">{escape(alert["fix"])}</span></li>')


def render(view: dict[str, Any]) -> str:
    now = time.time()
    alert_box = (
        '<section class="card alerts" aria-label="Alerts"><strong>Needs attention</strong><ul>'
        + "".join(_alert(a, now) for a in view["alerts"]) + "</ul></section>"
        if view["alerts"] else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>Sovterm status</title><style>{CSS}</style></head>
<body><main>
<header><h1>Sovterm</h1>{_badge(view["ready"], "Ready" if view["ready"] else "Not ready")}
<span class="meta">version {escape(view["sovterm"])} · updated {escape(view["generated_at"])}</span></header>
{alert_box}
<h2>Connections</h2>{_connectors(view)}
<h2>Shop</h2>{_analytics_html(view)}
<h2>Sync</h2>{_sync(view)}
<h2>Scheduled loops</h2>{_loops(view)}
<h2>System</h2><p>Database: {escape(str(view["database"]))} · free disk: {escape(str(view["disk_free_mb"]))} MB</p>
{TERMINAL_HELP}
<footer>This page is read-only and holds no secrets; it refreshes every {REFRESH_S} s.
The same data as JSON: <a href="status.json">status.json</a>.</footer>
</main></body></html>
"""


async def status_page(request: web.Request) -> web.Response:
    view = await status_view(request.app[SERVICES])
    return web.Response(text=render(view), content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


async def status_json(request: web.Request) -> web.Response:
    return web.json_response(await status_view(request.app[SERVICES]), headers=HEADERS)


def add_routes(app: web.Application) -> None:
    """GET (and HEAD) only: any other method gets 405 from aiohttp's router."""
    app.router.add_get("/", status_page)
    app.router.add_get("/status.json", status_json)
