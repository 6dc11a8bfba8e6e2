"""Orchestration: whole tasks (explain files, measure, report, file into a study) run end to end.

The command line, the window and :mod:`engine.api` are thin callers of these functions: a choice
such as 2-D versus 3-D, or which outputs to write, is made here once.
"""
