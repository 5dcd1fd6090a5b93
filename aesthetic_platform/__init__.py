"""aesthetic_platform: distil a VLM judge into a light multi-dimensional aesthetic scorer.

The core package is plain Python + torch. Dagster only appears in
``aesthetic_platform.definitions`` (and the top-level ``assets``/``resources``/``jobs``
packages it wires together).
"""

__version__ = "0.1.0"
