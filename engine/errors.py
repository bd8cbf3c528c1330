"""The engine's exception hierarchy: every error a user can cause is an EngineError."""


class EngineError(Exception):
    """Base class of all errors the engine raises on bad input or configuration."""


class AudioLoadError(EngineError):
    """An audio file could not be turned into samples (missing, empty, corrupt, ...)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LabelFormatError(EngineError):
    """A label file has a line that does not parse."""

    def __init__(self, path, line_number: int | None, reason: str):
        self.path = str(path)
        self.line_number = line_number
        self.reason = reason
        where = f"{self.path}, line {line_number}" if line_number else self.path
        super().__init__(f"{where}: {reason}")


class ConfigError(EngineError, ValueError):
    """A configuration value is out of range or inconsistent."""


class DatasetError(EngineError):
    """A dataset folder is missing files or does not have the expected layout."""


class ModelFileError(EngineError):
    """A file is not a model of ours, or it is damaged."""


class TrainingDiverged(EngineError):
    """The training loss became NaN or infinite."""


class OutputWriteError(EngineError):
    """A result could not be written (full disk, no permission, ...); nothing was half-written."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason}")


class ClusterError(EngineError):
    """A Ray cluster cannot be reached, or its workers cannot start."""


class OverwriteRefused(EngineError):
    """Files that are not ours (not recorded as our output) are in the way; nothing was replaced."""

    def __init__(self, paths, reason: str):
        self.paths = tuple(str(p) for p in paths)
        super().__init__(reason)
