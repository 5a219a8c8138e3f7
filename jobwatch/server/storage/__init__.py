"""The SQL store (SQLite or PostgreSQL): schema, group commit, batches, roll-ups, reads."""
