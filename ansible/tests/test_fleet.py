"""The forge.rollback playbook driven by real ansible-core against a fleet on this machine
(`fleetkit.Fleet`: four work trees sharing one SQLite database that real Alembic migrated).

The playbook rolls back to `v1` in batches of two (`serial: 2`): the database once on `web1`,
then the code. Cases: all good; a host of batch 2 failing verification (every touched host
undone, the database back at HEAD's revision), then a second play that reports only its own
runs; failures within max_fail_percentage, then a re-run that resumes the failed run; a later
play's abort; a fast fleet's abort leaves the database host alone; an incident folder of the
earlier collection; the controller killed mid-batch, or during the database downgrade, and the
playbook run again (resumes and finishes, or undoes the database run it finds); a second run
changes nothing.

Run by `scripts/test.sh python` with the test venv's Python (ansible-core from
requirements-dev.txt) and the debug `forge-rollback` the Rust stage built (`FORGE_ROLLBACK_BIN`,
else `target/debug/forge-rollback`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from fleetkit import (
    HOSTS,
    LINGER,
    PLAYBOOK,
    REVISIONS,
    Fleet,
    LoadBalancer,
    cli_binary,
    closed_port,
    git,
    kill_controller,
    recap,
    show,
)


def test_all_hosts_good_then_a_second_run_changes_nothing(fleet: Fleet) -> None:
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    lb = LoadBalancer()
    try:
        p = fleet.play("-e", f"forge_rollback_lb_url={lb.url}")
    finally:
        lb.close()
    # The load balancer was checked once per batch.
    assert lb.hits == ["/health", "/health"], lb.hits
    assert p.returncode == 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v1}
    assert fleet.revision() == [REVISIONS[0]]
    assert fleet.payments() is None
    # The database moved once, on web1, before any code: one database-only run there.
    db_runs = [r for r in fleet.runs("web1") if r["kind"] == "rollback"]
    assert len(db_runs) == 2, db_runs
    code_started = min(r["started_at"] for h in HOSTS for r in fleet.runs(h) if r["kind"] == "rollback" and r["level"] == "fast")
    db_run = [r for r in db_runs if r["level"] == "full"]
    assert len(db_run) == 1 and db_run[0]["finished_at"] <= code_started, db_runs
    for h in HOSTS[1:]:
        assert [r["level"] for r in fleet.runs(h)] == ["fast"], h
    stats = recap(p.stdout)
    assert all(stats[h]["changed"] >= 1 and stats[h]["failed"] == 0 for h in HOSTS), stats
    # One fleet report: every host's run id, timings and checks.
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "rolled_back"
    assert report["fleet"]["database_host"] == "web1"
    assert report["database"]["run_id"] == db_run[0]["run_id"]
    by_host = {h["host"]: h for h in report["hosts"]}
    for h in HOSTS:
        run = [r for r in fleet.runs(h) if r["level"] == "fast"][0]
        assert by_host[h]["run_id"] == run["run_id"]
        assert by_host[h]["run"]["duration_ms"] >= 0
        assert [c["name"] for c in by_host[h]["run"]["verification"]["checks"]] == ["app"]
    md = fleet.report.read_text()
    assert all(by_host[h]["run_id"] in md for h in HOSTS), md
    # The controller's record is in the folder ansible-playbook ran in, nowhere else.
    assert report["fleet"]["record_dir"].startswith(str(fleet.tmp / "forge-rollback-fleet")), report["fleet"]
    assert len(list(Path(report["fleet"]["record_dir"]).glob("*.json"))) == 1 + len(HOSTS)
    assert not (PLAYBOOK.parent / "forge-rollback-fleet").exists()

    # Idempotence: nothing left to do, nothing changed.
    again = fleet.play()
    assert again.returncode == 0, show(again)
    stats = recap(again.stdout)
    assert all(stats[h]["changed"] == 0 and stats[h]["failed"] == 0 for h in HOSTS), stats
    assert stats["localhost"]["changed"] == 0, stats
    assert sum(len(fleet.runs(h)) for h in HOSTS) == 5
    second = fleet.report_json()["hosts"]
    assert [(h["host"], h["run_id"]) for h in second] == [(h["host"], h["run_id"]) for h in report["hosts"]]
    assert {h["action"] for h in second} == {"already_done"}, second


def test_a_host_failing_verification_in_batch_2_undoes_every_touched_host(fleet: Fleet) -> None:
    fleet.config("web3", check=["false"])
    p = fleet.play()
    assert p.returncode != 0, show(p)
    # Every host back at HEAD, the database at HEAD's revision with its rows.
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    for h in HOSTS:
        rollbacks = [r for r in fleet.runs(h) if r["kind"] == "rollback"]
        assert rollbacks and all(r["status"] == "undone" for r in rollbacks), (h, rollbacks)
    # Undone newest first (batch 2, then batch 1), the database last.
    undo_started = {}
    for h in HOSTS:
        for r in fleet.runs(h):
            if r["kind"] == "undo":
                undo_started[(h, r["undo_of"])] = r["started_at"]
    db_run = [r for r in fleet.runs("web1") if r["level"] == "full"][0]
    db_undo = undo_started.pop(("web1", db_run["run_id"]))
    assert all(t <= db_undo for t in undo_started.values()), undo_started
    order = [h for (h, _), _ in sorted(undo_started.items(), key=lambda kv: kv[1])]
    # Batch 2 (the failed one, last host first), then batch 1 (its two runs were concurrent).
    assert order[:2] == ["web4", "web3"] and sorted(order[2:]) == ["web1", "web2"], order
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone"
    failed = [h for h in report["hosts"] if h["outcome"] == "failed"]
    assert [h["host"] for h in failed] == ["web3"], report["hosts"]
    assert failed[0]["run"]["status"] == "verification_failed"
    assert {(u["host"], u["scope"]) for u in report["undos"]} == {
        ("web1", "code"), ("web2", "code"), ("web3", "code"), ("web4", "code"), ("web1", "database")
    }, report["undos"]
    assert not any(u["failed"] for u in report["undos"]), report["undos"]
    # web3 fails its check on either release: its undo is done, and the report says the host
    # still fails.
    assert [u["host"] for u in report["undos"] if u["verification_failed"]] == ["web3"], report["undos"]
    md = fleet.report.read_text()
    assert "## Undone" in md
    # The failure names the failing check and why, from the run's JSON (not the CLI's log), and
    # its second line stays inside the Markdown list item.
    error = failed[0]["error"]
    assert error.splitlines() == [
        f"run {failed[0]['run_id']} finished its steps but the services failed verification:",
        "  check `app` failed: exit code 1, expected 0",
    ], error
    assert "\n    check `app` failed: exit code 1, expected 0\n" in md, md

    # The operator fixes web3 and plays again; this time the load balancer fails after batch 1.
    # The report is this play's: batch 2 was not touched, only batch 1 and the database undone.
    fleet.config("web3")
    runs_before = {h: {r["run_id"] for r in fleet.runs(h)} for h in HOSTS}
    again = fleet.play("-e", f"forge_rollback_lb_url=http://127.0.0.1:{closed_port()}/health")
    assert again.returncode != 0, show(again)
    assert set(fleet.heads().values()) == {fleet.v2}, show(again)
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    second = fleet.report_json()
    assert {h["host"]: h["outcome"] for h in second["hosts"]} == {
        "web1": "failed", "web2": "failed", "web3": "not_touched", "web4": "not_touched"
    }, second["hosts"]
    # The runs it reports are the ones this play started (none of them was on its host before
    # it), and its own record folder holds exactly those.
    reported = {h["host"]: h["run_id"] for h in second["hosts"] if h["run"]}
    assert set(reported) == {"web1", "web2"}, second["hosts"]
    assert all(run_id and run_id not in runs_before[h] for h, run_id in reported.items()), (reported, runs_before)
    recorded = {json.loads(f.read_text())["run_id"] for f in Path(second["fleet"]["record_dir"]).glob("*-code-*.json")}
    assert recorded == set(reported.values()), (recorded, reported)
    assert {(u["host"], u["scope"], u["action"]) for u in second["undos"]} == {
        ("web1", "code", "undone"), ("web2", "code", "undone"), ("web1", "database", "undone")
    }, second["undos"]
    assert "web3" not in fleet.report.read_text().split("## Failures")[1]
    # Each play keeps its record in a folder of its own.
    assert second["fleet"]["record_dir"] != report["fleet"]["record_dir"], second["fleet"]


def test_a_failing_load_balancer_check_undoes_the_first_batch_and_the_database(fleet: Fleet) -> None:
    p = fleet.play("-e", f"forge_rollback_lb_url=http://127.0.0.1:{closed_port()}/health")
    assert p.returncode != 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    for h in ["web1", "web2"]:
        rollbacks = [r for r in fleet.runs(h) if r["kind"] == "rollback"]
        assert rollbacks and all(r["status"] == "undone" for r in rollbacks), (h, rollbacks)
    # Batch 2 never started.
    assert fleet.runs("web3") == [] and fleet.runs("web4") == []
    assert fleet.report_json()["fleet"]["outcome"] == "undone"


def test_a_failure_within_max_fail_percentage_lets_the_fleet_go_on_then_a_rerun_finishes_it(fleet: Fleet) -> None:
    # Batch 1: web2's restart fails (its run `failed`); batch 2: web3 fails its check
    # (`verification_failed`). Half of each batch is allowed.
    broken = fleet.tmp / "restart-broken"
    broken.touch()
    fleet.config("web2", restart=["sh", "-c", f"test ! -e {broken}"])
    fleet.config("web3", check=["false"])
    p = fleet.play("-e", "forge_rollback_max_fail_percentage=50")
    # web2 and web3 failed (ansible-playbook says so in its exit code) but half a batch is allowed.
    assert p.returncode != 0, show(p)
    heads = fleet.heads()
    assert heads == {h: fleet.v1 for h in HOSTS}, heads
    assert fleet.revision() == [REVISIONS[0]]
    assert [r["status"] for r in fleet.runs("web2")] == ["failed"]
    web3 = [r for r in fleet.runs("web3") if r["kind"] == "rollback"]
    assert [r["status"] for r in web3] == ["verification_failed"], web3
    assert all(r["kind"] == "rollback" for h in HOSTS for r in fleet.runs(h)), "nothing was undone"
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "rolled_back_with_failures"
    assert [h["host"] for h in report["hosts"] if h["outcome"] == "failed"] == ["web2", "web3"]
    assert report["undos"] == []

    # Both fixed, the same command again: the hosts agree (web2's failed run counts as being on
    # the way from the old release), web2's run is resumed and the fleet finishes.
    broken.unlink()
    fleet.config("web3")
    again = fleet.play("-e", "forge_rollback_max_fail_percentage=50")
    assert again.returncode == 0, show(again)
    assert [r["status"] for r in fleet.runs("web2")] == ["succeeded"], fleet.runs("web2")
    second = fleet.report_json()
    assert second["fleet"]["outcome"] == "rolled_back", second["fleet"]
    assert {h["host"]: h["action"] for h in second["hosts"]} == {
        "web1": "already_done", "web2": "resumed", "web3": "already_done", "web4": "already_done"
    }, second["hosts"]
    assert second["database"]["action"] == "already_done", second["database"]


def test_a_later_play_that_aborts_undoes_what_an_earlier_play_rolled_back(fleet: Fleet) -> None:
    # Play 1: web2's restart fails within max_fail_percentage; the fleet goes on (batch 2 and
    # the database on v1). Play 2, with no failure allowed: web2 fails again in batch 1, so the
    # fleet aborts. It must undo web3 and web4 too (play 1 rolled them back; play 2 never
    # reached them), or they run v1's code on v2's schema once the database is undone.
    broken = fleet.tmp / "restart-broken"
    broken.touch()
    fleet.config("web2", restart=["sh", "-c", f"test ! -e {broken}"])
    first = fleet.play("-e", "forge_rollback_max_fail_percentage=50")
    assert first.returncode != 0, show(first)
    assert fleet.heads() == {h: fleet.v1 for h in HOSTS}
    again = fleet.play()
    assert again.returncode != 0, show(again)
    heads = fleet.heads()
    assert heads == {h: fleet.v2 for h in HOSTS}, heads
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone", report["fleet"]
    assert {u["host"] for u in report["undos"] if u["scope"] == "code"} == set(HOSTS), report["undos"]


def test_a_fast_fleet_that_aborts_asks_nothing_of_the_database_host(fleet: Fleet) -> None:
    # Level fast: the database never moves. web4 is the database host, in batch 2, and its
    # command fails once web2 has failed its check in batch 1 (as a host gone away). The abort
    # undoes batch 1 and must not look for a database run on web4: that look-up would fail and
    # put a failed database undo in the report of a rollback that never moved the database.
    gone = fleet.tmp / "web4-gone"
    wrapper = fleet.tmp / "web4-forge-rollback"
    wrapper.write_text(f"#!/bin/sh\nif [ -e {gone} ]; then echo 'error: web4 is gone' >&2; exit 1; fi\n"
                       f"exec {cli_binary()} \"$@\"\n")
    wrapper.chmod(0o755)
    fleet.write_inventory(db_host="web4", bins={"web4": wrapper})
    fleet.config("web2", check=["sh", "-c", f"touch {gone}; false"])
    p = fleet.play("-e", "level=fast")
    assert p.returncode != 0, show(p)
    assert gone.exists(), show(p)
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.runs("web3") == [] and fleet.runs("web4") == []
    report = fleet.report_json()
    assert (report["fleet"]["outcome"], report["fleet"]["level"]) == ("undone", "fast"), report["fleet"]
    assert report["database"] is None, report["database"]
    assert [(u["host"], u["scope"], u["failed"]) for u in report["undos"]] == [
        ("web2", "code", False), ("web1", "code", False)
    ], report["undos"]


def test_a_rerun_carries_on_in_an_incident_folder_of_the_previous_collection(fleet: Fleet) -> None:
    # A play of the previous collection kept its records in the incident's folder itself (no
    # folder per play, no `closed`). A re-run after the upgrade carries on in that folder: with
    # `level=fast` it does not touch the database, and its report still names the database run
    # the earlier play recorded.
    first = fleet.play()
    assert first.returncode == 0, show(first)
    play_dir = Path(fleet.report_json()["fleet"]["record_dir"])
    incident = play_dir.parent
    db_run = json.loads((play_dir / "000-database.json").read_text())["run_id"]
    assert db_run
    for f in play_dir.glob("*.json"):
        f.rename(incident / f.name)
    shutil.rmtree(play_dir)

    again = fleet.play("-e", "level=fast")
    assert again.returncode == 0, show(again)
    report = fleet.report_json()
    assert report["database"] is not None and report["database"]["run_id"] == db_run, report["database"]
    assert report["fleet"]["record_dir"] == str(incident), report["fleet"]
    assert {h["action"] for h in report["hosts"]} == {"already_done"}, report["hosts"]
    # It closed that folder: the next play starts a folder of its own.
    assert (incident / "closed").is_file()
    assert [d for d in incident.iterdir() if d.is_dir()] == []
    third = fleet.play("-e", "level=fast")
    assert third.returncode == 0, show(third)
    assert Path(fleet.report_json()["fleet"]["record_dir"]).parent == incident, fleet.report_json()["fleet"]


def test_a_failed_database_downgrade_moves_no_code_and_is_undone(fleet: Fleet) -> None:
    # web1 (the database host) has a migration whose downgrade fails half-way.
    rev2 = fleet.paths["web1"] / "migrations" / "versions" / "b2_payments.py"
    rev2.write_text(rev2.read_text().replace('op.drop_table("payments")', 'raise RuntimeError("downgrade boom")'))
    p = fleet.play()
    assert p.returncode != 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v2}
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    db_runs = [r for r in fleet.runs("web1") if r["kind"] == "rollback"]
    assert [(r["level"], r["status"]) for r in db_runs] == [("full", "undone")], db_runs
    assert all(fleet.runs(h) == [] for h in HOSTS[1:])
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone"
    assert report["database"]["outcome"] == "failed", report["database"]
    # The run's error, its migration's traceback cut to its end.
    error = report["database"]["error"]
    assert "RuntimeError: downgrade boom" in error and "restored from backup" in error, error
    assert len(error.splitlines()) <= 10, error
    assert [(u["host"], u["scope"], u["failed"]) for u in report["undos"]] == [("web1", "database", False)], report["undos"]
    assert all(h["outcome"] == "not_touched" for h in report["hosts"]), report["hosts"]


def test_hosts_that_disagree_are_refused_before_anything_changes(fleet: Fleet) -> None:
    git(fleet.paths["web2"], "reset", "-q", "--hard", "v1")
    p = fleet.play()
    assert p.returncode != 0
    assert "the hosts disagree on what to roll back" in p.stdout, show(p)
    assert fleet.heads() == {"web1": fleet.v2, "web2": fleet.v1, "web3": fleet.v2, "web4": fleet.v2}
    assert fleet.revision() == [REVISIONS[1]]
    assert all(fleet.runs(h) == [] for h in HOSTS)


def test_check_mode_plans_and_changes_nothing(fleet: Fleet) -> None:
    p = fleet.play("--check", "-v")
    assert p.returncode == 0, show(p)
    # The database host plans the database-only run, every host its code run.
    assert p.stdout.count('"action": "planned"') == 1 + len(HOSTS), show(p)
    assert set(fleet.heads().values()) == {fleet.v2}
    assert fleet.revision() == [REVISIONS[1]]
    assert all(fleet.runs(h) == [] for h in HOSTS)
    assert not fleet.report.exists()
    assert "check mode: planned only; nothing was rolled back and no report was written" in p.stdout, show(p)
    assert "fleet report:" not in p.stdout, show(p)
    assert not (fleet.tmp / "forge-rollback-fleet").exists()


def test_the_controller_killed_mid_batch_then_a_rerun_resumes_and_finishes(fleet: Fleet) -> None:
    # web1's run restarts its service slowly: the controller (and everything it started, as
    # when its machine dies) is killed while that step runs.
    fleet.config("web1", restart=["sleep", "3"])
    proc = subprocess.Popen(fleet.argv(), cwd=fleet.tmp, env=fleet.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    runs = fleet.paths["web1"] / ".git" / "forge-rollback" / "runs"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            begun = [
                line
                for j in runs.glob("*/journal.jsonl")
                for line in j.read_text().splitlines()
                if '"record":"step_begin"' in line and '"step":"restart"' in line
            ]
            if begun:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the playbook ended before web1's restart began"
    finally:
        kill_controller(proc)
    code = [r for r in fleet.runs("web1") if r["level"] == "fast"]
    assert len(code) == 1 and code[0]["interrupted"], code
    assert fleet.revision() == [REVISIONS[0]]

    p = fleet.play()
    assert p.returncode == 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v1}
    code = [r for r in fleet.runs("web1") if r["level"] == "fast"]
    assert len(code) == 1 and code[0]["status"] == "succeeded" and not code[0]["interrupted"], code
    assert '"action": "resumed"' in p.stdout or "resumed" in json.dumps(fleet.report_json()), show(p)
    assert {h["host"]: h["action"] for h in fleet.report_json()["hosts"]}["web1"] == "resumed"
    assert fleet.revision() == [REVISIONS[0]]
    for h in HOSTS:
        assert all(r["status"] == "succeeded" for r in fleet.runs(h)), fleet.runs(h)


def test_the_controller_killed_during_the_database_downgrade_then_reruns_undo_or_finish_it(fleet: Fleet) -> None:
    # web1's Alembic lingers after it committed the downgrade (only on the live database, only
    # while the flag exists): the controller, and everything it started, is killed then.
    linger = fleet.tmp / "linger"
    env_py = fleet.paths["web1"] / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + LINGER.format(flag=str(linger), url=fleet.url, db=str(fleet.db)))

    def crash_during_the_downgrade() -> str:
        linger.touch()
        proc = subprocess.Popen(fleet.argv(), cwd=fleet.tmp, env=fleet.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None and fleet.revision() != [REVISIONS[0]]:
                time.sleep(0.05)
            assert proc.poll() is None, "the playbook ended before web1's downgrade committed"
        finally:
            kill_controller(proc)
            linger.unlink()
        db_runs = [r for r in fleet.runs("web1") if r["kind"] == "rollback" and r["status"] != "undone"]
        assert len(db_runs) == 1 and db_runs[0]["interrupted"] and db_runs[0]["level"] == "full", db_runs
        assert fleet.revision() == [REVISIONS[0]] and fleet.payments() is None
        return db_runs[0]["run_id"]

    # Re-run with `level=fast`: the database host's code run is refused (an unfinished run
    # there), and the abort finds the database run on the database host although the
    # controller has no record of it: everything is back on the old release, schema and rows.
    db_run = crash_during_the_downgrade()
    p = fleet.play("-e", "level=fast")
    assert p.returncode != 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]], show(p)
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone"
    assert report["database"]["run_id"] == db_run, report["database"]
    assert ("web1", "database", db_run, "undone") in {(u["host"], u["scope"], u["run_id"], u["action"]) for u in report["undos"]}
    assert "Not moved" not in fleet.report.read_text()

    # The same crash, then the same command again: the half-done database run makes the level
    # full (the database's revision alone now says fast), it is resumed and the fleet finishes.
    db_run = crash_during_the_downgrade()
    p = fleet.play()
    assert p.returncode == 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v1}, show(p)
    assert fleet.revision() == [REVISIONS[0]] and fleet.payments() is None
    assert {r["run_id"]: r["status"] for r in fleet.runs("web1") if r["level"] == "full"}[db_run] == "succeeded"
    report = fleet.report_json()
    assert (report["fleet"]["outcome"], report["fleet"]["level"]) == ("rolled_back", "full"), report["fleet"]
    assert (report["database"]["run_id"], report["database"]["action"]) == (db_run, "resumed"), report["database"]
