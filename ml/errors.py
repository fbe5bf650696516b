"""The one exception type the modelling code raises for problems a user can fix."""

import numpy as np


class ModelError(Exception):
    """A user-fixable modelling problem: missing columns, too little data, no convergence.

    The message says what is missing or wrong and what to do about it, so the
    caller can show it on one line without a traceback.

    Parameters
    ----------
    message : str
        Human-readable description of the problem and the remedy.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


#: What a penalizer ladder may catch and try the next rung on: the optimiser did not
#: converge (the fits raise a ModelError subclass), or the numbers broke down. Anything
#: else is a bug and must fail the run.
FIT_ERRORS: tuple[type[BaseException], ...] = (
    ModelError,
    np.linalg.LinAlgError,
    FloatingPointError,
    OverflowError,
)
