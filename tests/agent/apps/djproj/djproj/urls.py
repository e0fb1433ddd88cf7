import logging

from django.http import HttpRequest, HttpResponse
from django.urls import path
from opentelemetry import trace

log = logging.getLogger("apps.items")
tracer = trace.get_tracer("apps")


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    with tracer.start_as_current_span("load-item"):
        log.warning("item %s loaded", item_id)
    response = HttpResponse(f"item {item_id}", content_type="text/plain")
    response["X-App"] = "django"
    return response


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("items/<int:item_id>", item),
    path("health", health),
]
