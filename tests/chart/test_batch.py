"""Batch scoring (issue 12 item 2): `batch.enabled` renders an Indexed Job — or a CronJob with
`batch.schedule` — from the serving pods' own pod template (image, model delivery, security context, service
account, volumes), with the exit-code policy of `model-api batch`, a name that changes with its spec, and
validateValues refusing what the API server would."""

from __future__ import annotations

import zoneinfo
from typing import Any

import helm_python
import pytest

from tests.chart import helpers
from tests.chart.helpers import Manifest, get, merge_values, render
from tests.chart.test_policy import POD_CHECKS

JOB_TEMPLATE = "templates/batch-job.yaml"
CRON_TEMPLATE = "templates/batch-cronjob.yaml"
INPUT_SHA256 = "b" * 64
BATCH = {
    "batch": {
        "enabled": True,
        "input": "s3://data/iris.csv",
        "inputSha256": INPUT_SHA256,
        "output": "s3://data/scored/",
    }
}
NIGHTLY = merge_values(BATCH, {"batch": {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"}})
MODEL = {"model": {"uri": "s3://models/iris/model.onnx", "sha256": "a" * 64, "version": "7"}}
TIMEZONES = helpers.CHART_DIR / "templates" / "_timezones.tpl"


def job(values: dict[str, Any]) -> Manifest:
    return get(render(values, show_only=[JOB_TEMPLATE]), "Job")


def cron_job(values: dict[str, Any]) -> Manifest:
    return get(render(values, show_only=[CRON_TEMPLATE]), "CronJob")


# --- off by default ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "values"),
    [
        (JOB_TEMPLATE, {}),
        (CRON_TEMPLATE, {}),
        (JOB_TEMPLATE, NIGHTLY),  # a schedule makes a CronJob instead
        (CRON_TEMPLATE, BATCH),
    ],
)
def test_batch_objects_render_nothing_unless_asked(template: str, values: dict[str, Any]) -> None:
    docs = render(values, show_only=[template])
    assert docs == [], f"{template} with {values}"


# --- the Job -----------------------------------------------------------------------------------------------


def test_job_is_indexed_with_the_batch_exit_code_policy() -> None:
    values = merge_values(BATCH, {"batch": {"shards": 8, "parallelism": 3, "maxFailedIndexes": 2}})
    spec = job(values)["spec"]
    actual = {k: v for k, v in spec.items() if k != "template"}
    expected = {
        "completionMode": "Indexed",
        "completions": 8,
        "parallelism": 3,
        "backoffLimitPerIndex": 2,
        "maxFailedIndexes": 2,
        "podFailurePolicy": {
            "rules": [
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [2, 4, 5]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 86400,
    }
    assert actual == expected, "Job: spec (without template)"


def test_job_runs_model_api_batch_once_per_index() -> None:
    values = merge_values(
        BATCH, {"batch": {"shards": 6, "inputFormat": "csv", "batchRows": 500, "maxErrorRate": 0.01}}
    )
    spec = helpers.pod_spec(job(values))
    actual = (spec["restartPolicy"], spec["containers"][0]["command"])
    expected = (
        "Never",
        [
            "model-api", "batch", "--input", "s3://data/iris.csv", "--output", "s3://data/scored/",
            "--shard-count", "6", "--input-format", "csv", "--input-sha256", INPUT_SHA256,
            "--batch-rows", "500", "--max-error-rate", "0.01",
        ],
    )  # fmt: skip
    assert actual == expected, "Job: spec.template.spec restartPolicy / containers[0].command"


def test_job_pods_are_the_serving_pods_spec() -> None:
    """Same image, model delivery init container, security contexts, service account and model volume."""
    objects = render(merge_values(BATCH, MODEL))
    server, batch = helpers.pod_spec(helpers.workload(objects)), helpers.pod_spec(get(objects, "Job"))

    def shared(spec: Manifest) -> dict[str, Any]:
        main = spec["containers"][0]
        return {
            "image": main["image"],
            "securityContext": main["securityContext"],
            "initContainers": spec["initContainers"],
            "podSecurityContext": spec["securityContext"],
            "serviceAccountName": spec["serviceAccountName"],
            "volumes": [v for v in spec["volumes"] if v["name"] in ("tmp", "cache")],
            "model env": [e for e in main["env"] if e["name"].startswith("MODEL_API_MODEL_")],
        }

    assert shared(batch) == shared(server), "Job: spec.template.spec differs from the Deployment's"


def test_job_pods_have_no_port_probe_or_api_key() -> None:
    objects = render(merge_values(BATCH, {"apiKey": {"value": "k"}}))
    spec = helpers.pod_spec(get(objects, "Job"))
    main = spec["containers"][0]
    present = [
        k for k in ("ports", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle") if k in main
    ]
    present += [v["name"] for v in spec["volumes"] if "secret" in v]
    assert present == [], "Job: spec.template.spec serves nothing and needs no API key"


def test_batch_resources_replace_the_service_resources() -> None:
    resources = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    main = helpers.pod_spec(job(merge_values(BATCH, {"batch": {"resources": resources}})))["containers"][0]
    assert main["resources"] == resources, "Job: spec.template.spec.containers[0].resources"


def test_batch_pods_pass_the_pod_policy() -> None:
    owners = [o for o in render(merge_values(NIGHTLY, MODEL)) if o["kind"] in helpers.JOB_KINDS]
    owners += [o for o in render(merge_values(BATCH, MODEL)) if o["kind"] in helpers.JOB_KINDS]
    findings = [f for owner in owners for check in POD_CHECKS.values() for f in check(owner)]
    assert (len(owners), findings) == (2, [])


# --- the CronJob -------------------------------------------------------------------------------------------


def test_cron_job_schedules_the_same_job() -> None:
    cron = cron_job(NIGHTLY)
    actual = {k: v for k, v in cron["spec"].items() if k != "jobTemplate"}
    expected = {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
    }
    assert (actual, cron["spec"]["jobTemplate"]["spec"]) == (expected, job(BATCH)["spec"]), (
        f"{helpers.label(cron)}: spec / spec.jobTemplate.spec (the one-off Job's spec)"
    )


def test_cron_job_name_is_stable() -> None:
    """A CronJob's spec may change, so it keeps one name and `helm upgrade` patches it in place."""
    changed = merge_values(NIGHTLY, {"batch": {"input": "s3://data/other.csv"}})
    actual = (cron_job(NIGHTLY)["metadata"]["name"], cron_job(changed)["metadata"]["name"])
    assert actual == (f"{helpers.FULLNAME}-batch", f"{helpers.FULLNAME}-batch")


# --- names and what the API server refuses --------------------------------------------------------------


def test_job_name_follows_its_spec() -> None:
    names = {
        "same": job(BATCH)["metadata"]["name"],
        "again": job(merge_values(BATCH, {}))["metadata"]["name"],
        "input": job(merge_values(BATCH, {"batch": {"input": "s3://data/other.csv"}}))["metadata"]["name"],
        "model": job(merge_values(BATCH, MODEL))["metadata"]["name"],
    }
    actual = (names["same"] == names["again"], len({names["same"], names["input"], names["model"]}))
    assert actual == (True, 3), f"Job: metadata.name {names}"
    assert names["same"].startswith(f"{helpers.FULLNAME}-batch-"), names["same"]


REFUSED = [
    ("no input", {"batch": {"enabled": True, "output": "s3://o/"}}, "batch.input"),
    ("no output", {"batch": {"enabled": True, "input": "/data/i.csv"}}, "batch.output"),
    (
        "remote input without a digest",
        merge_values(BATCH, {"batch": {"inputSha256": ""}}),
        "batch.inputSha256 is required",
    ),
    ("plain http input", merge_values(BATCH, {"batch": {"input": "http://data/i.csv"}}), "plain http"),
    (
        "maxFailedIndexes above completions",
        merge_values(BATCH, {"batch": {"shards": 2, "maxFailedIndexes": 3}}),
        "batch.maxFailedIndexes",
    ),
    (
        "unknown time zone",
        merge_values(NIGHTLY, {"batch": {"timeZone": "Mars/Olympus_Mons"}}),
        "batch.timeZone",
    ),
    ("time zone without schedule", merge_values(BATCH, {"batch": {"timeZone": "UTC"}}), "batch.timeZone"),
    ("CronJob name over 52", merge_values(NIGHTLY, {"fullnameOverride": "a" * 47}), "CronJob name"),
    (  # <46 a>-batch-<8 hex>-99 is 64 characters
        "Indexed Job hostname over 63",
        merge_values(BATCH, {"fullnameOverride": "a" * 46, "batch": {"shards": 100}}),
        "Indexed Job",
    ),
]


@pytest.mark.parametrize(("case", "values", "named"), REFUSED, ids=[c for c, *_ in REFUSED])
def test_validate_values_refuses_what_the_api_server_would(
    case: str, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    assert named in str(refused.value), f"{case}: the refusal does not name {named}: {refused.value}"


def test_an_unverified_remote_input_is_an_explicit_choice() -> None:
    values = merge_values(BATCH, {"batch": {"inputSha256": "", "allowUnverifiedInput": True}})
    command = helpers.pod_spec(job(values))["containers"][0]["command"]
    actual = ("--allow-unverified" in command, "--input-sha256" in command)
    assert actual == (True, False), f"Job: containers[0].command {command}"


def test_names_at_the_limits_are_accepted() -> None:
    cron = cron_job(merge_values(NIGHTLY, {"fullnameOverride": "a" * 46}))
    indexed = job(merge_values(BATCH, {"fullnameOverride": "a" * 46, "batch": {"shards": 10}}))
    actual = (len(cron["metadata"]["name"]), len(f"{indexed['metadata']['name']}-9"))
    assert actual == (52, 63)


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("/batch/shards", merge_values(BATCH, {"batch": {"shards": 0}})),
        ("/batch/maxErrorRate", merge_values(BATCH, {"batch": {"maxErrorRate": 1.5}})),
        ("/batch/concurrencyPolicy", merge_values(NIGHTLY, {"batch": {"concurrencyPolicy": "Sometimes"}})),
        ("/batch/schedule", merge_values(BATCH, {"batch": {"schedule": "every night"}})),
        ("/batch/inputFormat", merge_values(BATCH, {"batch": {"inputFormat": "xlsx"}})),
        ("/batch/inputSha256", merge_values(BATCH, {"batch": {"inputSha256": "abc"}})),
        ("/batch", {"batch": {"enabled": True, "unknown": 1}}),
    ],
)
def test_schema_refuses_malformed_batch_values(key: str, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    assert key in str(refused.value), f"{values}: the schema error does not name {key}: {refused.value}"


def test_time_zone_list_is_the_iana_database() -> None:
    """model-api.timeZones (what validateValues accepts) is the tz database's zone list, sorted."""
    body = TIMEZONES.read_text().split('{{- define "model-api.timeZones" -}}\n', 1)[1]
    listed = body.split("{{- end }}", 1)[0].split()
    actual = (listed == sorted(set(listed)), {"UTC", "Europe/Berlin", "America/New_York"} <= set(listed))
    unknown = [zone for zone in listed if zone not in zoneinfo.available_timezones()]
    assert (actual, unknown) == ((True, True), [])


def test_batch_pods_get_a_network_policy_without_ingress() -> None:
    values = merge_values(BATCH, {"networkPolicy": {"enabled": True, "egress": {"enabled": True}}})
    objects = render(values)
    pods = helpers.pod_template_labels(get(objects, "Job"))
    policy = next(
        p for p in helpers.find(objects, "NetworkPolicy") if helpers.selects(p["spec"]["podSelector"], pods)
    )
    actual = (policy["spec"]["policyTypes"], policy["spec"]["ingress"], len(policy["spec"]["egress"]))
    assert actual == (["Ingress", "Egress"], [], 1), f"{helpers.label(policy)}: spec (DNS egress only)"


def test_batch_network_policy_needs_both_switches() -> None:
    template = "templates/batch-networkpolicy.yaml"
    docs = render(merge_values(BATCH, {"networkPolicy": {"enabled": False}}), show_only=[template])
    docs += render({"networkPolicy": {"enabled": True}}, show_only=[template])
    assert docs == [], template


def test_batch_on_s3_gets_the_s3_settings_and_serving_pods_do_not() -> None:
    s3 = {"model": {"s3": {"existingSecret": "s3-credentials", "endpoint": "http://seaweedfs:8333"}}}
    objects = render(merge_values(BATCH, s3))
    batch_env = {e["name"] for e in helpers.pod_spec(get(objects, "Job"))["containers"][0]["env"]}
    serving_env = {e["name"] for e in helpers.main_container(objects).get("env") or []}
    expected = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert (batch_env & expected, serving_env & expected) == (expected, set()), (
        "Job: spec.template.spec.containers[0].env has the S3 settings; the serving container has none"
    )


def test_rotating_the_api_key_does_not_rerun_the_batch() -> None:
    """The batch pods do not use the API key: a new key is no new Job."""
    names = [
        job(merge_values(BATCH, {"apiKey": {"value": key}}))["metadata"]["name"] for key in ("one", "two")
    ]
    assert names[0] == names[1], "Job: metadata.name changes with apiKey.value"
