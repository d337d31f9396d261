"""Olist lambda data platform: batch and streaming lanes over local cloud emulation."""

__version__ = "0.1.0"
