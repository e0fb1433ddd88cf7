"""worker: Celery tasks that take payments, send receipts and refresh the catalogue cache."""
