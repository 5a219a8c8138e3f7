"""The web pages: the fleet table at ``/`` and a job's monitor at ``/jobs/<jobId>``.

Plain files shipped inside the package under ``static/`` (HTML, ES modules,
CSS, and uPlot vendored under ``static/vendor/uplot/``), served as they are:
no build step at install, nothing from a CDN. The notebook's log view
(``jobwatch/notebook/static/logview.js`` and ``.css``) and its jobs table
(``jobstable.js``, for the fleet's sort and filter rules) are served unchanged at
``/assets/widgets/``, so the pages and the notebook draw log lines and order
the fleet with the same code. ``/assets/job_fields.js`` is no file: it is written from the job's
field table (:data:`jobwatch.contract.job_fields.VIEWED_FIELDS`), so the job
page's model holds every field the table gives it; nor is ``/assets/metrics.js``,
written from the metrics table (:data:`jobwatch.contract.metrics.METRICS`), so
the page's samples hold, and its system charts draw, every metric of it.

The pages hold no data: all they show comes from the REST API and the
WebSocket, which check the token as for any client. So the pages and their
files load without a token (:func:`open_pages`), and a page that is answered
401 asks the person for the token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Request, Response, request, send_from_directory

from jobwatch.contract.job_fields import VIEWED_FIELDS
from jobwatch.contract.metrics import METRICS
from jobwatch.errors import AuthenticationError

__all__ = ["STATIC", "WIDGET_FILES", "bp", "job_fields_module", "metrics_module", "open_pages"]

STATIC = Path(__file__).parent / "static"
"""The pages' files, served at ``/assets/``."""
WIDGETS_STATIC = Path(__file__).resolve().parents[2] / "notebook" / "static"
WIDGET_FILES = ("logview.js", "logview.css", "jobstable.js")
"""Files of the notebook widgets the pages use as they are, at ``/assets/widgets/``."""

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        # uPlot and the progress bars set element styles from script (CSSOM), which
        # 'self' allows; no inline <style> or style="" attributes are used.
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",  # the API and, in CSP level 3, the WebSocket on this host
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)
"""Sent with every page and file: should a remote string ever reach HTML, no script
from elsewhere or inline could run (MDN, "Content Security Policy")."""

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/assets")


@bp.get("/")
def fleet() -> Response:
    """The fleet table: one live row per job."""
    return _page("fleet.html")


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Response:
    """A job's monitor; the page reads the id from its URL and asks the API for the job
    (an unknown or malformed id is shown as the API's answer)."""
    return _page("job.html")


@bp.get("/assets/widgets/<any(" + ", ".join(WIDGET_FILES) + "):name>")
def widget_file(name: str) -> Response:
    """The notebook widgets' files the pages import (the log view, the fleet's rules)."""
    return send_from_directory(WIDGETS_STATIC, name)


def job_fields_module() -> str:
    """The ES module served at ``/assets/job_fields.js``: ``export const JOB_FIELDS``,
    the wire names of :data:`~jobwatch.contract.job_fields.VIEWED_FIELDS` in wire order."""
    return (
        "// The job object's fields the job page's model holds (jobwatch/contract/job_fields.py,\n"
        "// JOB_FIELDS, those viewed), written by the server from that table.\n"
        f"export const JOB_FIELDS = {json.dumps(list(VIEWED_FIELDS))};\n"
    )


def metrics_module() -> str:
    """The ES module served at ``/assets/metrics.js``: ``export const METRICS``, one
    ``{wire, label, unit, scope, chart, atMost}`` per entry of
    :data:`~jobwatch.contract.metrics.METRICS`, in wire order."""
    entries = [
        {
            "wire": m.wire,
            "label": m.label,
            "unit": m.unit,
            "scope": m.scope,
            "chart": m.chart,
            "atMost": m.at_most,
        }
        for m in METRICS
    ]
    return (
        "// The metrics of a sample (jobwatch/contract/metrics.py, METRICS), written by the\n"
        "// server from that table.\n"
        f"export const METRICS = {json.dumps(entries, ensure_ascii=False)};\n"
    )


_MODULES = {"job_fields.js": job_fields_module(), "metrics.js": metrics_module()}


@bp.get("/assets/<any(job_fields.js, metrics.js):name>")
def table_module(name: str) -> Response:
    """The job page's list of job fields (:func:`job_fields_module`) or of metrics
    (:func:`metrics_module`)."""
    response = Response(_MODULES[name], mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"  # a new version shows on the next load
    return response


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(name: str) -> Response:
    response = send_from_directory(STATIC, name)
    response.headers["Cache-Control"] = "no-cache"  # a new version shows on the next load
    return response


def open_pages(check: Callable[[Request], None]) -> Callable[[], None]:
    """A ``before_request`` hook: ``check(request)``, but the pages load without a token.

    Parameters
    ----------
    check:
        The server's access check (:meth:`jobwatch.server.web.security.AccessPolicy.check`).

    Returns
    -------
    callable
        Runs ``check``; a missing or wrong token (:class:`AuthenticationError`, 401) is
        let through only for this blueprint's pages and files, which hold no data.
        Every other refusal (a host or origin not allowed) stands, for pages too.
    """

    def guard() -> None:
        try:
            check(request)
        except AuthenticationError as exc:
            # its 403 kinds (a host or origin not allowed) stand for pages too
            if type(exc) is not AuthenticationError or request.blueprint != bp.name:
                raise

    return guard
