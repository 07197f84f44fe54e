"""Who may reach the dashboards, and the browser rules their responses carry.

Three things Dash does not do on its own, installed on the Flask app by `install(app, prefix)`:

- **Sign-in for every route under the prefix.** Dash registers its routes (`_dash-layout`,
  `_dash-dependencies`, `_dash-update-component`, `_dash-component-suites/...`, `assets/...`,
  the page catch-all) directly on the Flask app, so protecting the pages alone would leave the
  callback endpoint open. A `before_request` guard sends anonymous visitors of a page to the
  login page and answers everything else (the machine routes) with 401 JSON.
- **CSRF without exemptions.** Flask-WTF's `CSRFProtect` stays on for the callback POSTs. The
  renderer sends the token in an `X-CSRFToken` header read from a cookie (Dash's
  `csrf_token_name`); the guard sets that cookie, scoped to the prefix and `SameSite=Strict`,
  on every signed-in dashboard response. The token is Flask-WTF's own, checked against the
  session, so another site can neither read it nor make the browser send the header.
- **A strict CSP with one nonce.** The app's policy is `default-src 'self'`. Dash's index page
  has one inline script (the renderer bootstrap); `nonce()` gives each response a fresh value
  that `dashboards.app` writes into that script tag and `_csp` into the header, so no other
  inline script can run.

Callbacks check permissions themselves with `@requires("permission")`: a crafted POST to
`_dash-update-component` from a signed-in account without the permission gets 403 and nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, g, jsonify, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from study import accounts

CSRF_COOKIE = "flourish_dashboard_csrf"


def nonce() -> str:
    """This response's CSP nonce (one per request, created on first use)."""
    if "dashboard_nonce" not in g:
        g.dashboard_nonce = secrets.token_urlsafe(18)
    return g.dashboard_nonce


def requires(permission: str) -> Callable:
    """Wrap a Dash callback so that it runs only for a signed-in researcher holding
    `permission`; anyone else gets 401 or 403 and the callback's outputs are left alone."""
    accounts.has_permission("admin", permission)  # a misspelt permission fails at import

    def decorator(callback: Callable) -> Callable:
        @wraps(callback)
        def wrapped(*args: Any, **kwargs: Any):
            if not current_user.is_authenticated:
                abort(401)
            if not current_user.can(permission):
                abort(403)
            return callback(*args, **kwargs)

        return wrapped

    return decorator


def can(permission: str) -> bool:
    """Whether the signed-in researcher holds `permission` (False when nobody is signed in)."""
    return bool(current_user.is_authenticated and current_user.can(permission))


def install(app: Flask, prefix: str) -> None:
    """Guard every route under `prefix` (e.g. "/dashboard/") and set its response headers."""
    bare = prefix.rstrip("/")

    def under_prefix() -> bool:
        return request.path == bare or request.path.startswith(prefix)

    def _guard():
        if not under_prefix():
            return None
        if not current_user.is_authenticated:
            if _is_page(request.path[len(prefix) :]) and request.method == "GET":
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("auth.login", next=target))
            return jsonify(error="authentication required"), 401
        if not current_user.can("view_study"):
            return jsonify(error="forbidden"), 403
        return None

    # First of all request hooks, before CSRFProtect's: an anonymous POST is refused as
    # anonymous (401), not as a bad form (400), and learns nothing about tokens.
    app.before_request_funcs.setdefault(None, []).insert(0, _guard)

    @app.after_request
    def _headers(response):
        if not under_prefix():
            return response
        response.headers["Content-Security-Policy"] = _csp(nonce())
        if current_user.is_authenticated:
            response.set_cookie(
                CSRF_COOKIE,
                generate_csrf(),
                path=prefix,
                secure=bool(app.config.get("SESSION_COOKIE_SECURE")),
                httponly=False,  # the renderer reads it to send the header
                samesite="Strict",
            )
        # Study data is not kept in caches; the libraries' fingerprinted bundles
        # (`_dash-component-suites`, public code) keep Dash's long cache lifetime.
        rest = request.path[len(prefix) :]
        if _is_page(rest) or (
            rest.startswith("_dash-") and not rest.startswith("_dash-component-suites/")
        ):
            response.headers["Cache-Control"] = "no-store"
        return response


def _is_page(rest: str) -> bool:
    """Pages are what people open; the rest (`_dash-*`, assets, favicon) is for the renderer."""
    return not (rest.startswith("_") or rest.startswith("assets/"))


def _csp(script_nonce: str) -> str:
    # Styles: React and plotly.js set element styles through the CSSOM, which CSP allows;
    # plotly.js also adds rules to a <style> element it creates, hence 'unsafe-inline' for
    # styles on these pages only. Scripts stay strict: 'self' plus this response's nonce.
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{script_nonce}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )
