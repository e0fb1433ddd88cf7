"""Spyglass demo shop: four services that exercise every signal the agent collects.

``python -m demo_app`` starts storefront (FastAPI), orders (Django), payments (Flask) and a
Celery worker, each under ``spyglass run``, and drives them with the load generator. See
``demo_app/README.md`` for the services, the embedded defaults and the fault commands.
"""
