"""The viewer's and the worker's transport: REST (:class:`Client`) and resuming WebSocket subscriptions."""
