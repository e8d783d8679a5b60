"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or usage; the message says which file, field and value."""


class ConfigError(UserError):
    """pipelines.yaml or a --set override is wrong."""
