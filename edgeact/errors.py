"""Typed exceptions raised by edgeact.

Every user-facing error derives from :class:`EdgeActError`. Input errors also derive from
``ValueError``/``TypeError`` so callers that catch the builtin types keep working.
Messages are full sentences naming what was expected and what arrived.
"""


class EdgeActError(Exception):
    """Base class of every edgeact error."""


class InputError(EdgeActError, ValueError):
    """An argument, frame, keypoint array or tensor has the wrong value or shape."""


class InputTypeError(EdgeActError, TypeError):
    """An argument has the wrong Python type or dtype."""


class ConfigError(EdgeActError, ValueError):
    """A configuration file or override is invalid."""


class DatasetError(EdgeActError):
    """A dataset directory is missing, malformed or cannot be written."""


class ModelFormatError(EdgeActError):
    """A model file is missing, truncated, of an unknown format or lacks edgeact metadata."""


class BackendError(EdgeActError):
    """A runtime backend is unknown, unavailable, or failed to run."""


class ExportError(EdgeActError):
    """Export produced a graph that does not agree with PyTorch, or could not run."""


class StreamError(EdgeActError, KeyError):
    """A stream id is unknown to the predictor."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
