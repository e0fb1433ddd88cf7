"""Logs: every stdlib ``logging`` record the app emits goes to Loki with its trace context."""
