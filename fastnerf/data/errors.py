"""The one error type the data loaders raise for bad data on disk."""

from ..errors import UserError


class DatasetError(UserError):
    """A dataset on disk is missing, malformed or inconsistent.

    The message names the file and, where it applies, the frame index and the field, so the
    user can go straight to the problem. It is a ``ValueError`` (via ``UserError``), and the CLI
    prints it without a traceback.
    """


class SplitMissing(DatasetError):
    """The dataset has no such split (a Blender folder without ``transforms_val.json``): the one
    problem a caller may answer by trying another split; a malformed split is a plain DatasetError."""
