"""Dashboard sources: one module per dashboard, each exposing ``build() -> Dashboard``."""
