"""An exact profiled-likelihood fitter for linear mixed models with one grouping factor.

The model is lme4's: y = X beta + Z b + e, with e ~ N(0, sigma^2 I) and, for each group i,
b_i = Lambda(theta) u_i, u_i ~ N(0, sigma^2 I_q), where Lambda is the q x q lower-triangular
relative covariance factor (Bates, Maechler, Bolker & Walker 2015, "Fitting linear mixed-effects
models using lme4", J. Stat. Softw. 67(1), section 3). Given theta, beta and sigma^2 have closed
forms and the deviance is "profiled": only theta is optimised, under lme4's bounds (the
diagonal of Lambda is non-negative).

Because there is one grouping factor, Z'Z is block diagonal with one q x q block per group, so
each evaluation needs only per-group q x q algebra. The per-group cross-products Z_i'Z_i,
Z_i'X_i and Z_i'y_i are summed once; every deviance evaluation then works on stacked
(groups, q, q) arrays in numpy, with no Python loop over groups and a cost that does not
depend on the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

LOG_2PI = np.log(2 * np.pi)


@dataclass(frozen=True)
class CrossProducts:
    """Sufficient statistics of the data for every theta: per-group and global cross-products."""

    ZtZ: np.ndarray  # (G, q, q)
    ZtX: np.ndarray  # (G, q, p)
    Zty: np.ndarray  # (G, q)
    XtX: np.ndarray  # (p, p)
    Xty: np.ndarray  # (p,)
    yty: float
    n: int
    p: int
    q: int

    @classmethod
    def from_arrays(cls, y, X, Z, groups) -> CrossProducts:
        """Sum the cross-products by group (`groups`: integer codes 0..G-1, any order)."""
        y, X, Z = (np.asarray(a, dtype=float) for a in (y, X, Z))
        order = np.argsort(groups, kind="stable")
        codes = np.asarray(groups)[order]
        y, X, Z = y[order], X[order], Z[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        return cls(
            ZtZ=np.add.reduceat(Z[:, :, None] * Z[:, None, :], starts, axis=0),
            ZtX=np.add.reduceat(Z[:, :, None] * X[:, None, :], starts, axis=0),
            Zty=np.add.reduceat(Z * y[:, None], starts, axis=0),
            XtX=X.T @ X,
            Xty=X.T @ y,
            yty=float(y @ y),
            n=len(y),
            p=X.shape[1],
            q=Z.shape[1],
        )

    @property
    def n_groups(self) -> int:
        return self.ZtZ.shape[0]


@dataclass(frozen=True)
class Profile:
    """Everything the deviance at one theta determines (lme4's notation)."""

    theta: np.ndarray
    Lambda: np.ndarray  # (q, q)
    beta: np.ndarray
    RX: np.ndarray  # upper Cholesky factor of X'V^-1 X * sigma^2, (p, p)
    pwrss: float  # penalised weighted residual sum of squares r^2(theta)
    logdet_L: float  # log |L_theta|^2 = sum over groups of log |Lambda'Z_i'Z_i Lambda + I|
    logdet_RX: float  # log |RX|^2
    n: int
    p: int

    def sigma2(self, reml: bool) -> float:
        return self.pwrss / (self.n - self.p if reml else self.n)

    def deviance(self, reml: bool) -> float:
        """-2 log-likelihood (ML) or lme4's REML criterion, at this theta's profiled optimum."""
        if reml:
            dof = self.n - self.p
            return self.logdet_L + self.logdet_RX + dof * (1 + LOG_2PI + np.log(self.pwrss / dof))
        return self.logdet_L + self.n * (1 + LOG_2PI + np.log(self.pwrss / self.n))

    def deviance_at_sigma(self, sigma: float, reml: bool) -> float:
        """The deviance as a function of (theta, sigma), not profiled over sigma (for the
        Satterthwaite approximation, which differentiates with respect to both)."""
        dof = self.n - self.p if reml else self.n
        extra = self.logdet_RX if reml else 0.0
        return self.logdet_L + extra + dof * (LOG_2PI + 2 * np.log(sigma)) + self.pwrss / sigma**2

    def unscaled_cov_beta(self) -> np.ndarray:
        """(X'V^-1 X)^-1 / sigma^2: multiply by sigma^2 for the covariance of beta-hat."""
        inv = linalg.solve_triangular(self.RX, np.eye(self.p))
        return inv @ inv.T


def theta_layout(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of theta's entries in Lambda: lme4's order, the lower triangle
    column by column."""
    rows, cols = [], []
    for j in range(q):
        for i in range(j, q):
            rows.append(i)
            cols.append(j)
    return np.array(rows), np.array(cols)


def lambda_of(theta: np.ndarray, q: int) -> np.ndarray:
    Lam = np.zeros((q, q))
    rows, cols = theta_layout(q)
    Lam[rows, cols] = theta
    return Lam


def theta_of(Lam: np.ndarray) -> np.ndarray:
    rows, cols = theta_layout(Lam.shape[0])
    return Lam[rows, cols]


def profile(cp: CrossProducts, theta: np.ndarray) -> Profile:
    """Solve the penalised least-squares problem at theta (all groups at once)."""
    q, p = cp.q, cp.p
    Lam = lambda_of(np.asarray(theta, dtype=float), q)
    LamT = Lam.T
    M = LamT @ cp.ZtZ @ Lam + np.eye(q)  # (G, q, q), positive definite for any theta
    L = np.linalg.cholesky(M)
    rhs = np.concatenate([LamT @ cp.ZtX, (LamT @ cp.Zty[:, :, None])], axis=2)
    W = np.linalg.solve(L, rhs)  # L_i^-1 Lambda' [Z_i'X_i | Z_i'y_i]
    RZX, cu = W[:, :, :p], W[:, :, p]
    XtVX = cp.XtX - np.einsum("gki,gkj->ij", RZX, RZX)
    Xty = cp.Xty - np.einsum("gki,gk->i", RZX, cu)
    RX = linalg.cholesky(XtVX, lower=False)
    beta = linalg.cho_solve((RX, False), Xty)
    pwrss = cp.yty - float(np.sum(cu * cu)) - float(Xty @ beta)
    diag_L = np.diagonal(L, axis1=1, axis2=2)
    return Profile(
        theta=np.asarray(theta, dtype=float),
        Lambda=Lam,
        beta=beta,
        RX=RX,
        pwrss=pwrss,
        logdet_L=2.0 * float(np.sum(np.log(diag_L))),
        logdet_RX=2.0 * float(np.sum(np.log(np.abs(np.diag(RX))))),
        n=cp.n,
        p=p,
    )


@dataclass(frozen=True)
class ProfiledFit:
    """The optimum: theta, the profile there, and how the optimiser fared."""

    profile: Profile
    reml: bool
    deviance: float
    converged: bool
    message: str
    gradient: np.ndarray  # of the deviance w.r.t. theta, projected on the bounds
    evaluations: int
    lower_bounds: np.ndarray

    @property
    def sigma2(self) -> float:
        return self.profile.sigma2(self.reml)

    @property
    def cov_beta(self) -> np.ndarray:
        return self.sigma2 * self.profile.unscaled_cov_beta()

    @property
    def cov_random(self) -> np.ndarray:
        Lam = self.profile.Lambda
        return self.sigma2 * (Lam @ Lam.T)


def _central_gradient(f, x, lower, step=1e-5):
    """Central differences, one-sided where a bound forbids stepping below it."""
    g = np.empty_like(x)
    for k in range(len(x)):
        h = step * max(1.0, abs(x[k]))
        up, down = x.copy(), x.copy()
        up[k] += h
        if x[k] - h >= lower[k]:
            down[k] -= h
            g[k] = (f(up) - f(down)) / (2 * h)
        else:
            g[k] = (f(up) - f(x)) / h
    return g


def fit_profiled(cp: CrossProducts, reml: bool = True, start=None) -> ProfiledFit:
    """Minimise the profiled deviance over theta with L-BFGS-B and lme4's bounds.

    Starts where lme4 does (Lambda = I) unless `start` is given. Convergence is judged both by
    the optimiser and by the projected gradient at the optimum (lme4 checks its gradient too).
    """
    rows, cols = theta_layout(cp.q)
    lower = np.where(rows == cols, 0.0, -np.inf)
    x0 = theta_of(np.eye(cp.q)) if start is None else np.asarray(start, dtype=float)
    evaluations = 0

    def deviance(theta):
        nonlocal evaluations
        evaluations += 1
        return profile(cp, theta).deviance(reml)

    def value_and_gradient(theta):
        return deviance(theta), _central_gradient(deviance, theta, lower, step=1e-6)

    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    result = optimize.minimize(
        value_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-14, "gtol": 1e-7, "maxiter": 1000},
    )
    theta = np.maximum(result.x, lower)
    best = profile(cp, theta)
    dev = best.deviance(reml)
    grad = _central_gradient(deviance, theta, lower, step=1e-5)
    at_bound = (theta <= lower + 1e-10) & (grad > 0)
    projected = np.where(at_bound, 0.0, grad)
    # lme4 flags a gradient above 0.002 (scaled by the Hessian); the deviance's own gradient
    # is judged here, so a line search that stopped short of the optimum is not "converged".
    converged = bool(np.max(np.abs(projected), initial=0.0) < 2e-3)
    return ProfiledFit(
        profile=best,
        reml=reml,
        deviance=dev,
        converged=converged,
        message=str(result.message),
        gradient=projected,
        evaluations=evaluations,
        lower_bounds=lower,
    )


def satterthwaite_df(cp: CrossProducts, fit: ProfiledFit, contrast: np.ndarray) -> float:
    """Satterthwaite's denominator df for the contrast c'beta, as lmerTest computes it.

    The variance parameters are phi = (theta, sigma); their asymptotic covariance is twice the
    inverse Hessian of the deviance in phi (not profiled over sigma), and
    df = 2 (c'C c)^2 / (g' A g) with C = cov(beta-hat)(phi) and g its gradient in phi
    (Kuznetsova, Brockhoff & Christensen 2017, "lmerTest package", J. Stat. Softw. 82(13)).
    """
    c = np.asarray(contrast, dtype=float)
    phi = np.r_[fit.profile.theta, np.sqrt(fit.sigma2)]
    k = len(phi)

    def dev(v):
        return profile(cp, v[:-1]).deviance_at_sigma(v[-1], fit.reml)

    def var_contrast(v):
        return v[-1] ** 2 * float(c @ profile(cp, v[:-1]).unscaled_cov_beta() @ c)

    h = 1e-4 * np.maximum(1.0, np.abs(phi))
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            value = (
                dev(phi + ei + ej) - dev(phi + ei - ej) - dev(phi - ei + ej) + dev(phi - ei - ej)
            ) / (4 * h[i] * h[j])
            hessian[i, j] = hessian[j, i] = value
    gradient = np.array(
        [
            (var_contrast(phi + np.eye(k)[i] * h[i]) - var_contrast(phi - np.eye(k)[i] * h[i]))
            / (2 * h[i])
            for i in range(k)
        ]
    )
    A = 2 * np.linalg.inv(hessian)
    return float(2 * var_contrast(phi) ** 2 / (gradient @ A @ gradient))
