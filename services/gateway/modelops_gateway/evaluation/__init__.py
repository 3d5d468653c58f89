"""Evaluation jobs: submitted and cancelled here, run by the evaluator, followed from its events."""
