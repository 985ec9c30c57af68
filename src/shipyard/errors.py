"""Errors a user can cause. The CLI prints them without a traceback and exits with `exit_code`."""

from __future__ import annotations


class ShipyardError(Exception):
    """Base class of user-facing errors: the message says what to fix."""

    exit_code = 1


class ConfigError(ShipyardError):
    """shipyard.yaml (or another config file) is invalid."""

    exit_code = 2


class UsageError(ShipyardError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class NotFoundError(ShipyardError):
    """A model, version, alias, run or endpoint does not exist."""


class DataCheckFailed(ShipyardError):
    """The data check step found violations."""


class StepFailed(ShipyardError):
    """A pipeline step failed; the message carries the log tail."""


class GateRejected(ShipyardError):
    """The gate rejected the candidate and the user asked for a failing exit code."""

    exit_code = 3


class StoreUnavailable(ShipyardError):
    """The workspace database cannot be reached (after retries); the message names its endpoint."""

    exit_code = 4


class DeploymentError(ShipyardError):
    """A deployment did not become healthy or its smoke test failed."""


class StorageError(ShipyardError):
    """The artifact store could not be reached, refused a request, or returned bad content."""
