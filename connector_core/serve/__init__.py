"""``connector serve``: the capabilities over HTTP for hosts in any language.

The ASGI application lives in :mod:`connector_core.serve.app` and needs the ``serve``
extra (Starlette and uvicorn); the OpenAPI generation in :mod:`.openapi` and the
commands in :mod:`.commands` import only the core.
"""

from .openapi import STATUS_BY_CATEGORY, STATUS_BY_CODE, openapi_document, status_for

__all__ = ["STATUS_BY_CATEGORY", "STATUS_BY_CODE", "openapi_document", "status_for"]
