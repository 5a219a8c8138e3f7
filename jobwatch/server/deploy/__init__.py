"""How a server starts: settings, gunicorn or one process or a notebook thread, the WSGI entry point."""
