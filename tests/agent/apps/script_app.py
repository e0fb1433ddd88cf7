"""A non-server program: prints known text (stdout must be unchanged), exits with argv[1]."""

import sys

print("hello from script_app")
print("second line", flush=True)
sys.stdout.write("no newline at end")
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
