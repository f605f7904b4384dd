"""What the operator and the API share: the KernelSession model, its naming, the
lifecycle vocabulary, the image table and the settings both read. Pure but for
``kubernel.client`` (logging in, raw reads) and ``settings``'s reading of the environment."""

__version__ = "0.1.0"
API_VERSION = "v4.20190615"
