#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: forge-rollback contributors
# SPDX-License-Identifier: MIT OR Apache-2.0 (as the rest of forge-rollback)
"""forge.rollback.rollback: drive the forge-rollback CLI on one host."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rollback
short_description: Assess, roll back, verify or undo one work tree with forge-rollback
description:
  - Drives the C(forge-rollback) command line installed on the host, always with C(--json),
    on one git work tree.
  - C(state=assessed) reads only. C(state=rolled_back) rolls the tree (and with
    O(database_only) only its database) back to O(target); it resumes an interrupted run of
    its scope found on the host (code runs, or with O(database_only) database-only runs) before
    it assesses anything, and changes nothing when the host is already at the target after a
    finished run. A failed run to O(target) is resumed (once its cause is fixed) when it is
    the newest run of its scope and either changed something (forge-rollback refuses a new run
    over it) or started from HEAD; an older attempt that failed having changed nothing is
    left, and a new run plans from HEAD.
    C(state=verified) runs the configured checks. C(state=undone) undoes a run (by O(run_id),
    else the newest rollback run to O(target) not undone yet).
  - In check mode C(state=rolled_back) runs C(forge-rollback plan) and reports the steps it
    would run; nothing is written.
version_added: "0.1.0"
author:
  - forge-rollback contributors
options:
  path:
    description: The work tree (any folder inside it). Passed as C(-C PATH).
    type: path
    required: true
  bin:
    description: The C(forge-rollback) program (a path, or a name looked up on C(PATH)).
    type: str
    default: forge-rollback
  config:
    description: A configuration file to use instead of the discovered one (C(--config)).
    type: path
  state:
    description: What to do.
    type: str
    choices: [assessed, rolled_back, verified, undone]
    default: rolled_back
  target:
    description:
      - The revision to roll back to (a hash, tag or branch). Default the registry's choice,
        the newest verified known-good commit not marked bad.
    type: str
  level:
    description:
      - C(fast) (code only) or C(full) (code, database schema and env). Default the
        assessment's recommendation. Ignored with O(database_only).
    type: str
    choices: [fast, full]
  database_only:
    description:
      - Only the database part of a full rollback (C(run --database-only)) - a snapshot of the
        database and the downgrade; the code stays. A fleet runs it once, on one host, before
        any code moves. With C(state=undone) and no O(run_id), selects the newest database-only
        run instead of the newest code run.
    type: bool
    default: false
  run_id:
    description: The run to undo (C(state=undone)); default the newest rollback run to O(target)
      of the scope O(database_only) selects that is not undone yet.
    type: str
  rollback_from:
    description:
      - With C(state=undone) and no O(run_id), only a run that started from this commit (full
        hash) is undone - the fleet's own run, never an older rollback to the same target.
    type: str
  reason:
    description: Why (journaled, and in the host's incident report).
    type: str
  wait_timeout:
    description:
      - With C(state=rolled_back), how long to wait for a run still going on the host (a
        controller that died left it running) before resuming or skipping it, in seconds.
    type: int
    default: 600
  environment:
    description:
      - Variables for the command, e.g. the one C(database.url_env) names. Never logged.
    type: dict
    default: {}
notes:
  - Exit codes of the command line are returned in RV(rc); a failure carries the command's
    C(error:), C(caused by:) and C(hint:) lines in RV(msg) (for a failed verification, exit 6,
    one line per failing check with its reason) and, when a run was journaled, its RV(run_id)
    and RV(run), so a play can undo it.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Assess (reads only)
  forge.rollback.rollback:
    path: /srv/app
    state: assessed
    target: v2
  register: assessment

- name: Downgrade the shared database once, before any code moves
  forge.rollback.rollback:
    path: /srv/app
    state: rolled_back
    database_only: true
    target: v2
  run_once: true

- name: Roll the code back
  forge.rollback.rollback:
    path: /srv/app
    bin: /usr/local/bin/forge-rollback
    state: rolled_back
    level: fast
    target: v2
  register: rollback

- name: Undo it
  forge.rollback.rollback:
    path: /srv/app
    state: undone
    run_id: "{{ rollback.run_id }}"
"""

RETURN = r"""
run_id:
  description: The run started, resumed, found (already at the target) or undone.
  returned: when a run is involved
  type: str
  sample: 20261204-011606-942b75
undone_by:
  description: With C(state=undone), the id of the undo run.
  returned: state=undone
  type: str
verification_failed:
  description: With C(state=undone), the state is back but the host's checks fail on it too
    (the command exited 6, kept in RV(exit_code); RV(rc) is 0, the undo is done); a warning says so.
  returned: state=undone
  type: bool
exit_code:
  description: With C(state=undone), the command's exit code (0, or 6 with RV(verification_failed)).
  returned: state=undone
  type: int
run:
  description: The run's JSON as C(forge-rollback run --json) prints it (C(run_id), C(status),
    C(level), C(from), C(to), C(steps), C(duration_ms), C(verification), ...).
  returned: when a run is involved
  type: dict
action:
  description: What the module did - C(assessed), C(ran), C(resumed), C(already_done),
    C(planned), C(verified), C(undone), C(already_undone), C(nothing_to_do).
  returned: always
  type: str
assessment:
  description: C(forge-rollback assess --json).
  returned: state=assessed
  type: dict
rollback_from:
  description: With C(state=assessed), the commit the rollback goes from - HEAD, or where a run
    to the target found on the host (finished, interrupted, or failed and to be resumed) started;
    hosts of one fleet agree on it.
  returned: state=assessed
  type: str
database_run:
  description: With C(state=assessed), a database-only run on this host from RV(rollback_from) to
    the target that is not undone (C(run_id), C(status), C(interrupted), C(unfinished) - interrupted
    or failed, to be resumed), or null. A fleet whose database host has one takes level C(full),
    so its database step resumes it or finds it done.
  returned: state=assessed
  type: dict
rollback_to:
  description: With C(state=assessed), the target commit (full hash).
  returned: state=assessed
  type: str
plan:
  description: In check mode, C(forge-rollback plan --json).
  returned: check mode with state=rolled_back
  type: dict
verification:
  description: With C(state=verified), C(forge-rollback verify --json).
  returned: state=verified
  type: dict
rc:
  description: The command's exit code (0 success, 1 a step failed, 2 bad usage, 3 locked,
    4 refused, 5 cancelled, 6 verification failed).
  returned: always
  type: int
"""

import json
import time
from collections import namedtuple

from ansible.module_utils.basic import AnsibleModule

#: Statuses of a run that left nothing to finish.
FINISHED = ("succeeded", "verification_failed", "undone")

#: A rollback run found on the host: its `runs list` entry, its outcome (`runs show`), whether
#: it is database-only, and whether it changed anything (its `runs list` entry says).
Run = namedtuple("Run", ["summary", "outcome", "db_only", "changed"])


class Cli:
    """The forge-rollback command line on one work tree."""

    def __init__(self, module):
        self.module = module
        p = module.params
        self.base = [p["bin"], "-C", p["path"], "--json"]
        if p["config"]:
            self.base += ["--config", p["config"]]
        self.env = {k: str(v) for k, v in (p["environment"] or {}).items()}

    def call(self, *args):
        """Runs a command; returns (rc, parsed stdout or None, stderr)."""
        rc, out, err = self.module.run_command(
            self.base + list(args), environ_update=self.env, check_rc=False, encoding="utf-8"
        )
        data = None
        if out.strip():
            try:
                data = json.loads(out)
            except ValueError:
                data = None
        return rc, data, err

    def must(self, *args):
        """Runs a command that must succeed; fails the module otherwise."""
        rc, data, err = self.call(*args)
        if rc != 0:
            self.fail(args, rc, err, data)
        return data

    def fail(self, args, rc, err, data=None, **extra):
        # The command's own error: its `error:`, `caused by:` and `hint:` lines (the whole
        # stderr, tracebacks of a migration included, is in `stderr`). The CLI indents
        # `caused by:` under its `error:`: the indent is kept, so msg reads as the CLI printed it.
        # A run that failed says why in its JSON (`error`); a refusal in `error:` lines; failed
        # checks (exit 6) in the JSON's verification, read here rather than pasting the log.
        lines = [ln[:1000] for ln in err.splitlines() if ln.lstrip().startswith(("error:", "caused by:", "hint:"))]
        hints = [ln for ln in lines if ln.lstrip().startswith("hint:")]
        checks = failed_checks(extra.get("verification") or (data.get("verification") if isinstance(data, dict) else None))
        if isinstance(data, dict) and data.get("error"):
            lines = [shorten(str(data["error"]))] + hints
        elif rc == 6 and checks:
            if isinstance(data, dict) and data.get("run_id"):
                head = "run %s finished its steps but the services failed verification:" % data["run_id"]
            else:
                head = "forge-rollback %s: the services failed verification:" % args[0]
            lines = [head] + checks + hints
        msg = "\n".join(lines) or "\n".join(err.strip().splitlines()[-20:]) or "forge-rollback %s exited %d" % (args[0], rc)
        result = dict(msg=msg, rc=rc, stderr=err, command=" ".join(self.base + list(args)), **extra)
        if isinstance(data, dict) and data.get("run_id"):
            result.update(run_id=data["run_id"], run=data)
        self.module.fail_json(**result)


def failed_checks(verification):
    """One indented line per check that did not pass, with its reason, from a verification's
    JSON (`run --json` or `verify --json`); empty when there is none to read."""
    if not isinstance(verification, dict):
        return []
    return ["  check `%s` %s: %s" % (c.get("name"), c.get("status", "failed"), c.get("reason") or "no reason given")
            for c in verification.get("checks") or [] if not c.get("passed")]


def shorten(text, keep=6):
    """The first line and the last `keep` of a long error (a migration's traceback in the middle)."""
    lines = text.splitlines()
    if len(lines) <= keep + 2:
        return text
    return "\n".join([lines[0], "  [... %d lines ...]" % (len(lines) - keep - 1)] + lines[-keep:])


def is_database_only(outcome):
    """A run with database steps and no reset: `run --database-only`."""
    steps = [s.get("step") for s in outcome.get("steps", [])]
    return "reset" not in steps and "downgrade" in steps


def runs_of_scope(cli, runs, database_only=None):
    """Rollback runs, newest first, of the scope asked for (both scopes with
    `database_only=None`), as `Run`s."""
    out = []
    for r in reversed(runs):
        if r.get("kind") != "rollback":
            continue
        shown = cli.must("runs", "show", r["run_id"])
        outcome = shown.get("outcome", {})
        # `changed_something`: the command line's own rule (a failed run that changed nothing
        # blocks no new run, and a new run plans from where the tree is now).
        run = Run(r, outcome, is_database_only(outcome), r.get("changed_something", True))
        if database_only is None or run.db_only == database_only:
            out.append(run)
    return out


def wait_live(module, cli, runs):
    """Waits while a run is live on the host (its process holds the lock: a controller that died
    left it going), up to `wait_timeout` seconds; returns the runs as they are then."""
    deadline = time.monotonic() + module.params["wait_timeout"]
    while any(r.get("status") == "running" and not r.get("interrupted") for r in runs):
        if time.monotonic() > deadline:
            live = [r["run_id"] for r in runs if r.get("status") == "running" and not r.get("interrupted")]
            module.fail_json(msg="run %s is still going on this host after %ss (wait_timeout)"
                             % (", ".join(live), module.params["wait_timeout"]), rc=3)
        time.sleep(1)
        runs = cli.must("runs", "list")
    return runs


def assess(cli, target):
    args = ["assess"] + (["--target", target] if target else [])
    return cli.must(*args)


def resolve(cli, rev, must=True):
    """The commit `rev` names, resolved as a run resolves its `--target` (`None` when it names
    none and not `must`). `gate REV` reads only and assesses nothing: no data-loss forecast,
    no production platform asked."""
    rc, data, err = cli.call("gate", rev)
    # Exit 4: the commit is marked known bad (a broken HEAD often is); the JSON naming it is
    # printed all the same.
    if rc not in (0, 4) or not isinstance(data, dict) or not data.get("commit"):
        if not must:
            return None
        cli.fail(("gate", rev), rc, err)
    return data["commit"]


def head_relative(rev):
    """What follows HEAD in a revision named from it (`~1` for `HEAD~1`, `^2` for `@^2`, an
    empty string for `HEAD` itself); `None` for any other revision."""
    for head in ("HEAD", "@"):
        if rev == head:
            return ""
        if rev.startswith(head) and rev[len(head)] in "~^":
            return rev[len(head):]
    return None


def unfinished(r):
    return r.get("interrupted") or r.get("status") == "running"


def to_resume(run, newest, to, head):
    """Whether the module finishes `run` (a `Run` of the module's scope: code runs, or with
    `database_only` database-only runs; `newest` the newest of that scope) instead of starting
    another. `to` is the target's commit; `head()` gives HEAD's, asked only when needed.

    An interrupted one, whatever its target: the command line refuses every new run until it
    is finished or undone. Only within the scope: a code call does not resume an interrupted
    database-only run (nor the other way round); the command line refuses its new run instead,
    naming the unfinished one.

    A failed one (a step failed: the command line resumes it from that step once the cause is
    fixed) only when it goes to the target, is the newest run of its scope, and either changed
    something (the command line refuses a new run over it) or started from HEAD. One that
    failed having changed nothing (a snapshot that could not be taken, a downgrade put back)
    from another commit is an old attempt that blocks nothing: a new run plans from HEAD."""
    r = run.summary
    if unfinished(r):
        return True
    if r.get("status") != "failed" or r.get("to") != to or run is not newest:
        return False
    return run.changed or r.get("from") == head()


def resume(module, cli, run):
    r = run.summary
    if module.check_mode:
        module.exit_json(changed=True, action="resume", run_id=r["run_id"], run=run.outcome, rc=0)
    rc, data, err = cli.call("resume", r["run_id"], "--yes")
    if rc != 0:
        cli.fail(("resume", r["run_id"]), rc, err, data if isinstance(data, dict) else run.outcome)
    module.exit_json(changed=True, action="resumed", run_id=r["run_id"], run=data, rc=rc)


def do_assessed(module, cli):
    p = module.params
    a = assess(cli, p["target"])
    head, to = a["head"]["commit"], a["target"]["commit"]["id"]
    runs = cli.must("runs", "list")
    scoped = runs_of_scope(cli, runs)
    code = [x for x in scoped if not x.db_only]
    db_runs = [x for x in scoped if x.db_only]
    rollback_from = head
    found = None
    for x in code:
        r = x.summary
        if r.get("to") != to or r.get("status") == "undone":
            continue
        if to_resume(x, code[0], to, lambda: head) or (head == to and r.get("status") in FINISHED):
            found = r
            break
    if found:
        rollback_from = found["from"]
    # A database-only run of this rollback on this host (same from, same target), not undone:
    # the database is part-way or all the way down because of it. A fleet takes level full
    # then, so the database step resumes it (or finds it done) whatever the database's
    # revision now recommends.
    database_run = None
    for x in db_runs:
        r = x.summary
        if r.get("to") == to and r.get("from") == rollback_from and r.get("status") != "undone":
            database_run = dict(run_id=r["run_id"], status=r.get("status"), interrupted=bool(r.get("interrupted")),
                                unfinished=bool(to_resume(x, db_runs[0], to, lambda: head)))
            break
    db = a.get("database") or {}
    module.exit_json(
        changed=False,
        action="assessed",
        assessment=a,
        head=head,
        rollback_from=rollback_from,
        rollback_to=to,
        needs_downgrade=bool(db.get("needs_downgrade")),
        recommended_level=a.get("recommended_level"),
        run_id=found["run_id"] if found else None,
        database_run=database_run,
        rc=0,
    )


def do_rolled_back(module, cli):
    p = module.params
    database_only = p["database_only"]
    runs = wait_live(module, cli, cli.must("runs", "list"))
    scoped = runs_of_scope(cli, runs, database_only)
    # An interrupted run of this scope: finished first, before the host is asked anything else.
    # `assess` runs the data-loss forecast (a throwaway downgrade) against a database the run
    # may have left half-way down, asks the production platform, and resolves a target such as
    # `HEAD~1` or the registry's choice from where the run left HEAD: none of that may stop
    # the resume.
    for x in scoped:
        if unfinished(x.summary):
            resume(module, cli, x)
    # A failed run to the target (see `to_resume`): the target and HEAD are resolved without
    # an assessment, unless no target is named (only an assessment reads the registry's choice).
    a = None
    newest = scoped[0] if scoped else None
    if newest and newest.summary.get("status") == "failed":
        if p["target"]:
            # A target named from HEAD (`HEAD~1`): the failed run may have moved HEAD (its
            # reset ran), so it is read from where that run started, as the run read it.
            rel = head_relative(p["target"])
            started = newest.summary.get("from")
            from_start = resolve(cli, started + rel, must=False) if rel is not None and started else None
            to = from_start if from_start == newest.summary.get("to") else resolve(cli, p["target"])
        else:
            a = assess(cli, None)
            to = a["target"]["commit"]["id"]
        if to_resume(newest, newest, to, lambda: resolve(cli, "HEAD")):
            resume(module, cli, newest)
    a = a or assess(cli, p["target"])
    head, to = a["head"]["commit"], a["target"]["commit"]["id"]
    done = [(x.summary, x.outcome) for x in scoped
            if x.summary.get("to") == to and x.summary.get("status") in ("succeeded", "verification_failed")]
    if database_only:
        db = a.get("database")
        if not db:
            cli.fail(("run", "--database-only"), 2, "error: no `[database]` is configured for this work tree: nothing to downgrade\n")
        if not db.get("needs_downgrade"):
            r, o = done[0] if done else (None, None)
            module.exit_json(changed=False, action="already_done" if r else "nothing_to_do",
                             run_id=r["run_id"] if r else None, run=o, rc=0)
        scope = ["--database-only"]
    else:
        if head == to:
            r, o = done[0] if done else (None, None)
            module.exit_json(changed=False, action="already_done" if r else "nothing_to_do",
                             run_id=r["run_id"] if r else None, run=o, rc=0)
        scope = ["--" + p["level"]] if p["level"] else []
    if module.check_mode:
        plan = cli.must("plan", "--target", to, *scope)
        module.exit_json(changed=True, action="planned", plan=plan, rc=0)
    args = ["run", "--yes", "--target", to] + scope
    if p["reason"]:
        args += ["--reason", p["reason"]]
    rc, data, err = cli.call(*args)
    if rc != 0:
        cli.fail(tuple(args), rc, err, data)
    module.exit_json(changed=True, action="ran", run_id=data["run_id"], run=data, rc=rc)


def do_verified(module, cli):
    rc, data, err = cli.call("verify")
    if rc != 0:
        cli.fail(("verify",), rc, err, None, verification=data)
    module.exit_json(changed=False, action="verified", verification=data, rc=rc)


def do_undone(module, cli):
    p = module.params
    run_id = p["run_id"]
    if not run_id:
        runs = cli.must("runs", "list")
        to = assess(cli, p["target"])["target"]["commit"]["id"] if p["target"] else None
        for x in runs_of_scope(cli, runs, p["database_only"]):
            r = x.summary
            if (r.get("status") != "undone" and (to is None or r.get("to") == to)
                    and (not p["rollback_from"] or r.get("from") == p["rollback_from"])):
                run_id = r["run_id"]
                break
        if not run_id:
            module.exit_json(changed=False, action="nothing_to_do", rc=0)
    shown = cli.must("runs", "show", run_id)
    outcome = shown.get("outcome", {})
    if outcome.get("status") == "undone":
        module.exit_json(changed=False, action="already_undone", run_id=run_id,
                         undone_by=outcome.get("undone_by"), run=outcome, rc=0)
    if module.check_mode:
        module.exit_json(changed=True, action="undo", run_id=run_id, run=outcome, rc=0)
    rc, data, err = cli.call("undo", run_id, "--yes")
    # Exit 6: the state is back, but the services fail their checks on it too (a host broken
    # on both releases). The undo is done; say so rather than fail it.
    if rc == 6 and isinstance(data, dict) and data.get("run_id"):
        module.warn("run %s was undone, but the host fails its checks after the undo too" % run_id)
    elif rc != 0:
        cli.fail(("undo", run_id), rc, err, None, undo=data)
    # `rc` stays 0 (Ansible fails any result with a non-zero `rc`); `exit_code` keeps the 6.
    module.exit_json(changed=True, action="undone", run_id=run_id, undone_by=data.get("run_id"), run=data,
                     verification_failed=rc == 6, exit_code=rc, rc=0)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            bin=dict(type="str", default="forge-rollback"),
            config=dict(type="path"),
            state=dict(type="str", default="rolled_back", choices=["assessed", "rolled_back", "verified", "undone"]),
            target=dict(type="str"),
            level=dict(type="str", choices=["fast", "full"]),
            database_only=dict(type="bool", default=False),
            run_id=dict(type="str"),
            rollback_from=dict(type="str"),
            reason=dict(type="str"),
            wait_timeout=dict(type="int", default=600),
            environment=dict(type="dict", default={}, no_log=True),
        ),
        supports_check_mode=True,
    )
    cli = Cli(module)
    state = module.params["state"]
    if state == "assessed":
        do_assessed(module, cli)
    elif state == "rolled_back":
        do_rolled_back(module, cli)
    elif state == "verified":
        do_verified(module, cli)
    else:
        do_undone(module, cli)


if __name__ == "__main__":
    main()
