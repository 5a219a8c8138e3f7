"""Brokers, the fleet feed, webhooks."""
