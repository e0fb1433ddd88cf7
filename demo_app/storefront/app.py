"""The storefront service: ``uvicorn demo_app.storefront.app:app``.

Catalogue and product pages read through the cache (cache-aside); carts live in the cache;
checkout creates the order at the orders service. When orders times out or fails, every
route answers 504 or 502 (a gateway's codes) and logs the error. Faults are applied by an
app-wide dependency, which runs after routing, so an injected error is raised inside the
matched route.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from demo_app import cache, faults
from demo_app.storefront import cart, catalogue
from demo_app.storefront.orders_client import OrdersClient, OrdersError
from demo_app.storefront.recommendations import recommend

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("storefront.app")
STORE = faults.FaultStore("storefront")
CART_COOKIE = "cart_id"
CART_HEADER = "X-Cart-Id"


async def inject_faults(request: Request) -> None:
    """Latency, hang and error faults, keyed by the matched route template."""
    route = request.scope.get("route")
    await faults.apply_async(STORE, getattr(route, "path", request.url.path))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One cache client and one orders connection pool per process."""
    app.state.cache = cache.from_env()
    app.state.orders = OrdersClient()
    yield
    await app.state.orders.aclose()
    await app.state.cache.close()


app = FastAPI(title="storefront", lifespan=lifespan, dependencies=[Depends(inject_faults)])


@app.exception_handler(httpx.TimeoutException)
async def orders_timed_out(request: Request, exc: httpx.TimeoutException) -> JSONResponse:
    """Orders did not answer within the client's timeout: 504, as a gateway would."""
    log.error("%s %s: timed out waiting for orders", request.method, request.url.path)
    return JSONResponse({"detail": "orders timed out"}, status_code=504)


@app.exception_handler(OrdersError)
async def orders_failed(request: Request, exc: OrdersError) -> JSONResponse:
    """Orders failed even after the retry: 502."""
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=502)


class CartItem(BaseModel):
    """Body of POST /cart/items."""

    product_id: int
    quantity: int = Field(default=1, ge=1, le=10)


class FaultSwitch(BaseModel):
    """Body of POST /_admin/faults."""

    name: str
    enabled: bool = True
    value: float | None = None
    route: str | None = None


def _cart_id(request: Request, response: Response) -> str:
    cart_id = request.headers.get(CART_HEADER) or request.cookies.get(CART_COOKIE)
    if not cart_id:
        cart_id = uuid.uuid4().hex
        response.set_cookie(CART_COOKIE, cart_id, httponly=True)
    response.headers[CART_HEADER] = cart_id
    return cart_id


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness for the launcher and compose."""
    return {"status": "ok"}


@app.get("/products")
async def list_products(request: Request) -> dict[str, Any]:
    """The catalogue, through the cache."""
    return {"products": await catalogue.products(request.app.state.cache, request.app.state.orders)}


@app.get("/products/{product_id}")
async def view_product(request: Request, product_id: int) -> Any:
    """One product, through the cache."""
    found = await catalogue.product(request.app.state.cache, request.app.state.orders, product_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such product")
    return found


@app.get("/recommendations")
async def recommendations(request: Request, product_id: int) -> dict[str, Any]:
    """Products bought together with ``product_id``.

    The computation runs on the event loop on purpose: it is the CPU hot spot to profile,
    and it shows as event-loop lag while it runs.
    """
    products = await catalogue.products(request.app.state.cache, request.app.state.orders)
    heavy = STORE.get("cpu_heavy")
    items, scanned = recommend(product_id, products, work=heavy.value if heavy else 1.0)
    return {"product_id": product_id, "recommendations": items, "baskets_scanned": scanned}


@app.get("/cart")
async def show_cart(request: Request, response: Response) -> dict[str, Any]:
    """The shopper's cart."""
    cart_id = _cart_id(request, response)
    return {"cart_id": cart_id, "items": await cart.load(request.app.state.cache, cart_id)}


@app.post("/cart/items")
async def add_to_cart(request: Request, response: Response, item: CartItem) -> dict[str, Any]:
    """Add a product to the shopper's cart (404 for an unknown product)."""
    store, orders = request.app.state.cache, request.app.state.orders
    if await catalogue.product(store, orders, item.product_id) is None:
        raise HTTPException(status_code=404, detail="no such product")
    cart_id = _cart_id(request, response)
    items = await cart.add(store, cart_id, item.product_id, item.quantity)
    return {"cart_id": cart_id, "items": items}


@app.post("/checkout", status_code=201)
async def checkout(request: Request, response: Response) -> Any:
    """Turn the cart into an order at the orders service."""
    store = request.app.state.cache
    cart_id = _cart_id(request, response)
    items = await cart.load(store, cart_id)
    if not items:
        raise HTTPException(status_code=400, detail="cart is empty")
    lines = [{"product_id": int(pid), "quantity": qty} for pid, qty in items.items()]
    order = await request.app.state.orders.create_order(uuid.uuid4().hex, lines)
    await cart.clear(store, cart_id)
    log.info("cart %s checked out as order %s", cart_id, order["id"])
    return order


@app.get("/_admin/faults")
async def get_faults() -> dict[str, Any]:
    """The switched-on faults."""
    return STORE.as_json()


@app.post("/_admin/faults")
async def set_fault(switch: FaultSwitch) -> dict[str, Any]:
    """Switch one fault on or off."""
    try:
        STORE.set(switch.name, switch.enabled, switch.value, switch.route)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return STORE.as_json()


@app.post("/_admin/cache/refresh")
async def refresh_cache(request: Request) -> dict[str, int]:
    """Reload the catalogue into the cache (called by the worker's periodic task)."""
    listing = await catalogue.refresh(request.app.state.cache, request.app.state.orders)
    return {"products": len(listing)}
