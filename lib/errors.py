"""User-facing errors: each message names the culprit and the fix."""


class StudyError(Exception):
    """Base class of every error the study raises on bad input."""


class ConfigError(StudyError, ValueError):
    """A profile, parameter or option is wrong."""


class DataError(StudyError, ValueError):
    """A dataset file or directory is missing, corrupt or malformed."""


class ModelError(StudyError, ValueError):
    """A backbone, model folder or checkpoint cannot be used."""
