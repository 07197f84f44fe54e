"""Validated instruments as data files: schema, scoring and psychometrics.

This package depends on nothing else of Flourish's, so it can score data exported from anywhere.
"""
