"""Helpers for tests that run Flourish as real processes (gunicorn, schedulers, dispatchers),
shared by the deployment, fault and dress-rehearsal tests:

- `processes`: free ports, waiting for a URL, environment for a server process, gunicorn with
  `deploy/gunicorn.conf.py` on a given database, killing a whole process group;
- `participants`: enrolled participants with open occasions and their survey links, and a
  participant's browser-like submission of a web survey;
- `twilio_server`: the fake Twilio (tests/fakes/twilio.py) served over HTTP, so a dispatcher in
  another process can send through it, and the `HttpClient` that process uses;
- `dispatcher`: `python -m tests.support.dispatcher`, the scheduler's tasks against that fake;
- `databases`: row counts of every table, for before/after comparisons.
"""
