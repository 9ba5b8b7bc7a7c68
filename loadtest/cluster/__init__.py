"""With a real cluster: is a kube context reachable (context.py), install or upgrade the release with the
helm CLI or Helm's SDK (helm.py), reach its Service through the API server's service proxy (proxy.py), and
follow the live HPA during a run (watch.py).

May import loadtest.chart, loadtest.autoscaling, loadtest.report and loadtest.probe; never locust. Used by
commands/ and the `cluster`-marked tests.
"""
