"""The Backend.AI v4.20190615 REST API and event stream (aiohttp). Not built yet:
see the open issue "The REST API and lifecycle event stream"."""
