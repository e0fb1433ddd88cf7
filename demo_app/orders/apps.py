"""Django app config; the label ``orders`` names the tables (orders_order, orders_product)."""

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """The orders app."""

    name = "demo_app.orders"
    label = "orders"
