"""values.yaml documents every key with ## @param, and the chart README's parameters table matches it."""

from __future__ import annotations

import textwrap

import pytest

from tests.chart import values_doc

pytestmark = pytest.mark.chart

SAMPLE = textwrap.dedent(
    """\
    ## @section Image parameters
    image:
      ## @param image.repository Image repository
      repository: example/app
      ## @param image.tag Image tag | with a pipe
      tag: ""
    ## @section Scheduling
    ## @param affinity Affinity rules, passed through
    affinity:
      nodeAffinity: {}
    """
)


def test_values_yaml_documents_every_key() -> None:
    problems = values_doc.find_problems(values_doc.VALUES_FILE.read_text())

    assert problems == [], "values.yaml documentation problems:\n" + "\n".join(problems)


def test_readme_parameters_block_matches_values_yaml() -> None:
    readme = values_doc.README_FILE.read_text()
    expected = values_doc.replace_block(readme, values_doc.render_table(values_doc.VALUES_FILE.read_text()))

    assert readme == expected, (
        "charts/model-api/README.md is stale: run python -m tests.chart.values_doc --write"
    )


def test_sample_with_every_key_documented_has_no_problems() -> None:
    assert values_doc.find_problems(SAMPLE) == []


def test_undocumented_key_is_reported_by_name() -> None:
    text = SAMPLE + "replicaCount: 1\n"
    expected = ["values.yaml: key replicaCount has no ## @param comment"]

    assert values_doc.find_problems(text) == expected


def test_param_for_a_missing_key_is_reported_with_its_line() -> None:
    text = SAMPLE + "## @param image.digest Image digest\n"
    line = len(text.splitlines())
    expected = [f"values.yaml:{line}: @param image.digest names no key of values.yaml"]

    assert values_doc.find_problems(text) == expected


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("## @param image.tag Again\n", "@param image.tag repeats the one on line 5"),
        ("## @param replicaCount\nreplicaCount: 1\n", "@param replicaCount has no description"),
    ],
    ids=["duplicate", "no-description"],
)
def test_malformed_param_is_reported_with_its_line(extra: str, problem: str) -> None:
    line = len(SAMPLE.splitlines()) + 1
    expected = [f"values.yaml:{line}: {problem}"]

    assert values_doc.find_problems(SAMPLE + extra) == expected


def test_param_before_any_section_is_reported() -> None:
    text = "## @param replicaCount Replicas\nreplicaCount: 1\n"
    expected = ["values.yaml:1: @param replicaCount comes before any @section"]

    assert values_doc.find_problems(text) == expected


def test_table_has_a_heading_per_section_and_escaped_rows() -> None:
    expected = textwrap.dedent(
        """\
        ### Image parameters

        | Name | Description | Default |
        | --- | --- | --- |
        | `image.repository` | Image repository | `"example/app"` |
        | `image.tag` | Image tag \\| with a pipe | `""` |

        ### Scheduling

        | Name | Description | Default |
        | --- | --- | --- |
        | `affinity` | Affinity rules, passed through | `{"nodeAffinity": {}}` |
        """
    )

    assert values_doc.render_table(SAMPLE) == expected


def test_replace_block_keeps_the_text_around_the_markers() -> None:
    readme = f"intro\n{values_doc.START_MARKER}\nold table\n{values_doc.END_MARKER}\noutro\n"
    expected = f"intro\n{values_doc.START_MARKER}\n\nnew table\n\n{values_doc.END_MARKER}\noutro\n"

    assert values_doc.replace_block(readme, "new table\n") == expected


def test_replace_block_without_markers_names_them() -> None:
    with pytest.raises(values_doc.ValuesDocError, match="parameters:start"):
        values_doc.replace_block("no markers here\n", "table\n")
