"""Errors that are the user's to fix: the CLI prints them as plain lines and exits with status 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (config, data, paths). Never shown with a traceback.

    Args:
        problems: One line per problem, each naming the field and what is wrong with it.
    """

    def __init__(self, *problems: str) -> None:
        self.problems = [p for p in problems if p]
        super().__init__("\n".join(self.problems))


class ConfigError(UserError):
    """The sweep config is invalid; ``problems`` lists every error found, not only the first."""
