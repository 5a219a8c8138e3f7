"""Every URL the API does not serve answers the error shape, over a real server.

The cases come from the application's own ``url_map``: each ``/api`` rule and
``/ws`` with a trailing slash, a doubled slash, an empty path segment and each
method it does not take. A route added later is covered without a change here.
None of them may answer HTML or a redirect (Werkzeug merges slashes and adds
trailing ones with a 308 unless told not to).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from jobwatch.server import EmbeddedServer
from jobwatch.server.app import create_app
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
    for at in [i for i, c in enumerate(url) if c == "/"]:
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
    assert error["code"] == {404: "not_found", 405: "method_not_allowed"}[status], where


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
    "url", ["/api", "/api/", "/api/nope", f"/api/jobs/{JOB}/nope", "//api/health", "/api/jobs//"]
)
def test_an_unknown_url_is_404_json(api: Api, url: str) -> None:
    for method in METHODS:
        _error(api.session.request(method, api.base + url, allow_redirects=False, timeout=10), 404)
