"""The seed catalogue: a few dozen products, generated deterministically.

Orders stores these in its database (data migration); the storefront's recommendations use the
same categories.
"""

from __future__ import annotations

CATEGORIES = ("lenses", "telescopes", "mounts", "eyepieces", "filters", "cameras")
_ADJECTIVES = ("compact", "pro", "travel", "deluxe", "classic", "wide", "bright", "rugged")


def seed_products() -> list[dict[str, object]]:
    """Product rows (name, category, price) for the initial catalogue, 48 in all."""
    products = []
    for i, adjective in enumerate(_ADJECTIVES):
        for j, category in enumerate(CATEGORIES):
            products.append(
                {
                    "name": f"{adjective.title()} {category[:-1]} {i * len(CATEGORIES) + j + 1}",
                    "category": category,
                    "price_cents": 1500 + 725 * ((i * 7 + j * 11) % 40),
                }
            )
    return products
