"""The web console's files (docs/console.md): served as they are, from the package, with
a Content-Security-Policy that lets them load nothing but themselves."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

FILES = {
    "index.html": ("index.html", "text/html"),
    "console.js": ("console.js", "text/javascript"),
    "console.css": ("console.css", "text/css"),
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def redirect(_: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/console/")


async def index(_: web.Request) -> web.Response:
    return _file("index.html")


async def serve(request: web.Request) -> web.Response:
    return _file(request.match_info["file"])


def _file(wanted: str) -> web.Response:
    found = FILES.get(wanted)
    if found is None:
        raise web.HTTPNotFound()
    name, content_type = found
    body = resources.files("kubernel_api").joinpath("console", name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)
