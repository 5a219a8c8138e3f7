"""The transport, for viewers and workers alike: REST (:class:`Client`) and the resuming
WebSocket subscriptions of a job and of the fleet.

:class:`Client` loads on first use (PEP 562), so that a worker importing
:mod:`jobwatch.client.own_io` does not import requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobwatch.client.rest import Client

__all__ = ["Client"]


def __getattr__(name: str) -> object:
    if name == "Client":
        from jobwatch.client.rest import Client

        return Client
    raise AttributeError(f"module 'jobwatch.client.rest' has no attribute {name!r}")
