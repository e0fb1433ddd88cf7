"""Background exporters: bounded queues, drop-and-count, never on the request path."""
