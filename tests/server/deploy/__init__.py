"""Settings, start-up, gunicorn."""
