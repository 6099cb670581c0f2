"""Checks of the reconcile HTML page: nothing in it reaches the network, statically and in a headless Chromium.

`external_references` reads the markup: any element that loads something (script, link, img,
iframe, …), any attribute that names a resource (src, href, …), any CSS `url(` or `@import`, and
any http(s) address at all. `render_offline` opens the page in Debian's Chromium behind a proxy
that answers and records every request: the page's own requests would all reach it (Chromium's
background calls to its update and account hosts are sent past it, and fail on this closed network).
"""

from __future__ import annotations

import contextlib
import html.parser
import pathlib
import re
import shutil
import socketserver
import subprocess
import threading
import typing as t

CHROMIUM = shutil.which("chromium")
LOADING_TAGS = frozenset({"script", "link", "img", "iframe", "frame", "object", "embed", "audio", "video", "source",
                          "track", "base", "image", "use", "input"})
RESOURCE_ATTRIBUTES = frozenset({"src", "href", "srcset", "action", "formaction", "data", "poster", "background",
                                 "xlink:href", "ping", "manifest", "codebase", "cite", "longdesc"})
# Chromium's own background hosts (component updates, account checks): sent past the proxy, never the page's.
CHROMIUM_OWN_HOSTS = "update.googleapis.com;accounts.google.com;clients2.google.com"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--no-pings", "--hide-scrollbars")


class _Markup(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in LOADING_TAGS:
            self.problems.append(f"<{tag}> element")
        for name, value in attrs:
            if name in RESOURCE_ATTRIBUTES:
                self.problems.append(f"{name}= on <{tag}>")
            if name == "style" and value and re.search(r"url\(|@import", value, re.I):
                self.problems.append(f"url( in the style of <{tag}>")
            if name == "http-equiv" and (value or "").lower() == "refresh":
                self.problems.append("meta refresh")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and re.search(r"url\(|@import", data, re.I):
            self.problems.append("url( or @import in <style>")


def external_references(text: str) -> list[str]:
    """Everything in the page that could make a browser reach the network (empty: self-contained)."""
    parser = _Markup()
    parser.feed(text)
    parser.close()
    return parser.problems + [f"address {found}" for found in re.findall(r"https?://[^\s\"'<>]*", text, re.I)]


class _Recorder(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").strip()
        self.server.seen.append(line)  # type: ignore[attr-defined]
        self.wfile.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@contextlib.contextmanager
def recording_proxy() -> t.Iterator[tuple[int, list[str]]]:
    """A local proxy that answers 404 to everything and records each request's first line."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def render_offline(page: pathlib.Path, screenshot: pathlib.Path, profile: pathlib.Path) -> list[str]:
    """Render the page in headless Chromium into a PNG; returns the requests it made (through the proxy)."""
    assert CHROMIUM is not None
    with recording_proxy() as (port, seen):
        subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1700",
                        f"--proxy-server=http://127.0.0.1:{port}", f"--proxy-bypass-list={CHROMIUM_OWN_HOSTS}",
                        f"--screenshot={screenshot}", page.resolve().as_uri()],
                       capture_output=True, timeout=120, check=True)
        return list(seen)
