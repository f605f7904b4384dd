"""Typed keys of the application and request state."""

from __future__ import annotations

from aiohttp import web

from .auth import KeypairIndex
from .guard import Guard
from .informer import Informer
from .keypairs import Keypair
from .kube import Kube
from .listings import SharedListings
from .metrics import Metrics
from .ratelimit import Rate
from .runner import RunnerClient
from .service import SessionService
from .settings import ApiSettings
from .sse import Fanout
from .stream import Hub
from .throttle import Throttle

SETTINGS = web.AppKey("settings", ApiSettings)
KUBE = web.AppKey("kube", Kube)
SESSIONS = web.AppKey("sessions", Informer)
KEYPAIR_INFORMER = web.AppKey("keypair_informer", Informer)
KEYPAIRS = web.AppKey("keypairs", KeypairIndex)
SERVICE = web.AppKey("service", SessionService)
HUB = web.AppKey("hub", Hub)
FANOUT = web.AppKey("fanout", Fanout)
LISTINGS = web.AppKey("listings", SharedListings)
RUNNER = web.AppKey("runner", RunnerClient)
METRICS = web.AppKey("metrics", Metrics)
# Login attempts: by access key, by client address.
LOGIN_THROTTLES = web.AppKey("login_throttles", tuple[Throttle, Throttle])
GUARD = web.AppKey("guard", Guard)
CALLER = web.RequestKey("caller", Keypair)
RATE = web.RequestKey("rate", Rate)  # where the caller stands: X-RateLimit-* on the answer
