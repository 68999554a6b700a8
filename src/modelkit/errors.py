"""The errors modelkit raises on bad input, in a module that imports nothing, so that the command
line can catch them without loading torch. Each says in one line what is wrong and where."""


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete, altered or incompatible."""


class DataError(ValueError):
    """Input data is missing, malformed or has labels outside the taxonomy."""


class EvaluationError(ValueError):
    """Scores, labels or report files that cannot be evaluated as given."""


class InputError(ValueError):
    """One input cannot be decoded (a corrupt or missing file); the message names it."""
