"""Typed keys of the application and request state."""

from __future__ import annotations

from aiohttp import web

from .auth import KeypairIndex
from .informer import Informer
from .keypairs import Keypair
from .kube import Kube
from .metrics import Metrics
from .runner import RunnerClient
from .service import SessionService
from .settings import ApiSettings
from .stream import Hub

SETTINGS = web.AppKey("settings", ApiSettings)
KUBE = web.AppKey("kube", Kube)
SESSIONS = web.AppKey("sessions", Informer)
KEYPAIR_INFORMER = web.AppKey("keypair_informer", Informer)
KEYPAIRS = web.AppKey("keypairs", KeypairIndex)
SERVICE = web.AppKey("service", SessionService)
HUB = web.AppKey("hub", Hub)
RUNNER = web.AppKey("runner", RunnerClient)
METRICS = web.AppKey("metrics", Metrics)
CALLER = web.RequestKey("caller", Keypair)
