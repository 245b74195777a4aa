"""sovterm: a self-hosted back office for BTCPay Server merchants."""


def __getattr__(name: str) -> str:
    """`sovterm.__version__`, read from the installed package's metadata on first use: importlib.metadata
    takes 40 ms to import, which a CLI command that never shows the version should not pay."""
    if name != "__version__":
        raise AttributeError(f"module 'sovterm' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("sovterm")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+source"
    globals()["__version__"] = found
    return found
