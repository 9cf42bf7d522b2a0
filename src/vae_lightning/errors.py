"""Errors caused by what the user asked for, reported as one paragraph without a traceback."""


class UserError(Exception):
    """Bad input: a config value, a missing or corrupt file. The message says how to fix it."""


class ConfigError(UserError):
    """An invalid config value; the message names the key and the accepted values."""


class DataError(UserError):
    """A data file that is missing, unreadable or fails its checksum."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss; the message names the step."""
