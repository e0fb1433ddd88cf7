"""A Flask app (``python random_app.py PORT``) that seeds and draws from the global ``random``.

It prints three draws at import and three per request. Under the agent, span and trace ids
must come from a private generator, so the printed sequence is the same as without it.
"""

from __future__ import annotations

import random
import sys

from flask import Flask

random.seed(42)
print("import", [random.random() for _ in range(3)], flush=True)

app = Flask(__name__)


@app.route("/draw")
def draw() -> str:
    values = [random.random() for _ in range(3)]
    print("request", values, flush=True)
    return repr(values)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=False)
