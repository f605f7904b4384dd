"""The Backend.AI v4.20190615 REST API and event stream (aiohttp), and the keypair
admin command (docs/api.md)."""
