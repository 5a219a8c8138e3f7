"""The widgets, in a kernel and without one."""
