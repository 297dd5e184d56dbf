"""The one exception type that steps turn into a clear message instead of a traceback."""


class SpkidError(Exception):
    """A problem the user can fix: the message names the file, line or utterance and the fix."""


def error_message(e: SpkidError) -> str:
    """The message of ``e`` without what a DataLoader worker wraps around it.

    A SpkidError raised in a worker comes back re-raised with the worker's traceback inside its
    message ("Caught AudioError in DataLoader worker process 0. Original Traceback ..."), which
    buries the one line that names the utterance and the fix; this keeps that line."""
    text = str(e)
    if "Original Traceback" not in text:
        return text
    last = text.strip().splitlines()[-1]
    head = f"{type(e).__name__}: "
    return last.split(head, 1)[1] if head in last else last
