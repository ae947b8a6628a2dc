"""`/metrics`: Prometheus's text format (see connector/metrics.py for what is measured).

Meant for the operator's scraper: docs/deploy.md has the proxy refuse it from outside."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from connector.metrics import render

__all__ = ["bp"]

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(render(current_app), mimetype=None, content_type=CONTENT_TYPE_LATEST)
