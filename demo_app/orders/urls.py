"""URL routes of the orders service."""

from django.urls import path

from demo_app.orders import views

urlpatterns = [
    path("healthz", views.healthz),
    path("_admin/faults", views.admin_faults),
    path("products", views.product_list),
    path("products/<int:product_id>", views.product_detail),
    path("orders", views.create_order),
    path("orders/<int:order_id>", views.order_detail),
    path("orders/<int:order_id>/payment", views.record_payment),
    path("orders/<int:order_id>/receipt", views.record_receipt),
]
