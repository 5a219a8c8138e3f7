"""Framework integrations on the real frameworks."""
