"""The researcher dashboards: a Dash app mounted into the Flask server, one module per page."""
