"""The base of every error that is the user's to fix (bad input, missing stage output).

launch.py reports these as one clear line and exit status 2 instead of a traceback;
anything else is a bug and keeps its traceback.
"""


class UserFacingError(Exception):
    """An error whose message alone tells the user what to fix (names the file or key)."""


class MissingStageOutput(UserFacingError, FileNotFoundError):
    """An output of an earlier stage that this stage needs is not in run.dir."""
