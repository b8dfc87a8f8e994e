"""Job spec validation and the lifecycle state machine."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from jobs.spec import load_spec
from jobs.states import OWNER, TERMINAL, TRANSITIONS, JobState, can_transition, mermaid
from shuyu.errors import ValidationError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"
BASE = yaml.safe_load((EXAMPLE / "job.yaml").read_text(encoding="utf-8"))
# The mutations below edit a script action: the example's `table:` action, written as a script.
BASE["actions"]["wages"] = {
    "run": "python wages.py",
    "outputs": BASE["actions"]["wages"]["outputs"],
}


def write_spec(tmp_path: Path, change=None) -> Path:
    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE, folder, dirs_exist_ok=True)
    (folder / "wages.py").write_text("print('wages')\n", encoding="utf-8")
    doc = copy.deepcopy(BASE)
    if change:
        change(doc)
    (folder / "job.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return folder / "job.yaml"


def test_example_spec_loads_in_dependency_order(tmp_path: Path) -> None:
    loaded = load_spec(write_spec(tmp_path))
    assert set(loaded.order) == {"wages", "headcount", "dp_wages"}
    assert loaded.order.index("wages") < loaded.order.index("headcount")
    assert set(loaded.code) == {"wages.py", "headcount.sql"}
    assert all(len(h) == 64 for h in loaded.code.values())


def test_spec_hash_covers_the_code(tmp_path: Path) -> None:
    path = write_spec(tmp_path)
    before = load_spec(path).hash
    (path.parent / "wages.py").write_text("print('changed')\n")
    assert load_spec(path).hash != before


def acts(d):
    return d["actions"]


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (
            lambda d: acts(d)["wages"].update(needs=["headcount"]),
            "actions.headcount.needs",
            "cycle",
        ),
        (
            lambda d: acts(d)["wages"].update(needs=["nowhere"]),
            "actions.wages.needs",
            "unknown action",
        ),
        (
            lambda d: acts(d)["headcount"].update(needs=["wages/secret.csv"]),
            "actions.headcount.needs",
            "declares no output",
        ),
        (
            lambda d: acts(d)["wages"]["outputs"].update(
                {"../escape.csv": {"kind": "table", "context": "x"}}
            ),
            "actions.wages.outputs.../escape.csv",
            "escapes the output folder",
        ),
        (
            lambda d: acts(d)["wages"]["outputs"].update(
                {"/etc/passwd.csv": {"kind": "table", "context": "x"}}
            ),
            "actions.wages.outputs./etc/passwd.csv",
            "escapes",
        ),
        (
            lambda d: acts(d)["wages"]["outputs"].update(
                {"plot.exe": {"kind": "figure", "context": "x"}}
            ),
            "actions.wages.outputs.plot.exe",
            "must be one of .png",
        ),
        (lambda d: acts(d)["wages"].update(run="bash wages.sh"), "actions.wages", "python FILE"),
        (lambda d: acts(d)["wages"].update(run="python missing.py"), "actions", "not found"),
        (
            lambda d: acts(d)["wages"].update(run="python ../../etc/x.py"),
            "actions",
            "outside the spec",
        ),
        (
            lambda d: acts(d)["wages"]["outputs"]["wages_by_district.csv"].update(kind="chart"),
            "actions.wages.outputs.wages_by_district.csv.kind",
            "Input should be",
        ),
        (
            lambda d: acts(d)["wages"]["outputs"]["wages_by_district.csv"].pop("context"),
            "actions.wages.outputs.wages_by_district.csv.context",
            "missing",
        ),
        (lambda d: acts(d)["wages"].update(outputs={}), "actions.wages.outputs", "at least 1"),
        (
            lambda d: acts(d)["wages"].update(dp={"query": "SELECT 1", "epsilon": 1}),
            "actions.wages",
            "exactly one",
        ),
        (
            lambda d: acts(d).update(
                dp={
                    "dp": {"query": "DROP TABLE x", "epsilon": 1},
                    "outputs": {"a.csv": {"kind": "table", "context": "x"}},
                }
            ),
            "actions.dp.dp.query",
            "one SELECT",
        ),
        (
            lambda d: acts(d).update(
                dp={
                    "dp": {"query": "SELECT 1", "epsilon": 0},
                    "outputs": {"a.csv": {"kind": "table", "context": "x"}},
                }
            ),
            "actions.dp.dp.epsilon",
            "greater than 0",
        ),
        (lambda d: d.update(purpose="profit"), "purpose", "Input should be"),
        (lambda d: d.update(colour="red"), "colour", "unknown field"),
    ],
)
def test_invalid_specs_name_the_field(tmp_path: Path, change, field, text) -> None:
    path = write_spec(tmp_path, change)
    with pytest.raises(ValidationError) as err:
        load_spec(path)
    assert err.value.file == str(path)
    assert err.value.field == field
    assert text in str(err.value)


def test_a_valid_dp_action_is_stored() -> None:
    from jobs.spec import ActionSpec

    action = ActionSpec.model_validate(
        {
            "dp": {
                "query": "SELECT district, COUNT(*) FROM contributions GROUP BY district;",
                "epsilon": 0.5,
            },
            "outputs": {"dp.csv": {"kind": "table", "context": "noisy counts"}},
        }
    )
    assert (
        action.dp is not None and action.dp.query.endswith("district") and action.dp.epsilon == 0.5
    )


def test_every_state_has_transitions_and_an_owner() -> None:
    assert set(TRANSITIONS) == set(JobState) == set(OWNER)
    assert {
        JobState.REVIEW_PENDING,
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
    } == TERMINAL


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (JobState.QUEUED, JobState.PREPARING, True),
        (JobState.QUEUED, JobState.RUNNING, False),
        (JobState.RUNNING, JobState.COLLECTING, True),
        (JobState.COLLECTING, JobState.CHECKS_PENDING, True),
        (JobState.FAILED, JobState.QUEUED, False),
        (JobState.CANCELLED, JobState.RUNNING, False),
        (JobState.CHECKS_PENDING, JobState.RUNNING, False),
    ],
)
def test_transitions(current: JobState, new: JobState, allowed: bool) -> None:
    assert can_transition(current, new) is allowed


def test_readme_generated_parts_have_not_drifted() -> None:
    """The state diagram and the example spec in the README come from the code and examples."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(
        "update_readme", root / "scripts" / "update-readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert mermaid() in readme
    assert module.render(readme) == readme, "regenerate: python scripts/update-readme.py"
    cli = (root / "docs" / "cli.md").read_text(encoding="utf-8")
    assert module.cli_reference() == cli, "regenerate: python scripts/update-readme.py"


def test_every_sandbox_failure_is_a_job_failure_kind() -> None:
    from jobs.states import FailureKind
    from sandbox.base import Failure

    assert {f.value for f in Failure} <= {k.value for k in FailureKind}
