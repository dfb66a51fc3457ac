"""Error types that the command line turns into a short message and exit code 1.

Every error that a user can cause (a broken config, a missing file, an endpoint that
cannot be reached) is raised as an :class:`FmbError`. The message says what failed,
the exact input, what was expected and what to do next; it is printed without a
traceback.
"""

from __future__ import annotations


class FmbError(Exception):
    """A user-facing error: printed as one paragraph, exit code 1."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class ConfigError(FmbError):
    """A config file that cannot be read, parsed or validated."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + message, hint=hint)
        self.path = path
        self.key = key


class PrepareError(FmbError):
    """Source data, prompt templates or tokenizers that cannot be used."""


class CollectError(FmbError):
    """A benchmark that cannot start (missing payloads, unreachable endpoint, ...)."""
