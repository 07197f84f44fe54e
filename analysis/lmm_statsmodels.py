"""The reference engine: statsmodels' MixedLM, with its convergence checked.

statsmodels fits the same design matrices as the fast engine (`analysis.lmm_fast`) by its own
code, so the two check each other. Only the L-BFGS method is used: on lme4's sleepstudy
Nelder-Mead diverges and Powell is off by 2e-3 on the variances.
"""

from __future__ import annotations

import warnings

import numpy as np

STATSMODELS_RESTARTS = 3
CONVERGENCE_TOL = 2e-3  # lme4's check.conv.grad tolerance


def fit(y, X, Z, codes, reml: bool) -> dict:
    """MixedLM with L-BFGS; its convergence is checked with its own score, not its word.

    statsmodels' L-BFGS can stop well short of the maximum and still report convergence
    (seen on simulated trials: score of order 10-100, log-likelihood 5 to 18 units low). So
    lme4's rule is applied to statsmodels' own deviance gradient at its estimate (the gradient
    or the Newton step below 0.002) and, while it fails, the fit is restarted from that
    estimate. This never uses the fast engine, so the two stay independent.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    model = MixedLM(y, X, groups=codes, exog_re=Z)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(reml=reml, method="lbfgs")
        step = _statsmodels_step(model, result)
        restarts = 0
        while step > CONVERGENCE_TOL and restarts < STATSMODELS_RESTARTS:
            restarts += 1
            result = model.fit(reml=reml, method="lbfgs", start_params=result.params_object)
            step = _statsmodels_step(model, result)
    messages = list(dict.fromkeys(str(w.message) for w in caught))  # each once, in order
    if restarts:
        messages.append(
            f"L-BFGS stopped short of the maximum; restarted {restarts} time(s) from its own "
            f"estimate, final gradient/Newton step {step:.2g}"
        )
    p = X.shape[1]
    return {
        "beta": np.asarray(result.fe_params),
        "cov_beta": np.asarray(result.cov_params())[:p, :p],
        "cov_random": np.asarray(result.cov_re),
        "residual_var": float(result.scale),
        "loglik": float(result.llf),
        "converged": bool(result.converged) and step <= CONVERGENCE_TOL,
        "messages": messages,
    }


def _statsmodels_step(model, result) -> float:
    """lme4's convergence measure on statsmodels' own deviance: the largest of
    min(|gradient|, |Newton step|) over the covariance parameters (fixed effects profiled out),
    the Hessian by central differences of statsmodels' score."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    k_fe, k_re = model.k_fe, model.k_re

    def deviance_gradient(packed):
        params = MixedLMParams.from_packed(packed, k_fe, k_re, use_sqrt=True, has_fe=False)
        return -2 * np.asarray(model.score(params, profile_fe=True))

    x = result.params_object.get_packed(use_sqrt=True, has_fe=False)
    g = deviance_gradient(x)
    if np.max(np.abs(g)) <= CONVERGENCE_TOL:
        return float(np.max(np.abs(g)))
    h = 1e-5 * np.maximum(1.0, np.abs(x))
    hessian = np.column_stack(
        [
            (deviance_gradient(x + e) - deviance_gradient(x - e)) / (2 * e[j])
            for j, e in enumerate(np.diag(h))
        ]
    )
    try:
        newton = np.linalg.solve((hessian + hessian.T) / 2, g)
    except np.linalg.LinAlgError:
        newton = g
    return float(np.max(np.minimum(np.abs(g), np.abs(newton))))
