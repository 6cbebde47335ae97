"""Evaluation: methods x datasets through the paper's protocol -> metrics, results files, report."""
