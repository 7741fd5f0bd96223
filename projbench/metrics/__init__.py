"""Measurement suites: distortion, speed, memory, accuracy (one module each)."""
