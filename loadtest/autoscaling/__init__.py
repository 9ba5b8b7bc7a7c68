"""Autoscaling, offline and live: the HPA spec read from the rendered release, or the HPA KEDA makes from its
ScaledObject (spec.py), the replica calculator and the controller of kube-controller-manager
(replica_calculator.py, controller.py), the metric pipelines' delays and the load model (pipeline.py), the
replay on a load curve (simulation.py), strategies compared on one load (compare.py), scaling a locally
measured load to production (production.py), sizing a target per strategy (sizing.py), quantities as the
API server reads them (quantity.py), and the live watcher of a release's HPA (watcher.py; the kubernetes
client is imported only when it connects).

May import loadtest.chart; used by cluster/, commands/ and the tests. Every rule names the Kubernetes
function it follows, and the tests replay the documentation's worked examples.
"""
