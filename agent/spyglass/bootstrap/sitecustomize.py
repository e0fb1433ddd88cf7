"""Loaded by every Python process started under ``spyglass run`` (it is first on PYTHONPATH).

Starts the agent, then runs the app's own ``sitecustomize`` if it has one, as Python would
have without us.
"""

from spyglass.bootstrap import chain_sitecustomize, start

start()
chain_sitecustomize(__file__)
