"""Errors caused by what the user asked for, reported as one paragraph without a traceback."""


class UserError(Exception):
    """Bad input: a config value, a missing or corrupt file. The message says how to fix it."""


class ConfigError(UserError):
    """An invalid config value; the message names the key and the accepted values."""


class DataError(UserError):
    """A data file that is missing, unreadable or fails its checksum."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss; the message names the step."""


class RunInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM, with a checkpoint of the step it stopped at."""

    def __init__(self, signal_name: str, exit_code: int, step: int, checkpoint: str | None):
        super().__init__(f"{signal_name} at step {step}")
        self.signal_name, self.exit_code = signal_name, exit_code
        self.step, self.checkpoint = step, checkpoint
