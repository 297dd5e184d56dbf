"""The one exception type that steps turn into a clear message instead of a traceback."""


class SpkidError(Exception):
    """A problem the user can fix: the message names the file, line or utterance and the fix."""
