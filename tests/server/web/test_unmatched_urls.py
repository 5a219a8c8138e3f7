"""Every URL the API does not serve answers the error shape, over a real server.

The cases come from the application's own ``url_map``: each ``/api`` rule and
``/ws`` with a trailing slash, a doubled slash, an empty path segment and each
method it does not take. A route added later is covered without a change here.
None of them may answer HTML or a redirect (Werkzeug merges slashes and adds
trailing ones with a 308 unless told not to).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from jobwatch.server import EmbeddedServer
from jobwatch.server.deploy.process import ServerProcess
from jobwatch.server.web.app import create_app
from tests.conftest import Api

JOB = "j1"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_CONVERTER = re.compile(r"<[^>]+>")


def _rules() -> dict[str, set[str]]:
    """Each ``/api`` and ``/ws`` URL of the app, with a job id filled in, and its methods."""
    app = create_app({"STALL_CHECK_INTERVAL": 0})
    try:
        urls: dict[str, set[str]] = {}
        for rule in app.url_map.iter_rules():
            if rule.rule.startswith("/api/") or rule.rule == "/ws":
                url = _CONVERTER.sub(JOB, rule.rule)
                urls.setdefault(url, set()).update(rule.methods or ())
        return urls
    finally:
        app.extensions["jobwatch"].close()


RULES = _rules()


def _variants(url: str) -> Iterator[str]:
    """URLs one slip away from ``url``: a trailing slash, each slash doubled, each
    path parameter empty."""
    yield url + "/"
    # Not the first slash: Python's http.server (the embedded server's base)
    # reads a request target starting with "//" as "/" (CPython gh-87389);
    # gunicorn keeps it, see test_jobwatch_serve_keeps_a_leading_double_slash.
    for at in [i for i, c in enumerate(url) if c == "/"][1:]:
        yield url[:at] + "/" + url[at:]
    if JOB in url:
        yield url.replace(JOB, "")
        yield url.replace(JOB, "") + "/"


def _error(response: requests.Response, status: int) -> None:
    where = f"{response.request.method} {response.request.path_url}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text[:200]}"
    assert response.headers["Content-Type"] == "application/json", where
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, where
    codes = {404: "not_found", 405: "method_not_allowed", 426: "upgrade_required"}
    assert error["code"] == codes[status], where


NOT_UPGRADES = [
    {},
    {"Upgrade": "h2c", "Connection": "Upgrade"},
    {"Upgrade": "websocket"},
    {"Connection": "Upgrade"},
]


def _needs_an_upgrade(response: requests.Response) -> None:
    """426 Upgrade Required (RFC 9110, section 15.5.22) in the error shape, with
    the ``Upgrade`` header it must carry."""
    _error(response, 426)
    assert response.headers["Upgrade"] == "websocket"
    assert "WebSocket upgrade" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers", NOT_UPGRADES, ids=["plain", "h2c", "no-connection", "no-upgrade"]
)
def test_ws_without_a_websocket_upgrade_is_426(api: Api, headers: dict[str, str]) -> None:
    _needs_an_upgrade(requests.get(api.base + "/ws", headers=headers, timeout=10))


def test_ws_with_another_websocket_version_is_426_naming_13(api: Api) -> None:
    """RFC 6455, section 4.2.2: a version the server does not speak gets 426 with
    the versions it does in ``Sec-WebSocket-Version``."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "8",
    }
    response = requests.get(api.base + "/ws", headers=headers, timeout=10)
    _needs_an_upgrade(response)
    assert response.headers["Sec-WebSocket-Version"] == "13"


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    server = EmbeddedServer(config={"DATABASE": ":memory:", "STALL_CHECK_INTERVAL": 0})
    api = Api(server.url)
    assert api.put(f"/api/jobs/{JOB}", json={"workerId": "w"}).status_code == 201
    yield api
    server.stop()


def test_the_rules_are_found() -> None:
    assert {"/api/health", f"/api/jobs/{JOB}/logs", f"/api/jobs/{JOB}/progress", "/ws"} <= set(
        RULES
    )


@pytest.mark.parametrize("url", sorted(RULES))
def test_a_slip_in_the_path_is_404_json_never_a_redirect(api: Api, url: str) -> None:
    for variant in _variants(url):
        for method in sorted(RULES[url] & set(METHODS)):
            response = api.session.request(
                method, api.base + variant, json={}, allow_redirects=False, timeout=10
            )
            _error(response, 404)


@pytest.mark.parametrize("url", sorted(RULES))
def test_a_method_the_url_does_not_take_is_405_json(api: Api, url: str) -> None:
    for method in sorted(set(METHODS) - RULES[url]):
        response = api.session.request(
            method, api.base + url, json={}, allow_redirects=False, timeout=10
        )
        _error(response, 405)
        assert set(response.headers["Allow"].split(", ")) == RULES[url]


@pytest.mark.parametrize(
    "url", ["/api", "/api/", "/api/nope", f"/api/jobs/{JOB}/nope", "/api/jobs//", "/api//"]
)
def test_an_unknown_url_is_404_json(api: Api, url: str) -> None:
    for method in METHODS:
        _error(api.session.request(method, api.base + url, allow_redirects=False, timeout=10), 404)


def test_jobwatch_serve_keeps_a_leading_double_slash(served: ServerProcess) -> None:
    """gunicorn passes ``//api/...`` on as it came: 404, like any doubled slash."""
    for url in ("//api/health", "/api//health", "/api/jobs//logs", "/api/health/", "//ws"):
        _error(requests.get(served.url + url, allow_redirects=False, timeout=10), 404)
    _error(requests.post(served.url + "/ws", json={}, allow_redirects=False, timeout=10), 405)
    _needs_an_upgrade(requests.get(served.url + "/ws", timeout=10))


def test_a_rule_ending_in_a_slash_asked_without_it_is_404_not_a_redirect() -> None:
    """No rule of the app ends in ``/`` under ``/api`` today; one added later
    still never redirects (Werkzeug's ``strict_slashes`` would answer 308)."""
    app = create_app({"STALL_CHECK_INTERVAL": 0})
    app.add_url_rule("/api/later/", "later", lambda: {"ok": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert requests.get(base + "/api/later/", timeout=10).json() == {"ok": True}
        _error(requests.get(base + "/api/later", allow_redirects=False, timeout=10), 404)
    finally:
        server.shutdown()
        thread.join()
        app.extensions["jobwatch"].close()
