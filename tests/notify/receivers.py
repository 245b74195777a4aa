"""Real destinations on loopback for notification tests: an HTTP receiver (apprise's json:// posts to it;
a /hang/ path accepts and never answers) and an SMTP server (aiosmtpd). Starting and stopping them is
bounded: a receiver that does not stop fails the test with a message instead of hanging it."""

from __future__ import annotations

import json
import threading
from email import message_from_string
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.daemon import free_port

STOP_TIMEOUT_S = 5.0


def stop_within(stop: Any, what: str) -> None:
    """Run a blocking stop (server shutdown, thread join) in a helper thread and give it STOP_TIMEOUT_S."""
    stopper = threading.Thread(target=stop, name=f"stop {what}", daemon=True)
    stopper.start()
    stopper.join(STOP_TIMEOUT_S)
    assert not stopper.is_alive(), f"the {what} did not stop within {STOP_TIMEOUT_S:.0f} s"


class HTTPReceiver:
    def __init__(self, port: int | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/hang/"):
                    receiver.release.wait(30)  # a destination that takes the request and never answers
                    return
                receiver.paths.append(self.path)
                receiver.posts.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def titles(self) -> list[str]:
        return [p.get("title", "") for p in self.posts]

    def close(self) -> None:
        self.release.set()
        stop_within(self.server.shutdown, "HTTP receiver")
        self.server.server_close()


class SMTPReceiver:
    def __init__(self) -> None:
        self.messages: list[str] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                receiver.messages.append(envelope.content.decode("utf-8", "replace"))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, ready_timeout=STOP_TIMEOUT_S)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=sovterm@example.com&to=ops@example.com&mode=insecure"

    def subjects(self) -> list[str]:
        return [str(make_header(decode_header(message_from_string(m)["Subject"] or ""))) for m in self.messages]

    def close(self) -> None:
        stop_within(self.controller.stop, "SMTP receiver")  # aiosmtpd joins its thread without a timeout
