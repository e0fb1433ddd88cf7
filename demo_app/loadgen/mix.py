"""The traffic mix: mostly browsing, some carts, a few checkouts and recommendations.

Carts are real: a checkout only happens for a cart that earlier requests filled, and it uses
the ``X-Cart-Id`` header the storefront understands.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Actions and their weights: browse-heavy, as a shop's traffic is.
ACTIONS = ("list", "view", "recommend", "add", "checkout")
WEIGHTS = (25, 42, 5, 18, 10)


@dataclass(frozen=True)
class Request:
    """One HTTP request to send; ``endpoint`` is the route template used in the stats."""

    endpoint: str
    method: str
    path: str
    json: Any = None
    cart_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Headers carrying the cart id, when there is one."""
        return {"X-Cart-Id": self.cart_id} if self.cart_id else {}


@dataclass
class TrafficMix:
    """Picks the next request; remembers carts that have items, for later checkouts."""

    product_ids: list[int]
    rng: random.Random = field(default_factory=random.Random)
    filled_carts: deque[str] = field(default_factory=lambda: deque(maxlen=100))

    def next_request(self) -> Request:
        """A random request, actions drawn by WEIGHTS."""
        action = self.rng.choices(ACTIONS, WEIGHTS)[0]
        product_id = self.rng.choice(self.product_ids)
        if action == "checkout" and self.filled_carts:
            return Request("POST /checkout", "POST", "/checkout", cart_id=self.filled_carts.pop())
        if action in ("add", "checkout"):
            reuse = self.filled_carts and self.rng.random() < 0.3
            cart_id = self.filled_carts.pop() if reuse else uuid.uuid4().hex
            body = {"product_id": product_id, "quantity": self.rng.randint(1, 3)}
            return Request("POST /cart/items", "POST", "/cart/items", json=body, cart_id=cart_id)
        if action == "list":
            return Request("GET /products", "GET", "/products")
        if action == "recommend":
            path = f"/recommendations?product_id={product_id}"
            return Request("GET /recommendations", "GET", path)
        return Request("GET /products/{product_id}", "GET", f"/products/{product_id}")

    def done(self, request: Request, status: int) -> None:
        """Remember a cart that now has items."""
        if request.endpoint == "POST /cart/items" and status < 300 and request.cart_id:
            self.filled_carts.append(request.cart_id)
