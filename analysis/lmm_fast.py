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

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

LOG_2PI = np.log(2 * np.pi)

try:  # installed with scikit-learn (a dependency of pingouin); optional here
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - the fit is the same, only slower on a busy machine
    threadpool_limits = None


def _single_threaded_blas():
    """Every BLAS call of a fit is on tiny matrices (L-BFGS-B's own, q x q and p x p), where
    OpenBLAS's thread start-up costs more than the work: on a loaded 2-core machine it doubled
    the time of a 300-participant fit. One thread while fitting."""
    return threadpool_limits(limits=1, user_api="blas") if threadpool_limits else nullcontext()


@dataclass(frozen=True)
class CrossProducts:
    """Sufficient statistics of the data for every theta: per-group and global cross-products.

    Per-group arrays keep the group index last, so that each (row, column) entry of the
    groups' q x q blocks is one contiguous vector and the algebra below is vector arithmetic.
    """

    ZtZ: np.ndarray  # (q, q, G)
    ZtX: np.ndarray  # (q, p, G)
    Zty: np.ndarray  # (q, G)
    XtX: np.ndarray  # (p, p)
    Xty: np.ndarray  # (p,)
    yty: float
    n: int

    @classmethod
    def from_arrays(cls, y, X, Z, groups) -> CrossProducts:
        """Sum the cross-products by group (`groups`: integer codes 0..G-1, any order)."""
        y, X, Z = (np.asarray(a, dtype=float) for a in (y, X, Z))
        order = np.argsort(groups, kind="stable")
        codes = np.asarray(groups)[order]
        y, X, Z = y[order], X[order], Z[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])

        def by_group(rows):
            return np.moveaxis(np.add.reduceat(rows, starts, axis=0), 0, -1).copy()

        return cls(
            ZtZ=by_group(Z[:, :, None] * Z[:, None, :]),
            ZtX=by_group(Z[:, :, None] * X[:, None, :]),
            Zty=by_group(Z * y[:, None]),
            XtX=X.T @ X,
            Xty=X.T @ y,
            yty=float(y @ y),
            n=len(y),
        )

    @property
    def q(self) -> int:
        return self.ZtZ.shape[0]

    @property
    def p(self) -> int:
        return self.XtX.shape[0]

    @property
    def n_groups(self) -> int:
        return self.ZtZ.shape[-1]


def _cholesky(M: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of the stacked (q, q, G) positive definite blocks."""
    q = M.shape[0]
    L = np.zeros_like(M)
    for j in range(q):
        L[j, j] = np.sqrt(M[j, j] - np.sum(L[j, :j] ** 2, axis=0))
        for i in range(j + 1, q):
            L[i, j] = (M[i, j] - np.sum(L[i, :j] * L[j, :j], axis=0)) / L[j, j]
    return L


def _forward(L: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Solve L W = R per group; R is (q, m, G)."""
    W = np.empty_like(R)
    for i in range(L.shape[0]):
        W[i] = (R[i] - np.einsum("kg,kmg->mg", L[i, :i], W[:i])) / L[i, i]
    return W


def _backward(L: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Solve L' W = R per group; R is (q, m, G)."""
    q = L.shape[0]
    W = np.empty_like(R)
    for i in reversed(range(q)):
        W[i] = (R[i] - np.einsum("kg,kmg->mg", L[i + 1 :, i], W[i + 1 :])) / L[i, i]
    return W


def _left(Lam_t: np.ndarray, stacked: np.ndarray) -> np.ndarray:
    """Lam_t @ block for every group's block of a (q, m, G) stack (or a (q, G) one).

    Written as scaled sums of whole (m, G) slices: faster than matmul for tiny q, and it skips
    the zeros of a triangular Lambda."""
    out = np.zeros(Lam_t.shape[:1] + stacked.shape[1:])
    for i, k in zip(*np.nonzero(Lam_t), strict=True):
        out[i] += Lam_t[i, k] * stacked[k]
    return out


def _blocks_times(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A_i @ B_i for every group: (q, q, G) times (q, m, G)."""
    out = np.zeros(A.shape[:1] + B.shape[1:])
    for i in range(A.shape[0]):
        for k in range(A.shape[1]):
            out[i] += A[i, k] * B[k]
    return out


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
    L: np.ndarray  # (q, q, G) per-group Cholesky factors
    RZX: np.ndarray  # (q, p, G) L_i^-1 Lambda' Z_i'X_i
    cu: np.ndarray  # (q, G) L_i^-1 Lambda' Z_i'y_i

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
    theta = np.asarray(theta, dtype=float)
    Lam = lambda_of(theta, q)
    # M_i = Lambda' Z_i'Z_i Lambda + I, positive definite for any theta.
    LtA = _left(Lam.T, cp.ZtZ)
    # Lambda' (Lambda'A)' = Lambda'A Lambda, since each A_i is symmetric.
    M = _left(Lam.T, np.swapaxes(LtA, 0, 1)) + np.eye(q)[:, :, None]
    L = _cholesky(M)
    rhs = np.concatenate([_left(Lam.T, cp.ZtX), _left(Lam.T, cp.Zty[:, None, :])], axis=1)
    W = _forward(L, rhs)
    RZX, cu = W[:, :p], W[:, p]
    # einsum, not matmul: BLAS on these skinny (p x G) products is slower, and its threads
    # fight each other on a busy machine.
    XtVX = cp.XtX - np.einsum("kig,kjg->ij", RZX, RZX)
    Xty = cp.Xty - np.einsum("kig,kg->i", RZX, cu)
    RX = linalg.cholesky(XtVX, lower=False)
    beta = linalg.cho_solve((RX, False), Xty)
    pwrss = cp.yty - float(np.sum(cu * cu)) - float(Xty @ beta)
    return Profile(
        theta=theta,
        Lambda=Lam,
        beta=beta,
        RX=RX,
        pwrss=pwrss,
        logdet_L=2.0 * float(np.sum(np.log(np.diagonal(L, axis1=0, axis2=1)))),
        logdet_RX=2.0 * float(np.sum(np.log(np.abs(np.diag(RX))))),
        n=cp.n,
        p=p,
        L=L,
        RZX=RZX,
        cu=cu,
    )


def deviance_gradient(cp: CrossProducts, prof: Profile, reml: bool) -> np.ndarray:
    """The gradient of the profiled deviance in theta, analytically.

    With E = dLambda/dtheta_k (a single 1 at row r, column c), M_i = Lambda'A_i Lambda + I,
    K_i = M_i^-1 Lambda', S = X'X - sum B_i' Lambda K_i B_i (A_i = Z_i'Z_i, B_i = Z_i'X_i):
    d log|M_i| = 2 (M_i^-1 Lambda' A_i)[c, r]; d r^2 = -2 sum_i res_i[r] u_i[c] (envelope
    theorem; res_i = Z_i'(y_i - X_i beta - Z_i Lambda u_i)); and
    d log|S| = -2 sum_i (K_i B_i S^-1 B_i' N_i')[c, r] with N_i = I - A_i Lambda K_i.
    """
    q, p = cp.q, cp.p
    Lam, L = prof.Lambda, prof.L
    rows, cols = theta_layout(q)
    H = _backward(L, _forward(L, _left(Lam.T, cp.ZtZ))).sum(axis=2)  # sum_i M_i^-1 Lam' A_i
    grad = 2 * H[cols, rows]
    u = _backward(L, (prof.cu - np.einsum("kpg,p->kg", prof.RZX, prof.beta))[:, None, :])[:, 0]
    Lam_u = Lam @ u
    res = cp.Zty - np.einsum("kpg,p->kg", cp.ZtX, prof.beta)
    res -= _blocks_times(cp.ZtZ, Lam_u[:, None, :])[:, 0]
    d_pwrss = -2 * np.einsum("kg,lg->kl", res, u)[rows, cols]
    dof = cp.n - p if reml else cp.n
    grad = grad + dof * d_pwrss / prof.pwrss
    if reml:
        F = _backward(L, prof.RZX)  # K_i B_i
        NB = cp.ZtX - _blocks_times(cp.ZtZ, _left(Lam, F))
        S_inv = linalg.cho_solve((prof.RX, False), np.eye(p))
        T = np.einsum("cbg,rbg->cr", np.einsum("cag,ab->cbg", F, S_inv), NB)
        grad = grad - 2 * T[cols, rows]
    return grad


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


def fit_profiled(cp: CrossProducts, reml: bool = True, start=None) -> ProfiledFit:
    """Minimise the profiled deviance over theta with L-BFGS-B, the analytic gradient and
    lme4's bounds (diagonal of Lambda >= 0), starting where lme4 does (Lambda = I).

    Convergence is judged as lme4's `check.conv.grad` does, not by the optimiser's word: at the
    optimum the gradient, or the Newton step solve(Hessian, gradient), must be below 0.002 in
    every parameter not held at its bound.
    """
    rows, cols = theta_layout(cp.q)
    lower = np.where(rows == cols, 0.0, -np.inf)
    x0 = theta_of(np.eye(cp.q)) if start is None else np.asarray(start, dtype=float)
    evaluations = 0

    def value_and_gradient(theta):
        nonlocal evaluations
        evaluations += 1
        prof = profile(cp, theta)
        return prof.deviance(reml), deviance_gradient(cp, prof, reml)

    def minimise(start):
        return optimize.minimize(
            value_and_gradient,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(lo if lo == 0 else None, None) for lo in lower],
            options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 1000},
        )

    with _single_threaded_blas():
        result = minimise(x0)
        for _ in range(cp.q):
            restart = _away_from_saddle(cp, result.x, result.fun, lower, reml)
            if restart is None:
                break
            result = minimise(restart)
        theta = np.maximum(result.x, lower)
        best = profile(cp, theta)
        grad = deviance_gradient(cp, best, reml)
        free = ~((theta <= lower) & (grad >= 0))
        converged = _lme4_converged(cp, theta, grad, free, reml, lower)
    return ProfiledFit(
        profile=best,
        reml=reml,
        deviance=best.deviance(reml),
        converged=converged,
        message=str(result.message),
        gradient=np.where(free, grad, 0.0),
        evaluations=evaluations,
        lower_bounds=lower,
    )


def _away_from_saddle(cp, theta, value, lower, reml):
    """A start better than theta, if a diagonal entry of Lambda held at 0 is a saddle.

    The deviance is even in the sign of each column of Lambda, so where a column's diagonal
    entry is 0 (and, for the last column, always) its gradient in that entry is 0 whatever the
    curvature: a gradient method that reaches such a point stays there, though the deviance may
    fall on either side. lme4's derivative-free BOBYQA does not share the trap; here each such
    entry is stepped away from 0 and a lower deviance restarts the optimiser.
    """
    for k in np.flatnonzero((lower == 0) & (theta <= 1e-6)):
        for step in (1e-2, 1e-1, 1.0):
            trial = np.maximum(theta, lower)
            trial[k] = step
            if profile(cp, trial).deviance(reml) < value - 1e-7 * max(1.0, abs(value)):
                return trial
    return None


def _lme4_converged(cp, theta, grad, free, reml, lower, tol=2e-3) -> bool:
    if not free.any() or np.max(np.abs(grad[free])) < tol:
        return True  # the Newton step only matters when the gradient itself is large
    k = len(theta)
    hessian = np.empty((k, k))
    for j in range(k):
        step = np.eye(k)[j] * 1e-5 * max(1.0, abs(theta[j]))
        down = theta - step if theta[j] - step[j] >= lower[j] else theta
        up_grad = deviance_gradient(cp, profile(cp, theta + step), reml)
        down_grad = deviance_gradient(cp, profile(cp, down), reml)
        hessian[:, j] = (up_grad - down_grad) / (theta[j] + step[j] - down[j])
    hessian = (hessian + hessian.T)[np.ix_(free, free)] / 2
    g = grad[free]
    try:
        newton = np.linalg.solve(hessian, g)
    except np.linalg.LinAlgError:
        newton = g
    return bool(np.max(np.minimum(np.abs(newton), np.abs(g))) < tol)


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
