"""labelgate's HTTP API (FastAPI). ``create_app()`` builds the application; run it with
``uvicorn --factory labelgate.api:create_app``."""

from labelgate.api.app import create_app

__all__ = ["create_app"]
