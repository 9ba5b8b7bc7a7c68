"""Autoscaling, offline and live: the HPA spec read from the rendered release (spec.py), the replica
calculator and the controller of kube-controller-manager (replica_calculator.py, controller.py), the replay
on a load curve (simulation.py), scaling a locally measured load to production (production.py), sizing a
CPU target (sizing.py), quantities as the API server reads them (quantity.py), and the live watcher of a
release's HPA (watcher.py; the kubernetes client is imported only when it connects).

May import loadtest.chart; used by cluster/, commands/ and the tests. Every rule names the Kubernetes
function it follows, and the tests replay the documentation's worked examples.
"""
