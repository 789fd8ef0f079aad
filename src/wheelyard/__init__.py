"""wheelyard: turn per-GPU-family native SDK build artifacts into verified, indexed wheels."""

__version__ = "0.1.0"
