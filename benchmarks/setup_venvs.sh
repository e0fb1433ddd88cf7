#!/usr/bin/env bash
# Builds the two competitor virtualenvs beside this script, so OpenTelemetry's distro and
# ddtrace never disturb the project's pinned environment. Web framework versions are pinned
# to the project env's, so "bare" and every contender run the same app code.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"
FW=(flask==3.1.3 werkzeug==3.1.8 gunicorn==27.0.1 fastapi==0.165.0 starlette==1.10.0
    'uvicorn[standard]==0.54.0' 'psycopg[binary]==3.3.9')
if [ ! -x "$here/.venv-otel/bin/opentelemetry-instrument" ]; then
  "$py" -m venv "$here/.venv-otel"
  "$here/.venv-otel/bin/pip" install -q "${FW[@]}" \
    'opentelemetry-distro==0.66b1' 'opentelemetry-sdk==1.45.1' \
    'opentelemetry-exporter-otlp-proto-http==1.45.1' \
    'opentelemetry-instrumentation-flask==0.66b1' 'opentelemetry-instrumentation-fastapi==0.66b1' \
    'opentelemetry-instrumentation-sqlite3==0.66b1' 'opentelemetry-instrumentation-logging==0.66b1'
fi
if [ ! -x "$here/.venv-ddtrace/bin/ddtrace-run" ]; then
  "$py" -m venv "$here/.venv-ddtrace"
  "$here/.venv-ddtrace/bin/pip" install -q "${FW[@]}" 'ddtrace>=3,<5'
fi
