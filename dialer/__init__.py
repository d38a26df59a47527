"""The `dialer` command: the composition root that wires bot, call server, scheduler, bus and settings."""

__version__ = "0.1.0"
