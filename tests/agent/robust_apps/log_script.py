"""A script that logs the way apps do, then dies of an uncaught exception.

``logging.basicConfig`` on the root logger, a library-style child logger, a logger that does
not propagate and has its own handler, a record below the configured level, and finally an
exception nobody catches (exit status 1 and a traceback on stderr, from Python itself).
"""

import logging
import sys

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("shop.orders").info("order %s placed", 42)
logging.getLogger("shop.orders").debug("debug is below basicConfig's level")
logging.warning("root warning")

private = logging.getLogger("shop.private")
private.propagate = False
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("PRIVATE %(levelname)s %(message)s"))
private.addHandler(handler)
private.error("private error %d", 7)

print("stdout line", flush=True)
raise ValueError("script failed on purpose")
