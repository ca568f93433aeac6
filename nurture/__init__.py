"""nurture: a marketing-automation nurture engine."""

__version__ = "0.1.0"
