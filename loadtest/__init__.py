"""Load tests that watch autoscaling: locust profiles, runner, HPA watcher and predictor, reports."""
