# gunicorn configuration for the Flourish web server (the scheduler runs as its own process,
# `flourish scheduler`, so web workers never tick: see docs/operations.md).
# Usage: pip install 'flourish[deploy]'; gunicorn -c deploy/gunicorn.conf.py
import multiprocessing
import os

wsgi_app = "study.wsgi:app"
bind = os.environ.get("FLOURISH_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("FLOURISH_WEB_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("FLOURISH_WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 30
# Behind a TLS-terminating proxy: its X-Forwarded-Proto (so the app sees https) is believed only
# from these addresses (comma-separated; "*" inside a container network). Twilio
# signatures are checked against FLOURISH_PUBLIC_URL, so they never depend on these headers
# (docs/deploy.md, "TLS proxy and Twilio's webhooks").
forwarded_allow_ips = os.environ.get("FLOURISH_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# gunicorn 24+ opens a control socket under $HOME; Flourish does not use it, and several
# servers on one host would share its path.
control_socket_disable = True
