"""labelgate: autolabel, audit, quarantine and publish versioned label sets."""

__version__ = "0.1.0"
