"""Contract tests: one real server per module, every answer checked for strict JSON."""
