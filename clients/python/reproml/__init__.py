"""Python client of the ReproduceML server."""

from .client import Client, CorruptStream, ProblemError, Split, TlsError, Unreachable

__all__ = ["Client", "CorruptStream", "ProblemError", "Split", "TlsError", "Unreachable"]
