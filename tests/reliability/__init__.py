"""Reliability and security: faults at every I/O boundary, fuzzing, load, secret canaries."""
