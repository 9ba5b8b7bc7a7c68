"""The canary rehearsal (`python -m loadtest canary`): both rollout slots started as the rendered pods would
be, a real nginx routing as the rendered HTTPRoute or canary Ingress says, a real Prometheus scraping as the
rendered ServiceMonitor says, locust traffic through nginx, the AnalysisTemplate's own PromQL judged with
Argo Rollouts' rules. No cluster.

Modules: `topology` (slots, Services and the router read from the rendered objects), `nginx`, `prometheus`,
`analysis` (args, conditions, verdict), `share` (traffic tally, Wilson interval), `traffic` (locust users),
`rehearsal` (the run), `report`; the command is loadtest/commands/canary.py.
"""
