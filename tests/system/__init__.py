"""Several parts together: scale-out, outages, fuzzing, idle proxies."""
