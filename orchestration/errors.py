"""The one exception type for problems a user can cause and fix."""


class CrmError(Exception):
    """A user-fixable problem: bad input file, bad setting, missing data.

    The message names the file, row or column and says what to do. The CLI
    prints it on one line without a traceback.
    """
