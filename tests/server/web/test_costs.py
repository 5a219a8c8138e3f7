"""``GET /api/costs``: spend per day and per group, finished and running jobs alike,
cut at midnight in the asked time zone and at price changes; bad input is a 400
naming what is allowed. On SQLite and on PostgreSQL, against a real server whose
clock is a :class:`~tests.conftest.FakeClock`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from jobwatch.server import EmbeddedServer
from tests.conftest import Api, FakeClock
from tests.services import fresh_schema, scale_urls

HOUR = 3600.0
DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Api]:
    config: dict[str, Any] = {"CLOCK": clock, "STALL_CHECK_INTERVAL": 0}
    if request.param == "sqlite":
        server = EmbeddedServer(config={**config, "DATABASE": ":memory:"})
        yield Api(server.url)
        server.stop()
        return
    postgres, _ = scale_urls()
    with fresh_schema(postgres) as url:
        server = EmbeddedServer(config={**config, "DATABASE": url})
        yield Api(server.url)
        server.stop()


@pytest.fixture(scope="module")
def checks() -> Iterator[Api]:
    """One SQLite server for the checks of bad input (they do not reach the store)."""
    server = EmbeddedServer(config={"DATABASE": ":memory:", "STALL_CHECK_INTERVAL": 0})
    yield Api(server.url)
    server.stop()


def at(clock: FakeClock, when: float) -> None:
    clock.advance(when - clock())


def run(api: Api, job_id: str, **fields: Any) -> None:
    assert api.put(f"/api/jobs/{job_id}", json={"workerId": "w", **fields}).status_code == 201
    assert api.post(f"/api/jobs/{job_id}/progress", json={"workerId": "w", "progress": 1}).ok


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).date().isoformat()


def test_spend_per_day_and_per_name_cut_at_midnight_and_at_price_changes(
    api: Api, clock: FakeClock
) -> None:
    midnight = (clock() // DAY + 2) * DAY  # a UTC midnight ahead of the clock
    at(clock, midnight - 2 * HOUR)
    run(api, "a", name="resnet", pricePerHour=10.0)  # 22:00
    assert api.put("/api/jobs/pending", json={"name": "idle", "pricePerHour": 99.0}).ok
    at(clock, midnight - HOUR)
    api.put("/api/jobs/a", json={"workerId": "w", "pricePerHour": 20.0})  # 23:00, repriced
    at(clock, midnight + HOUR)
    run(api, "b", name="bert", pricePerHour=6.0)  # 01:00, still running at 04:00
    run(api, "u", name="unpriced")  # 01:00, no price
    at(clock, midnight + 2 * HOUR)
    assert api.post("/api/jobs/a/complete", json={"workerId": "w"}).ok  # 02:00
    run(api, "c", name="resnet", pricePerHour=1.0, currency="EUR")
    at(clock, midnight + 4 * HOUR)

    answer = api.get("/api/costs?since=2d&by=name&tz=UTC")
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["days"] == [day(midnight - DAY), day(midnight)]
    assert report["by"] == "name" and report["timeZone"] == "UTC"
    assert report["since"] == datetime.fromtimestamp(midnight - DAY, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    groups = {(g["group"], g["currency"]): g for g in report["groups"]}
    # a: 1 h at 10 and 1 h at 20 before midnight, 2 h at 20 after
    assert groups["resnet", "QUBIC"]["daily"] == [pytest.approx(30), pytest.approx(40)]
    assert groups["resnet", "QUBIC"]["hours"] == pytest.approx(4)
    assert (groups["resnet", "QUBIC"]["jobs"], groups["resnet", "QUBIC"]["running"]) == (1, 0)
    assert groups["bert", "QUBIC"]["daily"] == [0, pytest.approx(18)]  # 3 h at 6, running
    assert groups["bert", "QUBIC"]["running"] == 1
    assert groups["resnet", "EUR"]["cost"] == pytest.approx(2)  # never added to QUBIC
    assert [g["group"] for g in report["groups"]] == ["resnet", "bert", "resnet"]  # costliest
    totals = {t["currency"]: t for t in report["totals"]}
    assert totals["QUBIC"]["daily"] == [pytest.approx(30), pytest.approx(58)]
    assert totals["QUBIC"]["cost"] == pytest.approx(88)
    assert report["unpriced"] == {"jobs": 1, "hours": pytest.approx(3)}
    # the days' sum is the cost the job's own figures show
    assert api.get("/api/jobs/a/receipt").json()["cost"] == pytest.approx(70)

    # in UTC+02:00 the whole of a's run falls on one local day
    shifted = api.get("/api/costs?since=1d&by=name&tz=%2B02:00").json()
    shifted_groups = {(g["group"], g["currency"]): g for g in shifted["groups"]}
    assert shifted_groups["resnet", "QUBIC"]["daily"] == [pytest.approx(70)]
    # today alone (UTC): what ran since midnight
    today = api.get("/api/costs?since=1d").json()
    assert today["groups"] == [] and today["by"] is None
    assert {t["currency"]: t["cost"] for t in today["totals"]} == {
        "QUBIC": pytest.approx(58),
        "EUR": pytest.approx(2),
    }
    # from a date on; this month (the clock's day is past the 1st: the window is longer)
    dated = api.get(f"/api/costs?since={day(midnight)}").json()
    assert dated["days"] == [day(midnight)]
    month = api.get("/api/costs?since=month").json()
    assert month["days"][0] == day(midnight)[:8] + "01" and month["days"][-1] == day(midnight)
    assert {t["currency"]: t["cost"] for t in month["totals"]}["QUBIC"] == pytest.approx(88)


def test_a_job_that_ended_before_the_window_is_not_counted(api: Api, clock: FakeClock) -> None:
    run(api, "old", pricePerHour=5.0)
    clock.advance(HOUR)
    api.post("/api/jobs/old/complete", json={"workerId": "w"})
    clock.advance(3 * DAY)
    report = api.get("/api/costs?since=2d").json()
    assert report["totals"] == [] and report["unpriced"] == {"jobs": 0, "hours": 0}
    assert len(report["days"]) == 2


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        (
            "since=banana",
            "since",
            "'<N>d' with N from 1 to 366 (e.g. 7d), 'month' (this calendar month), or a date "
            "YYYY-MM-DD",
        ),
        ("since=0d", "since", "N from 1 to 366"),
        ("since=367d", "since", "N from 1 to 366"),
        ("since=2020-02-30", "since", "a date YYYY-MM-DD"),
        ("since=2000-01-01", "since", "at most 366 days"),
        ("since=2999-01-01", "since", "after today"),
        ("by=unknown", "by", "'provider', 'tenant' or 'name'"),
        ("tz=Mars/Olympus", "tz", "an IANA time zone (e.g. Europe/Paris), UTC"),
        ("tz=Europe", "tz", "an IANA time zone"),
        ("tz=../../etc/passwd", "tz", "an IANA time zone"),
        ("tz=%2B25:00", "tz", "an offset such as +05:30"),
        # Python's int() and regex \d take any script's digits: only ASCII ones are numbers
        ("since=\uff17d", "since", "N from 1 to 366"),
        ("since=\u0662\u0660\u0662\u0665-01-01", "since", "a date YYYY-MM-DD"),
        ("tz=%2B\uff10\uff15:30", "tz", "an offset such as +05:30"),
        # zoneinfo reads these files, but they are not IANA zones
        ("tz=localtime", "tz", "an IANA time zone"),
        ("tz=posixrules", "tz", "an IANA time zone"),
        ("tz=Factory", "tz", "an IANA time zone"),
        ("tz=posix/Europe/Paris", "tz", "an IANA time zone"),
        ("tz=right/UTC", "tz", "an IANA time zone"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_allowed(
    checks: Api, query: str, field: str, words: str
) -> None:
    answer = checks.get(f"/api/costs?{query}")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == field
    assert words in error["details"][0]["message"]


def test_the_answer_is_described_by_the_openapi_document(checks: Api) -> None:
    document = requests.get(f"{checks.base}/api/openapi.json", timeout=5).json()
    operation = document["paths"]["/api/costs"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"since", "by", "tz"}
    schema = document["components"]["schemas"]["CostsAnswer"]
    assert set(schema["required"]) == {
        "since",
        "until",
        "timeZone",
        "by",
        "days",
        "groups",
        "totals",
        "unpriced",
    }
