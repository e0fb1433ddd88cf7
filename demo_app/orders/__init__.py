"""orders: a Django service that owns products and orders and enqueues the payment task."""
