"""The one exception type the modelling code raises for problems a user can fix."""


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


def _fit_errors() -> tuple[type[BaseException], ...]:
    import numpy as np

    from ml.lifetimes_adapter import ConvergenceError

    return (ConvergenceError, np.linalg.LinAlgError, FloatingPointError, OverflowError, ModelError)


#: What a penalizer ladder may catch and try the next rung on: the optimiser did not
#: converge, or the numbers broke down. Anything else is a bug and must fail the run.
FIT_ERRORS: tuple[type[BaseException], ...] = _fit_errors()
