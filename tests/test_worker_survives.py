"""The worker never dies on a job: whatever a job is (hostile code, absurd DP queries, a broken
platform underneath), that job ends in a terminal state the analyst reads in the fixed
vocabulary, and the worker takes the next one. Fuzzed through a real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs import service
from jobs.states import (
    FAILURE_REASONS,
    STATE_REASONS,
    TERMINAL,
    FailureKind,
    JobState,
    OutputStatus,
)
from jobs.worker import Worker
from shuyu.errors import ShuyuError
from shuyu.platform import Platform

VOCABULARY = set(STATE_REASONS.values()) | set(FAILURE_REASONS.values())


def assert_analyst_view(view: dict[str, Any]) -> None:
    assert JobState(view["state"]) in TERMINAL
    assert view["reason"] in VOCABULARY
    assert view["failure"] is None or view["failure"] in set(FailureKind)
    for event in view["events"]:
        assert event["reason"] in VOCABULARY
    for output in view["outputs"]:
        assert set(output) == {"action", "path", "status"}
        assert output["status"] in set(OutputStatus)


def write_spec(folder: Path, actions: dict[str, Any], code: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in code.items():
        (folder / name).write_text(text, encoding="utf-8")
    spec = {
        "version": 1,
        "name": "fuzz",
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": actions,
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return folder / "job.yaml"


def test_a_platform_failure_fails_the_job_as_internal_and_the_worker_goes_on(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    code = 'import os\nopen(os.path.join(os.environ["SHUYU_OUTPUT"], "r.csv"), "w").write("n\\n12\\n")\n'
    outputs = {"r.csv": {"kind": "table", "counts": ["n"], "context": "c"}}
    ids = [
        service.submit(
            granted,
            write_spec(
                tmp_path / f"j{i}",
                {"main": {"run": "python m.py", "outputs": outputs}},
                {"m.py": code},
            ),
        ).id
        for i in range(2)
    ]
    # The platform breaks underneath: where the worker collects outputs is not a folder.
    for job_id in ids:
        (granted.jobs_dir / job_id / "collected").write_text("not a folder")
    assert Worker(granted, local_backend).run(once=True) == 2, "the worker ran both jobs"
    for job_id in ids:
        view = service.view(granted, job_id)
        assert view.job.state is JobState.FAILED and view.job.failure == "internal"
        analyst = view.to_dict(detail=True)
        assert analyst["reason"] == FAILURE_REASONS[FailureKind.INTERNAL]
        assert "collected" not in str(analyst) and "Error" not in str(analyst)
        detail = view.to_dict(full=True)["reason"]
        assert "internal error" in detail and "collected" in detail, "operators have the detail"


# --- the fuzz ------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
SNIPPETS = st.one_of(
    st.builds(
        lambda code, t: f"import sys\nprint({t!r})\nsys.exit({code})\n",
        st.integers(-300, 300),
        TEXT,
    ),
    st.builds(lambda t: f"raise RuntimeError({t!r})\n", TEXT),
    st.builds(
        lambda body: (
            f'import os\nopen(os.path.join(os.environ["SHUYU_OUTPUT"], "out.csv"), "wb").write({body!r})\n'
        ),
        st.binary(max_size=200),
    ),
    st.builds(
        lambda names: (
            "import os\n"
            + "".join(
                f'open(os.path.join(os.environ["SHUYU_OUTPUT"], {n!r}), "w").close()\n'
                for n in names
            )
        ),
        st.lists(st.from_regex(r"[a-z0-9_\-.]{1,12}", fullmatch=True), max_size=5),
    ),
    st.just("import os\nos.kill(os.getpid(), 9)\n"),
    st.just("pass\n"),
)
DP_QUERIES = st.one_of(
    st.sampled_from(
        [
            "SELECT district, COUNT(*) AS n FROM contributions GROUP BY district",
            "SELECT AVG(wage_base) AS w FROM contributions",
            "SELECT district, SUM(wage_base) AS s FROM contributions GROUP BY district",
            "SELECT MEDIAN(wage_base) AS m FROM contributions",
            "SELECT resident_id, COUNT(*) AS n FROM contributions GROUP BY resident_id",
            "SELECT COUNT(*) AS n FROM residents JOIN contributions USING (resident_id)",
            "SELECT * FROM contributions",
        ]
    ),
    st.builds(lambda t: f"SELECT {t}", TEXT),
)
DP_QUERIES_FIRST = "SELECT district, COUNT(*) AS n FROM contributions GROUP BY district"
EPSILON = st.one_of(
    st.sampled_from([1e-300, 5e-324, 1e-12, 0.5, 10.0]),
    st.floats(min_value=1e-300, max_value=10, allow_nan=False),
)
OUTPUT = st.sampled_from(
    [
        ("out.csv", {"kind": "table", "counts": ["n"], "context": "c"}),
        ("out.txt", {"kind": "text", "context": "c"}),
        ("out.parquet", {"kind": "microdata", "quasi_identifiers": ["district"], "context": "c"}),
    ]
)


@st.composite
def specs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    actions: dict[str, Any] = {}
    code: dict[str, str] = {}
    for i in range(draw(st.integers(1, 2))):
        path, declared = draw(OUTPUT)
        if draw(st.booleans()):
            code[f"a{i}.py"] = draw(SNIPPETS)
            actions[f"a{i}"] = {"run": f"python a{i}.py", "outputs": {path: declared}}
        else:
            dp = {
                "query": draw(DP_QUERIES),
                "epsilon": draw(EPSILON),
                "max_contributions": draw(st.integers(1, 1000)),
            }
            actions[f"a{i}"] = {"dp": dp, "outputs": {"out.csv": {"kind": "table", "context": "c"}}}
    return actions, code


@pytest.fixture
def worker_process(granted: Platform, local_backend) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "SHUYU_HOME": str(granted.home),
        "SHUYU_USER": "fuzz-worker",
        "SHUYU_BACKEND": "local",
        "SHUYU_JOB_WALL_SECONDS": "30",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_fuzzed_specs_never_kill_the_worker(
    granted: Platform, worker_process: subprocess.Popen[bytes], tmp_path_factory
) -> None:
    from dataclasses import replace

    granted.settings = replace(granted.settings, analyst_runs_per_day=1000)
    ran: list[str] = []

    @given(spec=specs())
    # the DP engine divided by zero on this one and took the worker down with it
    @example(
        spec=(
            {
                "a0": {
                    "dp": {"query": DP_QUERIES_FIRST, "epsilon": 1e-300, "max_contributions": 1},
                    "outputs": {"out.csv": {"kind": "table", "context": "c"}},
                }
            },
            {},
        )
    )
    @settings(
        max_examples=int(os.environ.get("SHUYU_FUZZ_EXAMPLES", "15")),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(spec: tuple[dict[str, Any], dict[str, str]]) -> None:
        actions, code = spec
        folder = tmp_path_factory.mktemp("fuzz") / "job"
        try:
            job = service.submit(granted, write_spec(folder, actions, code))
        except ShuyuError:
            return  # refused at validation: it never reaches a worker
        done = service.wait(granted, job.id, timeout=240)
        assert worker_process.poll() is None, "the worker died"
        assert done.state in TERMINAL
        assert_analyst_view(service.view(granted, job.id).to_dict(detail=True))
        ran.append(job.id)

    fuzz()
    assert worker_process.poll() is None, "the worker is still alive after the fuzz"
    assert ran, "some fuzzed specs reached the worker"
