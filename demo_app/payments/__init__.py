"""payments: a small Flask service that "charges" an order with realistic latency variance."""
