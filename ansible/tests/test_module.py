"""The forge.rollback.rollback module alone, in a playbook of one task, on a host of the test
fleet (`fleetkit.Fleet`), driving the real `forge-rollback`: a failure's msg keeps the
command's causes; an old failed run that changed nothing is not resumed once HEAD moved; an
interrupted run is resumed before anything is assessed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from fleetkit import GIT_ENV, REVISIONS, Fleet, ansible_playbook, cli_binary, git, kill_controller, show


def test_a_failure_keeps_the_causes_the_command_printed(fleet: Fleet) -> None:
    # A config path that is a folder: the CLI prints `error:` and, indented, `caused by:`.
    playbook, result = fleet.tmp / "assess.yml", fleet.tmp / "result.json"
    playbook.write_text(
        "- hosts: web1\n  gather_facts: false\n  tasks:\n"
        "    - forge.rollback.rollback:\n"
        "        path: '{{ forge_rollback_path }}'\n        bin: '{{ forge_rollback_bin }}'\n"
        "        config: '{{ forge_rollback_path }}/migrations'\n        state: assessed\n"
        "      register: r\n      ignore_errors: true\n"
        f"    - ansible.builtin.copy: {{dest: '{result}', content: '{{{{ r | to_json }}}}'}}\n"
    )
    p = subprocess.run([str(ansible_playbook()), "-i", str(fleet.inventory), str(playbook)], cwd=fleet.tmp,
                       env=fleet.env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, show(p)
    r = json.loads(result.read_text())
    assert r["failed"] and r["rc"] == 2, r
    assert r["msg"] == f"error: cannot read config `{fleet.paths['web1']}/migrations`\n  caused by: Is a directory (os error 21)", r


def test_a_failed_run_that_changed_nothing_is_not_resumed_once_head_moved(fleet: Fleet) -> None:
    # A database-only rollback to v1 failed long ago: its downgrade raised, and the database
    # was put back (the run changed nothing; it blocks no new run). Since then a release was
    # deployed on top of v2 and the migration fixed. Rolling back to v1 today is a new run
    # from today's HEAD, not the old attempt's plan from v2 resumed.
    rel = "migrations/versions/b2_payments.py"
    rev2 = fleet.paths["web1"] / rel
    rev2.write_text(rev2.read_text().replace('op.drop_table("payments")', 'raise RuntimeError("downgrade boom")'))
    failed = fleet.module("web1", state="rolled_back", database_only=True, target="v1")
    assert failed["failed"] and failed["run"]["status"] == "failed", failed
    old = failed["run_id"]
    assert fleet.revision() == [REVISIONS[1]]
    git(fleet.paths["web1"], "checkout", "-q", "--", rel)
    v3 = fleet.commit("web1", "release v3")

    r = fleet.module("web1", state="rolled_back", database_only=True, target="v1")
    assert not r.get("failed"), r
    assert r["action"] == "ran" and r["run_id"] != old, r
    assert (r["run"]["from"], r["run"]["to"], r["run"]["status"]) == (v3, fleet.v1, "succeeded"), r["run"]
    assert {x["run_id"]: x["status"] for x in fleet.runs("web1")}[old] == "failed"
    assert fleet.revision() == [REVISIONS[0]]


def test_a_failed_run_to_a_target_named_from_head_is_resumed_though_its_reset_moved_head(fleet: Fleet) -> None:
    # A run to `HEAD~1` (v1) failed at its restart, after its reset moved HEAD to v1: `HEAD~1`
    # now names v1's parent. Asked again with the same target once the restart is fixed, the
    # module finishes that run (the command line would refuse a new one over it).
    fleet.config("web1", restart=["false"])
    failed = fleet.module("web1", state="rolled_back", level="fast", target="HEAD~1")
    assert failed["failed"] and failed["run"]["status"] == "failed", failed
    assert fleet.heads()["web1"] == fleet.v1
    fleet.config("web1")
    r = fleet.module("web1", state="rolled_back", level="fast", target="HEAD~1")
    assert not r.get("failed"), r
    assert (r["action"], r["run_id"], r["run"]["status"]) == ("resumed", failed["run_id"], "succeeded"), r
    assert fleet.heads()["web1"] == fleet.v1


def test_an_interrupted_run_is_resumed_before_anything_is_assessed(fleet: Fleet) -> None:
    # A run to v1 killed during its restart (HEAD already at v1). Asked with no target and no
    # registry, an assessment cannot pick one (and mid-run it would pick from where the run
    # left HEAD): the module resumes the run without one.
    fleet.config("web1", restart=["sleep", "30"])
    proc = subprocess.Popen([str(cli_binary()), "-C", str(fleet.paths["web1"]), "run", "--fast", "--yes", "--target", "v1"],
                            env=os.environ | GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs = fleet.paths["web1"] / ".git" / "forge-rollback" / "runs"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any('"step":"restart"' in line and '"record":"step_begin"' in line
                   for j in runs.glob("*/journal.jsonl") for line in j.read_text().splitlines()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before its restart began"
    finally:
        kill_controller(proc)
    [run] = fleet.runs("web1")
    assert run["interrupted"], run
    fleet.config("web1")
    assert fleet.module("web1", state="assessed")["failed"], "an assessment with no target and no registry fails"

    r = fleet.module("web1", state="rolled_back", level="fast")
    assert not r.get("failed"), r
    assert (r["action"], r["run_id"], r["run"]["status"]) == ("resumed", run["run_id"], "succeeded"), r
    assert fleet.heads()["web1"] == fleet.v1
