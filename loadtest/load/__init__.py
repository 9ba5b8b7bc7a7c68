"""Load generation: locust users with checked answers (users.py), load shapes (shapes.py), the library-mode
runner recording once a second (runner.py), samplers for it (samplers.py), and the pre-load check of the
target (target.py).

Importing users.py or runner.py imports locust, which gevent-patches the process: import them first, and
never in pytest's process (the tests run loads in subprocesses). May import loadtest.report (the record
of a run) and loadtest.probe; used by commands/ and the canary rehearsal.
"""
