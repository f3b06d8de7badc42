"""The one exception type for bad user input.

A :class:`UserError` is raised for anything the user can fix: a bad path, a flag value, a file whose
content does not fit (a scenario key, a CSV line, a checkpoint's config). Its message is one line that
names the file, the field and the value. The command line shows it as ``drive VERB: error: MESSAGE``
with exit status 2; every other exception is a bug and keeps its traceback.

It derives from :class:`ValueError`, so library callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad user input, reported in one line with exit status 2 by the command line."""
