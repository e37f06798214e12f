"""Typed keys of the aiohttp application's state (one per shared resource)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from gateway.adapter import Registry
from gateway.config import Settings
from gateway.hub import Hub

if TYPE_CHECKING:
    from gateway.sessions import Sessions
    from gateway.web.ws import Connection

SETTINGS = web.AppKey("settings", Settings)
REGISTRY = web.AppKey("registry", Registry)
HUB = web.AppKey("hub", Hub)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
CONNECTIONS: web.AppKey[set[Connection]] = web.AppKey("connections")
