"""Evaluation: a split through a trained generator, metrics, the HTML report."""
