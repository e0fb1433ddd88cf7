"""``import spyglass.auto``: start the agent from inside the app, where a wrapper can't be used.

Put it first in the app's entry module. Under a prefork server prefer ``spyglass run``: it loads
the agent in the server's master process, so all workers share one ``/metrics``.
"""

from spyglass.agent import initialize

initialize()
