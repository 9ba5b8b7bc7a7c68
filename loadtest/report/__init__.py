"""A load run as files a person can read: the autoscaling verdicts (verdicts.py), the figure (figures.py,
matplotlib), the report files (files.py), and the record of a run with its report (load_run.py).

Imports nothing else of loadtest: data in, files out. Used by load/ (the record of a run), cluster/,
commands/ and the canary rehearsal.
"""
