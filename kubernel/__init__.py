"""What the operator and the API share: the KernelSession model, its naming,
the lifecycle vocabulary and the image table. Pure: no I/O here."""

__version__ = "0.1.0"
API_VERSION = "v4.20190615"
