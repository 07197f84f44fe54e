"""The study server: protocols, enrollment, scheduling, delivery, logging, audit, web and CLI."""

__version__ = "0.1.0"
