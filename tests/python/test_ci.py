"""The files CI and readers depend on: the workflows parse and call real commands; .ci/run calls the README's."""

import re
import shlex

import yaml

from conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def workflow(name):
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def run_commands(flow):
    return [step["run"] for job in flow["jobs"].values() for step in job.get("steps", []) if "run" in step]


def readme_commands():
    """The two set-up commands: the console lines of the README's first console block."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```console\n(.*?)```", text, re.S).group(1)
    return [line[2:].split("#")[0].strip() for line in block.splitlines() if line.startswith("$ ")]


def test_workflows_parse_and_their_commands_exist():
    assert [w.name for w in WORKFLOWS] == ["pages.yml", "test.yml"]
    for path in WORKFLOWS:
        flow = yaml.safe_load(path.read_text())
        assert flow["jobs"], path
        for command in run_commands(flow):
            program = shlex.split(command)[0]
            assert (ROOT / program).is_file(), f"{path.name}: {program} is not in the repository"


def test_the_test_workflow_runs_the_readme_test_command_on_three_pythons():
    flow = workflow("test.yml")
    on = flow[True]  # YAML 1.1 reads the key `on` as true
    assert set(on) == {"push", "pull_request"}
    job = flow["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert run_commands(flow) == [readme_commands()[1]]


def test_the_pages_workflow_builds_and_deploys_from_main():
    flow = workflow("pages.yml")
    assert flow[True]["push"]["branches"] == ["main"]
    uses = [step.get("uses", "") for job in flow["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    assert run_commands(flow) == [readme_commands()[0] + " --build"]
    build = next(s for s in flow["jobs"]["build"]["steps"] if s.get("uses", "").startswith("actions/upload-pages"))
    assert build["with"]["path"] == "target/book"


def test_ci_runs_the_readme_test_command():
    assert readme_commands() == ["scripts/book", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci
