"""Security headers on every page, over real HTTP to the desk under gunicorn
(``desk.web.security``): the resource policy next to the framing one, nosniff, the referrer
policy, no-store on everything that carries call data, and pages with no inline code."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

CRM = "https://crm.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("headers") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        yield live


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("headers-embed") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}", DESK_EMBED_ORIGINS=CRM), PASSWORD) as live:
        yield live


def policies(response: requests.Response) -> list[dict[str, list[str]]]:
    """Every Content-Security-Policy header of the response, as directive -> sources."""
    found = []
    for header in response.raw.headers.getlist("Content-Security-Policy"):
        for policy in header.split(","):  # one header may also carry several, comma-joined
            directives: dict[str, list[str]] = {}
            for part in policy.split(";"):
                name, *sources = part.split()
                directives[name] = sources
            found.append(directives)
    return found


def check_headers(response: requests.Response, server: LiveServer, *,
                  frame_ancestors: list[str], cached: bool = False) -> None:
    where = f"{response.request.method} {response.url} ({response.status_code})"
    framing, resources = policies(response)
    assert framing == {"frame-ancestors": frame_ancestors}, where
    assert resources == {
        "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"],
        "img-src": ["'self'", "data:"], "media-src": ["'self'", "https:"],
        "connect-src": ["'self'", f"ws://127.0.0.1:{server.port}"],
        "base-uri": ["'self'"], "form-action": ["'self'"], "object-src": ["'none'"],
    }, where
    assert response.headers["X-Content-Type-Options"] == "nosniff", where
    assert response.headers["Referrer-Policy"] == "same-origin", where
    if cached:
        assert "no-store" not in response.headers.get("Cache-Control", ""), where
    else:
        assert response.headers["Cache-Control"] == "no-store", where


class InlineCode(HTMLParser):
    """What a page carries that the policy would block: inline scripts, styles, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _value in attrs}
        # A data block (<script type="application/json">, the page's catalogue) is never
        # run, so the policy has nothing to block; any other script without src is code.
        data = ("type", "application/json") in attrs
        if tag == "script" and "src" not in names and not data:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {name}=" for name in names
                       if name == "style" or name.startswith(("on", "hx-on"))]


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def login(server: LiveServer, name: str) -> requests.Session:
    return server.login(name, PASSWORD)


def test_every_page_carries_the_headers_and_no_inline_code(server: LiveServer) -> None:
    incoming = server.placetel(event="IncomingCall", call_id="hdr-1", to="0221",
                               **{"from": "022129191999"})
    assert incoming.ok
    url = server.url
    anonymous = requests.Session()
    sue, ann = login(server, "sue"), login(server, "ann")
    call_id = sue.get(url + "/api/v1/calls", timeout=10).json()["calls"][0]["id"]
    pages = [
        (anonymous, "/login"), (anonymous, "/no-such-page"), (anonymous, "/healthz"),
        (ann, "/"), (ann, "/history"), (ann, "/history.csv"),
        (sue, "/supervisor"), (sue, f"/calls/{call_id}"), (sue, "/history"),
        (sue, "/history.csv"), (sue, "/audit"), (sue, "/wallboard"), (sue, "/wallboard/counters"),
        (sue, "/routing"), (sue, "/api/v1/calls"), (sue, f"/api/v1/calls/{call_id}"),
        (sue, "/api/v1/calls/999999"),
    ]
    for session, path in pages:
        response = session.get(url + path, timeout=10, allow_redirects=False)
        assert response.status_code == (404 if "no-such" in path or "999999" in path else 200), path
        check_headers(response, server, frame_ancestors=["'self'"])
        if response.headers["Content-Type"].startswith("text/html"):
            assert not inline_code(response.text), (path, inline_code(response.text))
    check_headers(incoming, server, frame_ancestors=["'self'"])  # a webhook's answer too
    check_headers(anonymous.get(url + "/", timeout=10, allow_redirects=False), server,
                  frame_ancestors=["'self'"])  # the redirect to the login page
    static = anonymous.get(url + "/static/board/desk.js", timeout=10)
    assert static.ok
    check_headers(static, server, frame_ancestors=["'self'"], cached=True)


def test_the_board_pages_configure_htmx_without_its_injected_styles(server: LiveServer) -> None:
    page = login(server, "ann").get(server.url + "/", timeout=10).text
    assert """<meta name="htmx-config" content='{"includeIndicatorStyles": false}'>""" in page
    css = requests.get(server.url + "/static/board/desk.css", timeout=10).text
    assert ".htmx-request .htmx-indicator" in css


def test_the_websocket_source_names_the_host_asked_for_and_nothing_odd(
    server: LiveServer,
) -> None:
    named = requests.get(server.url + "/login", headers={"Host": "desk.example.com"}, timeout=10)
    assert policies(named)[1]["connect-src"] == ["'self'", "ws://desk.example.com"]
    odd = requests.get(server.url + "/login", headers={"Host": "x;script-src *"}, timeout=10)
    assert policies(odd)[1]["connect-src"] == ["'self'"]
    assert policies(odd)[1]["script-src"] == ["'self'"]


def test_embed_pages_carry_the_headers_with_the_crm_allowed_to_frame(
    embed_server: LiveServer,
) -> None:
    url = embed_server.url
    hubspot = requests.get(url + "/embed/hubspot", timeout=10)
    assert hubspot.ok
    check_headers(hubspot, embed_server, frame_ancestors=["'self'", CRM])
    assert not inline_code(hubspot.text), inline_code(hubspot.text)
    assert "embed/hubspot.js" in hubspot.text

    # The popup's last page, logged in first party. With embedding on the session cookie is
    # Secure; this test speaks plain HTTP, so its client sends the cookie anyway.
    popup = requests.Session()

    def plain_http() -> None:
        for cookie in popup.cookies:
            cookie.secure = False

    page = popup.get(url + "/login", timeout=10).text
    plain_http()
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    logged_in = popup.post(url + "/login", data={"name": "ann", "password": PASSWORD,
                                                 "csrf_token": token},
                             timeout=10, allow_redirects=False)
    assert logged_in.status_code == 302, logged_in.text[:300]
    plain_http()
    done = popup.get(url + "/embed/login", timeout=10)
    assert done.ok and 'id="handoff"' in done.text
    check_headers(done, embed_server, frame_ancestors=["'self'", CRM])
    assert not inline_code(done.text), inline_code(done.text)
    board = popup.get(url + "/", timeout=10)
    check_headers(board, embed_server, frame_ancestors=["'self'", CRM])
    assert not inline_code(board.text), inline_code(board.text)


def test_in_demo_mode_recordings_may_play_from_the_simulated_mediaservice(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path: Path = tmp_path_factory.mktemp("headers-demo") / "desk.sqlite3"
    env = {k: v for k, v in desk_env(f"sqlite:///{path}").items()
           if not k.startswith("DESK_PLACETEL_")}  # no provider: the simulators may run
    env.update(DESK_DEMO="1", DESK_SIMULATE="1", DESK_SIMULATE_RATE="0.1")
    with running_desk(env, PASSWORD) as demo:
        # Its own address, as the simulators reach it; a browser may call it localhost.
        media = policies(requests.get(demo.url + "/login", timeout=10))[1]["media-src"]
        assert media == ["'self'", "https:", f"http://127.0.0.1:{demo.port}"]
