"""WSGI entry point for production servers: `gunicorn -c deploy/gunicorn.conf.py`.

Configuration comes from the environment, exactly as for `flourish serve`.
"""

from .web import create_app

app = create_app()
