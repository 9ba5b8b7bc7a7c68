"""/metrics: request counts by route template and status, latency by route, in-flight, predictions, model."""

from __future__ import annotations

from model_api import __version__
from prometheus_client.parser import text_string_to_metric_families

from tests.service.asgi_client import AsgiClient


def scrape(client: AsgiClient) -> dict[tuple[str, tuple], float]:
    result = client.get("/metrics")
    assert (result.status, result.headers["content-type"].split(";")[0]) == (200, "text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(result.body.decode())
        for sample in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_requests_are_counted_by_route_template_and_status(client: AsgiClient) -> None:
    before = scrape(client)
    client.get("/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2")
    client.get("/api/v01/classify?sl=x")
    client.get("/no/such/path")
    after = scrape(client)

    counted = {
        status: delta(before, after, "model_api_requests_total", route=route, status=status)
        for route, status in [
            ("/api/v01/classify", "200"),
            ("/api/v01/classify", "400"),
            ("unmatched", "404"),
        ]
    }
    assert counted == {"200": 1.0, "400": 1.0, "404": 1.0}


def test_latency_histogram_covers_api_routes_but_not_probes_or_metrics(client: AsgiClient) -> None:
    before = scrape(client)
    client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    client.get("/healthz")
    client.get("/readyz")
    after = scrape(client)

    observed = {
        route: delta(before, after, "model_api_request_duration_seconds_count", route=route)
        for route in ("/v1/models/{model}:predict", "/healthz", "/readyz", "/metrics")
    }
    assert observed == {"/v1/models/{model}:predict": 1.0, "/healthz": 0.0, "/readyz": 0.0, "/metrics": 0.0}
    assert delta(before, after, "model_api_requests_total", route="/healthz", status="200") == 1.0


def test_predictions_are_counted_by_class(client: AsgiClient) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [5.0, 3.4, 1.5, 0.2], [6.7, 3.0, 5.2, 2.3]]
    before = scrape(client)
    client.post("/v1/models/iris:predict", json={"instances": rows})
    after = scrape(client)

    counted = {
        name: delta(before, after, "model_api_predictions_total", class_name=name)
        for name in ("Iris setosa", "Iris versicolor", "Iris virginica")
    }
    assert counted == {"Iris setosa": 2.0, "Iris versicolor": 0.0, "Iris virginica": 1.0}


def test_model_info_load_time_ready_and_in_flight_are_exported(client: AsgiClient) -> None:
    samples = scrape(client)

    assert samples[("model_api_model_info", (("name", "iris"), ("version", __version__)))] == 1.0
    assert samples[("model_api_model_load_seconds", ())] > 0.0, "model load seconds"
    assert samples[("model_api_model_ready", ())] == 1.0, "model ready gauge"
    assert samples[("model_api_requests_in_flight", ())] == 0.0, "nothing in flight between requests"


def test_a_regressor_counts_no_predictions_by_class(diabetes, make_app) -> None:
    client = AsgiClient(make_app(model_path=diabetes.directory, model_name="diabetes"))
    before = scrape(client)
    result = client.post("/v1/models/diabetes:predict", json={"instances": diabetes.rows[:3].tolist()})
    after = scrape(client)

    counted = "model_api_predictions_total"
    changed = {key for key in after if key[0] == counted and after[key] != before.get(key)}
    assert (result.status, changed) == (200, set())


def test_predictions_are_counted_when_only_probabilities_are_asked_for(client: AsgiClient) -> None:
    body = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}],
        "outputs": [{"name": "probabilities"}],
    }
    before = scrape(client)
    outputs = client.post("/v2/models/iris/infer", json=body).json()["outputs"]
    after = scrape(client)

    assert [o["name"] for o in outputs] == ["probabilities"], "only the requested output is returned"
    assert delta(before, after, "model_api_predictions_total", class_name="Iris virginica") == 1.0


def test_class_indices_beyond_the_declared_names_are_answered_but_not_counted(make_app, tmp_path) -> None:
    import json

    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    data = load_wine()
    classifier = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    (tmp_path / "model.onnx").write_bytes(
        to_onnx(classifier, data.data[:1].astype(np.float32)).SerializeToString()
    )
    (tmp_path / "model-settings.json").write_text(
        json.dumps({"class_names": ["first", "second"]})
    )  # 3 classes
    client = AsgiClient(make_app(model_path=tmp_path, model_name="wine"))
    rows = data.data[[0, 70, 140]].tolist()  # one row of each class: 0, 1, 2
    before = scrape(client)

    result = client.post("/v1/models/wine:predict", json={"instances": rows})

    after = scrape(client)
    counted = {
        name: delta(before, after, "model_api_predictions_total", class_name=name)
        for name in ("first", "second")
    }
    assert (result.status, result.json()["predictions"]) == (200, [0, 1, 2]), result.body
    assert counted == {"first": 1.0, "second": 1.0}
