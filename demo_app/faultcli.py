"""``python -m demo_app fault SERVICE NAME on|off [--value X] [--route R]``.

HTTP services are switched through their admin endpoint, so the command works against a
demo running anywhere it can reach. The worker has no HTTP server; its switches are written
straight into the shared state directory (DEMO_STATE_DIR), which its processes read.
"""

from __future__ import annotations

import json

import httpx

from demo_app import config, faults


def describe() -> str:
    """The fault catalogue, for --help."""
    lines = ["faults:"]
    for name, kind in faults.FAULTS.items():
        lines.append(f"  {name:<21} {'/'.join(kind.services):<28} {kind.help}")
    return "\n".join(lines)


def switch(
    service: str, name: str, enabled: bool, value: float | None = None, route: str | None = None
) -> dict[str, object]:
    """Flip one fault and return the service's switched-on faults."""
    if service not in faults.HTTP_SERVICES:
        store = faults.FaultStore(service)
        store.set(name, enabled, value, route)
        return dict(store.as_json())
    url = f"{config.service_url(service)}/_admin/faults"
    body = {"name": name, "enabled": enabled, "value": value, "route": route}
    response = httpx.post(url, json=body, timeout=5.0)
    if response.status_code == 400:
        detail = response.json()
        raise ValueError(detail.get("detail") or detail.get("error") or response.text)
    response.raise_for_status()
    return dict(response.json())


def main(service: str, name: str, state: str, value: float | None, route: str | None) -> int:
    """Run the command; prints the resulting switches as JSON."""
    try:
        active = switch(service, name, state == "on", value, route)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    except httpx.HTTPError as exc:
        print(f"error: could not reach {service} at {config.service_url(service)}: {exc}")
        return 1
    print(json.dumps({service: active}, indent=2))
    return 0
