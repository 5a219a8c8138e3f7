"""HTTP load generation: wrk when installed (``apt-get install wrk``), else a
Python keep-alive client. Both report requests per second and latency."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    """Requests per second, latency percentiles (ms) and non-2xx answers."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


_LUA = """
local bodies = {}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%(body)s]==]
local n_jobs = %(n_jobs)d
local counter = 0
request = function()
  counter = counter + 1
  local path = "%(prefix)s" .. (counter %% n_jobs) .. "/progress"
  if n_jobs == 1 then path = "%(single)s" end
  return wrk.format(nil, path)
end
done = function(summary, latency, requests)
  io.write(string.format("JW %%d %%d %%f %%f %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def post_load(
    url: str, body: str, *, job_ids: list[str], seconds: float, connections: int = 32
) -> LoadResult:
    """POST ``body`` to ``/api/jobs/{id}/progress`` round-robin over ``job_ids``.

    ``job_ids`` must be ``[prefix + str(i) for i in range(n)]`` or a single id.
    """
    if shutil.which("wrk"):
        return _wrk(url, body, job_ids, seconds, connections)
    return _python(url, body, job_ids, seconds, connections)


def _wrk(url: str, body: str, job_ids: list[str], seconds: float, connections: int) -> LoadResult:
    prefix = "/api/jobs/" + job_ids[0].rstrip("0123456789")
    script = _LUA % {
        "body": body,
        "n_jobs": len(job_ids),
        "prefix": prefix,
        "single": f"/api/jobs/{job_ids[0]}/progress",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", handle.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    match = re.search(r"JW (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    requests, duration_us, p50_us, p99_us, errors = match.groups()
    return LoadResult(
        rps=int(requests) / (int(duration_us) / 1e6),
        p50_ms=float(p50_us) / 1000,
        p99_ms=float(p99_us) / 1000,
        errors=int(errors),
        tool="wrk",
    )


def _python(
    url: str, body: str, job_ids: list[str], seconds: float, connections: int
) -> LoadResult:
    parts = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    payload = body.encode()

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        i = offset
        while time.monotonic() < stop_at:
            path = f"/api/jobs/{job_ids[i % len(job_ids)]}/progress"
            i += connections
            start = time.perf_counter()
            conn.request("POST", path, payload, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status >= 300:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(min(connections, 16))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return LoadResult(
        rps=len(latencies) / elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
        errors=errors[0],
        tool="python",
    )
