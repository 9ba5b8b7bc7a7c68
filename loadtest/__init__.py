"""The toolkit that renders, validates, runs, load-tests and autoscales the model-api release.

One subpackage per concern; imports flow one way (tests/test_layout.py keeps it so):

    chart/        render with Helm's engine, strict schemas, a rendered container as a local process
    load/         locust users, shapes, the library-mode runner, samplers, the pre-load target check
    autoscaling/  HPA spec, replica calculator, controller replay, simulation, sizing, live watcher
    cluster/      install on a kube context, the API server's service proxy, the live HPA during a run
    report/       verdicts, the figure, the report files
    commands/     one module per `python -m loadtest <command>`, on top of everything else
    probe.py      waiting on a condition or an HTTP answer (imported by all of the above and the tests)
    locustfile.py where `locust -f` points: the users of load/

`service` imports nothing of loadtest.
"""
