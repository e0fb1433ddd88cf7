"""Product recommendations from co-purchase counts: honest pure-Python CPU work.

The storefront computes them per request on purpose, so that a profiler has a real hot path
to show (``_co_purchases``). The ``cpu_heavy`` fault multiplies the purchase history scanned.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import combinations
from typing import Any

BASKETS = 10_000  # purchase histories scanned per request at work factor 1 (~30 ms)
BASKET_SIZE = 4


def _co_purchases(ids: list[int], baskets: int, seed: int) -> tuple[Counter[int], Counter[Any]]:
    """Count how often each product and each pair of products were bought together."""
    rng = random.Random(seed)
    singles: Counter[int] = Counter()
    pairs: Counter[Any] = Counter()
    for _ in range(baskets):
        basket = sorted(rng.sample(ids, BASKET_SIZE))
        singles.update(basket)
        pairs.update(combinations(basket, 2))
    return singles, pairs


def recommend(
    product_id: int, products: list[dict[str, Any]], work: float = 1.0, limit: int = 5
) -> tuple[list[dict[str, Any]], int]:
    """Top ``limit`` products bought with ``product_id`` by cosine score, and baskets scanned."""
    ids = [int(p["id"]) for p in products]
    if len(ids) < BASKET_SIZE:
        return [], 0
    baskets = max(1, int(BASKETS * work))
    singles, pairs = _co_purchases(ids, baskets, seed=product_id)
    scores = {}
    for other in ids:
        if other == product_id or not singles[other] or not singles[product_id]:
            continue
        together = pairs[(min(product_id, other), max(product_id, other))]
        scores[other] = together / math.sqrt(singles[product_id] * singles[other])
    by_id = {int(p["id"]): p for p in products}
    best = sorted(scores, key=scores.__getitem__, reverse=True)[:limit]
    return [by_id[i] | {"score": round(scores[i], 4)} for i in best], baskets
