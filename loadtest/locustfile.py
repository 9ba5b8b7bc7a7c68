"""Where `locust -f loadtest/locustfile.py` points: the users of loadtest/load/users.py, nothing else.

`locust -f loadtest/locustfile.py -H http://127.0.0.1:8080` runs them in locust's own UI, from any directory.
"""

import sys
from pathlib import Path

if __package__ in (
    None,
    "",
):  # loaded by path, as `locust -f` does: the repository root makes `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest.load.users import ClassifyUser, PiUser, V2InferUser

__all__ = ["ClassifyUser", "PiUser", "V2InferUser"]
