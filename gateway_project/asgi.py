"""The ASGI entry point: it decides the plane by path before Django does any work.

- Every HTTP request gets an id on its answer (apps.core.edge).
- Data plane (/v1/*, the same routes without /v1, health probes): the lean handler in
  apps.routing.dataplane; not /v1/model/info, a management route (CONTROL_PLANE_PATHS).
- Control plane (/admin, the management API, static files): Django's ordinary stack, behind a
  body size limit.
- Lifespan: starts and stops each process's background work (apps.routing.runtime).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from apps.routing.dataplane import DataPlaneHandler  # noqa: E402
from apps.core.edge import BodyLimit, with_request_id  # noqa: E402
from apps.routing.runtime import runtime  # noqa: E402
from apps.routing.urls import CONTROL_PLANE_PATHS, DATA_PLANE_PREFIXES  # noqa: E402

control_plane = BodyLimit(get_asgi_application(), limit=settings.GATEWAY_MAX_CONTROL_BODY_BYTES)
data_plane = DataPlaneHandler(settings.DATA_PLANE_URLCONF, max_body_bytes=settings.GATEWAY_MAX_BODY_BYTES)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await runtime.start()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await runtime.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "http":
        send = with_request_id(scope, send)
        path = scope["path"]
        if path.startswith(DATA_PLANE_PREFIXES) and path not in CONTROL_PLANE_PATHS:
            if not runtime.started:  # a server without lifespan support
                await runtime.start()
            await data_plane(scope, receive, send)
        else:
            await control_plane(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
    else:
        await control_plane(scope, receive, send)
