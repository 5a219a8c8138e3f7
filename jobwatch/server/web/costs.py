"""``GET /api/costs``: spend per day and per group over the jobs the token may read
(:mod:`jobwatch.server.core.spend` says what is counted)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from jobwatch.contract.costs import CostsQuery, first_day, local_today, parse_tz
from jobwatch.contract.requests import parse_query
from jobwatch.errors import ValidationError
from jobwatch.server.core import spend, tenancy
from jobwatch.server.core.pricing import PriceTimeline
from jobwatch.server.storage import prices, queries
from jobwatch.server.web.access import current_principal
from jobwatch.server.web.api import json_response
from jobwatch.server.web.services import Services

bp = Blueprint("costs", __name__, url_prefix="/api")


@bp.get("/costs")
def costs() -> Response:
    """``{since, until, timeZone, by, days, groups, totals, unpriced}`` (see
    :func:`jobwatch.server.core.spend.report`); 400 for a bad ``since``, ``by`` or
    ``tz`` naming what is allowed; 403 for a worker or share token."""
    query = parse_query(CostsQuery, request.args)
    scope = tenancy.list_scope(current_principal())
    services: Services = current_app.extensions["jobwatch"]
    now = services.clock()
    zone = parse_tz(query.tz)
    today = local_today(now, zone)
    try:
        first = first_day(query.since, today)
    except ValueError as exc:
        raise ValidationError(
            "1 invalid query parameter", details=[{"field": "since", "message": str(exc)}]
        ) from None
    days = spend.day_bounds(first, today, zone)
    tenant = None if scope.everything else scope.tenant
    with services.store.read() as conn:
        jobs = queries.spend_jobs(conn, days[0].start, now, tenant=tenant)
        segments = prices.of_jobs(conn, [j["id"] for j in jobs if j["price_from"] is not None])
    timelines = ((job, PriceTimeline(job, segments.get(job["id"], []), now)) for job in jobs)
    return json_response(
        spend.report(timelines, by=query.by, days=days, now=now, time_zone=query.tz)
    )
