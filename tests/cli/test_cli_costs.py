"""``jobwatch costs`` against a real server on a fake clock: the table, the CSV, job
text made safe, and bad input as one line with exit code 2."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import jobwatch.cli.commands as cli
from jobwatch.cli.costs import default_tz
from jobwatch.server import EmbeddedServer
from tests.conftest import FakeClock

HOUR = 3600.0
DAY = 86400.0


@pytest.fixture
def server(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedServer]:
    config = {"DATABASE": ":memory:", "CLOCK": clock, "STALL_CHECK_INTERVAL": 0}
    with EmbeddedServer(config=config) as srv:
        monkeypatch.setenv("JOBWATCH_URL", srv.url)
        yield srv


def jobwatch(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run(server: EmbeddedServer, job_id: str, **fields: object) -> None:
    base = f"{server.url}/api/jobs/{job_id}"
    assert requests.put(base, json={"workerId": "w", **fields}, timeout=5).ok
    body = {"workerId": "w", "progress": 1}
    assert requests.post(f"{base}/progress", json=body, timeout=5).ok


@pytest.fixture
def spent(server: EmbeddedServer, clock: FakeClock) -> float:
    """Two days of spend: "resnet" at 10 an hour, 2 h before a UTC midnight and 1 h
    after, a provider-less "bert" at 6 an hour for 1 h after it, and a name that tries to
    act on a terminal and on a spreadsheet. Returns that midnight."""
    midnight = (clock() // DAY + 2) * DAY
    clock.advance(midnight - 2 * HOUR - clock())
    run(server, "a", name="resnet", pricePerHour=10.0, providerId="aws")
    clock.advance(2 * HOUR)
    run(server, "b", name="bert", pricePerHour=6.0)
    run(server, "evil", name="=HYPERLINK(1)\x1b]0;pwned\x07", pricePerHour=1.0)
    clock.advance(HOUR)
    requests.post(f"{server.url}/api/jobs/a/complete", json={"workerId": "w"}, timeout=5)
    return midnight


def test_the_table_shows_each_group_and_each_day(
    spent: float, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = jobwatch(capsys, "costs", "--since", "2d", "--by", "name", "--tz", "UTC")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].endswith("(UTC), by name; running jobs up to now.")
    rows = {line.split()[0]: line.split() for line in lines if line.split()}
    assert rows["resnet"][1:] == ["QUBIC", "30.00", "3.0", "1", "0"]  # 2 h + 1 h at 10
    assert rows["bert"][1:] == ["QUBIC", "6.00", "1.0", "1", "1"]
    assert rows["total"] == ["total", "37.00"]
    assert "\x1b" not in out and "\x07" not in out


def test_csv_has_a_row_per_day_and_group_and_defuses_formulas(
    spent: float, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = jobwatch(
        capsys, "costs", "--since", "2d", "--by", "name", "--csv", "--tz", "UTC"
    )
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["date", "name", "currency", "cost"]
    by = {(r[0], r[1]): float(r[3]) for r in rows[1:]}
    days = sorted({r[0] for r in rows[1:]})
    assert len(days) == 2
    assert by[days[0], "resnet"] == pytest.approx(20)
    assert by[days[1], "resnet"] == pytest.approx(10)
    assert by[days[1], "bert"] == pytest.approx(6)
    evil = [name for _, name in by if "HYPERLINK" in name]
    assert evil and all(name.startswith("'=") and "\x1b" not in name for name in evil)

    code, out, _ = jobwatch(capsys, "costs", "--since", "1d", "--csv", "--by", "provider")
    providers = {r[1] for r in csv.reader(io.StringIO(out))}
    assert providers == {"provider", "aws", ""}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--since", "banana"], "--since: since must be '<N>d' with N from 1 to 366"),
        (["--since", "400d"], "N from 1 to 366"),
        (["--tz", "Mars/Olympus"], "--tz: tz must be an IANA time zone"),
        (["--tz", "localtime"], "--tz: tz must be an IANA time zone"),
        (["--since", "\uff17d"], "N from 1 to 366"),
        (["--since", "2001-01-01"], "more than 366 days ago"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, out, err = jobwatch(capsys, "costs", *argv)
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_unknown_group_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["costs", "--by", "unknown"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'unknown' (choose from 'provider', 'tenant', 'name')" in (
        capsys.readouterr().err
    )


def test_without_tz_the_header_names_this_machines_zone(
    spent: float, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    monkeypatch.setattr("jobwatch.cli.costs.LOCALTIME", Path("/nonexistent/localtime"))
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "+0000")
    code, out, err = jobwatch(capsys, "costs", "--since", "2d")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].endswith("(UTC); running jobs up to now."), out


def test_the_default_zone_is_tz_then_the_systems_zone_then_its_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zones = tmp_path / "usr/share/zoneinfo"
    for name in ("Europe/Paris", "Etc/UTC", "posixrules"):
        (zones / name).parent.mkdir(parents=True, exist_ok=True)
        (zones / name).write_bytes(b"TZif")
    paris, utc, rules = (tmp_path / "paris", tmp_path / "utc", tmp_path / "rules")
    paris.symlink_to(zones / "Europe/Paris")
    utc.symlink_to(zones / "Etc/UTC")
    rules.symlink_to(zones / "posixrules")
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    assert default_tz(paris) == "Asia/Tokyo"
    for not_a_zone in ("localtime", "posixrules", "Factory", "CET-1CEST"):
        monkeypatch.setenv("TZ", not_a_zone)
        assert default_tz(paris) == "Europe/Paris"
    monkeypatch.delenv("TZ")
    assert default_tz(utc) == "UTC"
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "+0530")
    assert default_tz(tmp_path / "missing") == "+05:30"
    assert default_tz(rules) == "+05:30"
    monkeypatch.setattr("time.strftime", lambda fmt, *a: "+0000")
    assert default_tz(tmp_path / "missing") == "UTC"
