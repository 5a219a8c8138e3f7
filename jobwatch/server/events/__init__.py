"""Events after the commit: brokers (in-process, Redis), the fleet feed, the stall watchdog, webhooks."""
