"""HTTP, WebSocket, pages, OpenAPI, Prometheus, security."""
