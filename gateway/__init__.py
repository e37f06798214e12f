"""The chat dialect gateway: five customer-chat dialects, one canonical event model."""

__version__ = "0.1.0"
