"""``python -m spyglass`` is the ``spyglass`` command."""

import sys

from spyglass.cli import main

sys.exit(main())
