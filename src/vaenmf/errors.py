"""Exceptions the package raises on bad input.

Every error a user can cause (bad data, bad file, bad config) is one of these, with a message that names the
offending file or key and says what was expected. The command-line entry points print the message alone,
without a traceback.
"""

from __future__ import annotations


class VaenmfError(Exception):
    """Base class for every user-facing error of this package."""


class DataError(VaenmfError, ValueError):
    """Input data has the wrong shape, sign, dtype or contains NaN/inf."""


class AudioReadError(VaenmfError, OSError):
    """An audio file is missing, unreadable, truncated or in an unexpected format."""


class CorpusLayoutError(VaenmfError, FileNotFoundError):
    """A corpus folder is missing or does not have the expected layout."""


class ConfigError(VaenmfError, ValueError):
    """A configuration value is invalid (unknown key, wrong type, out of range)."""
