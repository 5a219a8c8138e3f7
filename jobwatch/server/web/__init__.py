"""The HTTP face: ``create_app``, REST, ``/ws``, pages, OpenAPI, Prometheus, security."""
