"""Quantization jobs: submitted and cancelled here, run by the quantizer, followed from its events."""
