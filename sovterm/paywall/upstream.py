"""What a paid request reaches: an upstream on this machine (proxied with aiohttp, our one HTTP client) or a
directory of files (served without ever leaving it)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

#: Never forwarded either way: hop-by-hop headers (RFC 9110 §7.6.1), and the payment credentials.
HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding",
    "Upgrade", "Host", "Content-Length",
))
CREDENTIALS = frozenset(("authorization", "payment-signature", "x-payment"))
CHUNK = 64 * 1024


def file_in(directory: Path, tail: str) -> Path | None:
    """The regular file `tail` names inside `directory` (its `index.html` for a directory), or None: `..`,
    absolute paths and symlinks leading out of the directory all resolve outside it and are refused."""
    if "\x00" in tail or "\\" in tail:
        return None
    root = directory.resolve()
    target = (root / tail.lstrip("/")).resolve()
    if not target.is_relative_to(root):
        return None
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


async def serve_file(request: web.Request, directory: Path, tail: str, headers: dict[str, str]) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        return web.json_response({"error": "method not allowed"}, status=405, headers={"Allow": "GET, HEAD", **headers})
    target = file_in(directory, tail)
    if target is None:
        return web.json_response({"error": "not found"}, status=404, headers=headers)
    return web.FileResponse(target, headers=headers)


async def proxy(request: web.Request, session: aiohttp.ClientSession, base: str, tail: str,
                headers: dict[str, str]) -> web.StreamResponse:
    """Forward the request to `base` + `tail` and stream the answer back, with `headers` added."""
    url = base + "/" + tail.lstrip("/")
    forwarded = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | CREDENTIALS}
    body = request.content if request.body_exists else None
    response: web.StreamResponse | None = None
    try:
        async with session.request(request.method, url, params=request.rel_url.query, headers=forwarded, data=body,
                                   allow_redirects=False, auto_decompress=False) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            response.headers.update(headers)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
    except aiohttp.ClientError:
        if response is not None and response.prepared:
            raise  # the answer has started: the client sees the connection end early, as upstream's did
        return web.json_response({"error": "upstream unavailable"}, status=502, headers=headers)
