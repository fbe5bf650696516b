"""CLV and churn modelling: purchase models, spend model, scoring, backtest, reporting.

Modules
-------
errors          ``ModelError``, raised for problems a user can fix.
histogram       time-unit conversion, validation, the weighted (x, t_x, T) histogram.
formulas        vectorised closed forms: P(alive), P(purchase), expected purchases.
purchase_models BG/NBD, Pareto/NBD, MBG/NBD fits with a penalizer ladder.
spend_model     Gamma-Gamma expected order value.
scoring         per-customer scores, CLV, churn-risk and value-tier bands.
backtest        calibration/holdout comparison against a naive baseline.
plots           PNG diagnostics; model_card: Markdown summary; simulate: test data.
"""
