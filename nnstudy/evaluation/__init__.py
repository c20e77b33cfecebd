"""Evaluation and statistics: test-set measures, spread over seeds, significance tests."""
