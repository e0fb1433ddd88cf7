"""Load generator for the demo shop: open-loop traffic at a steady rate, honest numbers.

Use it from the command line (``python -m demo_app.loadgen --rps 20 --duration 60``) or as a
library, as the launcher does::

    stats = asyncio.run(run_load(LoadConfig(base_url="http://127.0.0.1:8000", rps=10)))
    print(stats.summary())
"""

from demo_app.loadgen.runner import LoadConfig, run_load
from demo_app.loadgen.stats import Stats

__all__ = ["LoadConfig", "Stats", "run_load"]
