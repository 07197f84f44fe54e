"""The researcher dashboards: a Dash app mounted into the Flask server, one module per page.

Layout of the package:

- `app.py`: `init_app(flask_app)`, called once by `study.web.create_app`; builds the Dash
  instance (kept on `app.extensions["dashboards"]`, never in a global), the shell (study
  selector, navigation) and the router that draws the page the URL names.
- `security.py`: sign-in on every route under /dashboard/, the CSRF cookie the renderer echoes
  in its header, the per-response CSP nonce, and `requires(permission)` for callbacks.
- `components.py`: `View` (the study and how this researcher sees its arms: by key, or
  blinded as "Arm A"), the filter bar, HTML tables, and `register_download` (audited CSV).
- `queries/`: the numbers, as plain functions over a session returning pandas frames; they
  know nothing of Dash or Flask and are tested on a hand-counted study.
- `pages/`: one module per page, and `pages.PAGES`, the registry.

Adding a page (e.g. outcomes):

1. Write the data functions in `queries/<topic>.py` (session + study id + `Filters` in,
   DataFrame out) and test them in `tests/dashboards/` on `build_small_study` or a study of
   your own with counts worked out by hand.
2. Write `pages/<topic>.py` with `PATH` (URL under /dashboard/), `TITLE`, `PERMISSION`
   (needed to open it), `ID` (prefix of its component ids), `layout(study_id)` (use
   `View.of(study_id)`, `filter_bar`, `table_section`) and `register(app)`. There, draw the
   page with `@on_filters(app, ID, outputs, PERMISSION)` (a callback on the filter bar that
   checks the permission and hands you the `View`), show arms through `view.label_arms(...)`,
   and call `register_download(...)` for every table. Any other callback carries
   `@requires("<permission>")` under its `@app.callback(...)`.
3. Add the module to `PAGES` in `pages/__init__.py`. The router, the navigation, sign-in,
   CSRF and CSP then apply to it with no further change.

Anything a page does that changes state or reveals personal data goes through a domain function
that writes the audit log (as `study.schedule.retry.retry_failed` and
`consent.roster.reveal_contacts` do), never through SQL in the page.
"""
