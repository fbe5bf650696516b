"""CLV and churn modelling: purchase models, spend model, scoring, backtest, reporting.

Modules
-------
errors            ``ModelError``, raised for problems a user can fix.
histogram         time-unit conversion, validation, the weighted (x, t_x, T) histogram.
purchase_models   one class per purchase model (BG/NBD, Pareto/NBD, MBG/NBD) behind
                  ``PurchaseModel``: fit on the histogram, P(alive), P(purchase),
                  expected purchases, to_dict/from_dict; ``MODELS`` maps names to classes.
pareto_nbd        Pareto/NBD numerics: likelihood, dropout integral, L-BFGS-B fit.
fitting           the penalizer ladder and the fitted-model record both model kinds share.
lifetimes_adapter the only module that imports lifetimes (and touches its private API).
spend_model       Gamma-Gamma expected order value.
scoring           per-customer scores, CLV, churn-risk and value-tier bands.
backtest          calibration/holdout comparison against a naive baseline.
tracking          weekly repeat purchases of a cohort, actual vs predicted.
plots             PNG diagnostics; model_card: Markdown summary; simulate: test data.
"""
