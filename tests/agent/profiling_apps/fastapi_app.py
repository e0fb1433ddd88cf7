"""A FastAPI app whose /boom exception propagates to the ASGI server (see README.md)."""

from fastapi import FastAPI

app = FastAPI()


class KnownBoom(RuntimeError):
    """The exception the tests look for."""


def raise_known_error() -> None:
    raise KnownBoom("the known async failure")


@app.get("/boom")
async def boom() -> str:
    raise_known_error()
    return "unreachable"


@app.get("/health")
async def health() -> str:
    return "ok"
