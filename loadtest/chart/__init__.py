"""The rendered release: the chart rendered by Helm's own engine (release.py), every object validated
against the strict Kubernetes schemas (kube_schema.py), the rendered service container run as a local
process (localpod.py), the pod's volumes made on the local disk as the kubelet would (volumes.py).

Imports nothing of loadtest but `loadtest.probe`; used by the tests, by autoscaling/ (the HPA read from the
release), cluster/, commands/ and the canary rehearsal.
"""
