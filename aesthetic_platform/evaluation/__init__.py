"""Evaluation of the student: pairwise accuracy with CIs, baselines, reports."""

from aesthetic_platform.evaluation.stats import Accuracy, bootstrap_accuracy

__all__ = ["Accuracy", "bootstrap_accuracy"]
