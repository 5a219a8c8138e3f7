"""The transport: REST, job and fleet subscriptions."""
