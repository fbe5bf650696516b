"""What the purchase and spend models share: the fitted-model record and the penalizer ladder.

Every fit walks an escalation ladder of L2 penalizer coefficients until one gives
usable parameters (:func:`climb_ladder`); a fitted or loaded model is a
:class:`FittedModel`: parameters, fit diagnostics and the lifetimes fitter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from ml.errors import FIT_ERRORS, ModelError

#: Penalizer coefficients tried in order until a fit converges.
PENALIZER_LADDER: tuple[float, ...] = (0.0, 0.001, 0.01, 0.1)

#: Purchase-model parameters outside this range are a degenerate (non-converged) fit.
PARAM_RANGE: tuple[float, float] = (1e-6, 1e6)

T = TypeVar("T")


#: How lifetimes' fitters minimise: BFGS over log parameters from all 0.1, tolerance 1e-7.
_LIFETIMES_START = 0.1
_LIFETIMES_TOL = 1e-7

#: Step in log parameters of the finite-difference Hessian of :func:`minimize_as_lifetimes`.
_HESSIAN_STEP = 1e-5

#: A BFGS "precision loss" stop with every gradient component below this is converged.
_STALL_GTOL = 1e-6


class LifetimesFitError(ModelError):
    """BFGS did not converge, or its optimum leaves a parameter unidentified."""


def minimize_as_lifetimes(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]], names: Sequence[str]
) -> tuple[np.ndarray, float]:
    """Minimise an objective over log parameters the way lifetimes' fitters do.

    lifetimes' ``BetaGeoFitter``, ``ModifiedBetaGeoFitter`` and ``GammaGammaFitter`` run
    scipy's BFGS from all log parameters 0.1 with tolerance 1e-7 on autograd's value and
    gradient, then invert autograd's Hessian for standard errors, which fails when the
    optimum leaves a parameter unidentified (the objective exactly flat along it, e.g.
    BG/NBD's ``a`` and ``b`` when nobody repeated). Here ``objective`` supplies its exact
    gradient and the same BFGS run reaches the same optimum; the Hessian (forward
    differences of the gradient) must be finite and invertible, as lifetimes' must.

    A stop on "precision loss" (the line search cannot improve the value in its last
    digits) counts as converged when the gradient is below :data:`_STALL_GTOL`: on a
    flat ridge autograd's and numpy's last digits differ and either may stop there.

    Parameters
    ----------
    objective : callable
        ``theta -> (value, gradient)`` over the log parameters.
    names : sequence of str
        Parameter names, for messages.

    Returns
    -------
    theta : numpy.ndarray
        The minimising log parameters.
    value : float
        The objective there.

    Raises
    ------
    LifetimesFitError
        If BFGS stops elsewhere than at a stationary point, or the Hessian there is not
        finite or is singular.
    """
    from scipy.optimize import minimize

    start = np.full(len(names), _LIFETIMES_START)
    with np.errstate(all="ignore"):
        result = minimize(objective, start, jac=True, method="BFGS", tol=_LIFETIMES_TOL)
        stalled = (
            result.status == 2
            and np.all(np.isfinite(result.jac))
            and float(np.max(np.abs(result.jac))) < _STALL_GTOL
        )
        if not (result.success or stalled):
            raise LifetimesFitError(
                f"BFGS stopped without converging ({result.message}); try a larger penalizer"
            )
        theta = result.x
        _, grad = objective(theta)
        columns = []
        for i in range(len(theta)):
            step = np.zeros_like(theta)
            step[i] = _HESSIAN_STEP
            columns.append((objective(theta + step)[1] - grad) / _HESSIAN_STEP)
    hessian = np.array(columns)
    size = float(np.max(np.abs(hessian))) if np.all(np.isfinite(hessian)) else 0.0
    flat = [n for n, c in zip(names, columns, strict=True) if np.max(np.abs(c)) <= 1e-6 * size]
    try:
        if not np.all(np.isfinite(hessian)):
            raise np.linalg.LinAlgError("non-finite Hessian")
        np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        which = f" along {', '.join(flat)}" if flat else ""
        raise LifetimesFitError(
            f"the data do not identify the parameters: the objective is flat{which} at the "
            "optimum (for example, no repeat purchases)"
        ) from None
    return theta, float(result.fun)


class RejectedFit(Exception):
    """A ladder step finished but its parameters are unusable; the message says why."""


def json_float(value: float) -> float | None:
    """Return ``value`` as a float, or ``None`` when it is NaN or infinite (JSON has neither).

    Parameters
    ----------
    value : float
        Number to store.

    Returns
    -------
    float or None
        The number, or ``None`` if not finite.
    """
    return float(value) if math.isfinite(value) else None


def parameter_problem(params: Mapping[str, float]) -> str | None:
    """Describe why parameters are unusable, or return ``None`` if all are finite and > 0.

    Parameters
    ----------
    params : mapping of str to float
        Fitted parameters.

    Returns
    -------
    str or None
        ``"non-finite or non-positive parameters {...}"`` or ``None``.
    """
    values = np.array(list(params.values()), dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        return f"non-finite or non-positive parameters {dict(params)}"
    return None


def climb_ladder(attempt: Callable[[float], T], penalizers: Sequence[float], failure: str) -> T:
    """Return the result of the first penalizer whose ``attempt`` succeeds.

    Parameters
    ----------
    attempt : callable
        Fits at one penalizer coefficient and returns the model. It raises
        :class:`RejectedFit` when the fit finished with unusable parameters; the
        optimiser's own failures (:data:`ml.errors.FIT_ERRORS`) also move on to the
        next coefficient. Any other exception is a bug and propagates.
    penalizers : sequence of float
        Coefficients to try, in order.
    failure : str
        Message when every coefficient fails, with ``{tried}`` and ``{last_error}``
        placeholders.

    Returns
    -------
    object
        What ``attempt`` returned.

    Raises
    ------
    ModelError
        If ``penalizers`` is empty or no coefficient gives a usable fit.
    """
    if not penalizers:
        raise ModelError("the penalizer ladder is empty; pass at least one coefficient")
    last_error = "no attempt made"
    for penalizer in penalizers:
        try:
            return attempt(float(penalizer))
        except RejectedFit as exc:
            last_error = str(exc)
        except FIT_ERRORS as exc:  # no convergence / numeric breakdown only
            last_error = f"{type(exc).__name__}: {str(exc).strip()}"
    tried = ", ".join(f"{p:g}" for p in penalizers)
    raise ModelError(failure.format(tried=tried, last_error=last_error))


@dataclass(frozen=True, kw_only=True)
class FittedModel:
    """Parameters and fit diagnostics of a fitted or loaded model.

    Subclasses name their parameters and label in class variables; constructing one
    checks that every parameter is present and stores them as floats in that order.

    Attributes
    ----------
    params : dict of str to float
        Parameters in lifetimes' names and order.
    log_likelihood : float
        Total (weight-summed) log-likelihood of the fitting data at ``params`` without
        the penalty term; NaN when loaded without it.
    penalizer : float
        Penalizer coefficient of the ladder step that converged; NaN if unknown.
    customers : int
        Customers the model was fitted on (0 if unknown).
    fitter : object
        The lifetimes fitter with ``params_`` set (the fitted object, or one rebuilt
        from ``params``).
    """

    params: dict[str, float]
    log_likelihood: float = math.nan
    penalizer: float = math.nan
    customers: int = 0
    fitter: Any = field(default=None, repr=False, compare=False)

    #: Parameter names in lifetimes' order.
    param_names: ClassVar[tuple[str, ...]] = ()
    #: Human-readable model name, e.g. ``"BG/NBD"``.
    label: ClassVar[str] = ""
    #: What the user should do when saved parameters are unusable.
    remedy: ClassVar[str] = "refit the model"

    def __post_init__(self) -> None:
        missing = [p for p in self.param_names if p not in self.params]
        if missing:
            raise ModelError(
                f"saved {self.label} parameters lack {', '.join(missing)}; expected "
                f"{', '.join(self.param_names)} — {self.remedy}"
            )
        object.__setattr__(self, "params", {p: float(self.params[p]) for p in self.param_names})
        object.__setattr__(self, "log_likelihood", float(self.log_likelihood))
        object.__setattr__(self, "penalizer", float(self.penalizer))
        object.__setattr__(self, "customers", int(self.customers))

    def _set_fitter(self, fitter: Any) -> None:
        object.__setattr__(self, "fitter", fitter)

    def _fit_summary(self) -> dict[str, Any]:
        """``params, log_likelihood, penalizer, customers`` for JSON (NaN becomes None)."""
        return {
            "params": {k: float(v) for k, v in self.params.items()},
            "log_likelihood": json_float(self.log_likelihood),
            "penalizer": json_float(self.penalizer),
            "customers": int(self.customers),
        }

    @staticmethod
    def _diagnostics(doc: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the diagnostics saved by :meth:`_fit_summary`."""

        def number(key: str) -> float:
            value = doc.get(key)
            return math.nan if value is None else float(value)

        return {
            "log_likelihood": number("log_likelihood"),
            "penalizer": number("penalizer"),
            "customers": int(doc.get("customers") or 0),
        }
