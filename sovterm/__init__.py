"""sovterm: a self-hosted back office for BTCPay Server merchants."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sovterm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
