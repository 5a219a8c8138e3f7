"""What one write does to a job, without I/O: binding, estimates, alerts, quotas, the wire encoding of rows."""
