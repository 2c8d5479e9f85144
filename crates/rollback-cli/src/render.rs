//! Text for people: what `assess`, `run`, `undo`, `resume`, `verify` and `backups list` print
//! without `--json`.

use std::fmt::Write as _;

use rollback_core::assess::Assessment;
use rollback_core::{RunOutcome, RunStatus};

pub(crate) fn verification(v: &rollback_core::verify::VerificationReport) -> String {
    let mut s = String::new();
    for c in &v.checks {
        let _ = writeln!(
            s,
            "  [{}] {:<20} {:<11} {:>6} ms  {}",
            if c.passed {
                "ok"
            } else if c.inconclusive() {
                "??"
            } else {
                "FAIL"
            },
            c.name,
            c.kind,
            c.latency_ms,
            c.reason
        );
        if let Some(m) = &c.metric {
            let _ = writeln!(s, "       query: {}", m.query);
        }
    }
    let failed = v.checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        s,
        "verification: {} of {} check(s) passed in {} ms{}",
        v.checks.len() - failed,
        v.checks.len(),
        v.duration_ms,
        if failed > 0 { " — FAILED" } else { "" }
    );
    s
}

pub(crate) fn outcome(o: &RunOutcome) -> String {
    let mut s = String::new();
    let id = o.run_id.as_deref().unwrap_or("-");
    let _ = writeln!(s, "run:     {id} ({}{})", o.kind.as_str(), o.level.map(|l| format!(", {l}")).unwrap_or_default());
    if o.interrupted {
        let _ = writeln!(s, "status:  interrupted (the process died half-way; resume or undo it)");
    } else {
        let _ = writeln!(s, "status:  {}", o.status);
    }
    let _ = writeln!(s, "from:    {} ({})", o.from, o.branch.as_deref().unwrap_or("detached"));
    let _ = writeln!(s, "to:      {}", o.to);
    if let Some(b) = &o.backup_id {
        let _ = writeln!(s, "backup:  {b}");
    }
    if let Some(u) = &o.undo_of {
        let _ = writeln!(s, "undoes:  {u}");
    }
    if o.finished_at.is_none() && !o.interrupted {
        // Live: no time taken yet, only since when.
        let _ = writeln!(s, "time:    running since {}", o.started_at);
    } else {
        let _ = writeln!(s, "time:    {} ms", o.duration_ms);
    }
    for st in &o.steps {
        let _ = writeln!(s, "  [{:<11}] {}", st.status, st.step);
    }
    if let Some(v) = &o.verification {
        s.push_str(&verification(v));
    }
    if let Some(e) = &o.error {
        let _ = writeln!(s, "error:   {e}");
    }
    if let Some(u) = &o.undone_by {
        let _ = writeln!(s, "undone:  {}", rollback_core::journal::undone_by_words(u));
    }
    for w in &o.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if matches!(o.status, RunStatus::Succeeded | RunStatus::VerificationFailed | RunStatus::Cancelled)
        && o.undone_by.is_none()
        && o.kind == rollback_core::plan::RunKind::Rollback
    {
        let _ = writeln!(s, "undo with: forge-rollback undo {id}");
    }
    s
}

pub(crate) fn assessment(a: &Assessment) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "repository: {} (backend {})", a.workdir.display(), a.backend);
    let _ = writeln!(
        s,
        "HEAD:       {} ({}) {}",
        a.head.commit.short(),
        a.head.branch.as_deref().unwrap_or("detached"),
        a.head_summary
    );
    let src = match a.target.source {
        rollback_core::assess::TargetSource::Explicit => "given",
        rollback_core::assess::TargetSource::Registry => "newest verified known-good",
    };
    let _ = writeln!(s, "target:     {} {} ({src})", a.target.commit.id.short(), a.target.commit.summary);
    let _ = writeln!(s, "ancestor:   {}", if a.target_is_ancestor { "yes" } else { "NO" });
    let _ = writeln!(s, "commits rolled back: {}", a.commits_rolled_back_total);
    for c in &a.commits_rolled_back {
        let _ = writeln!(s, "  {} {}", c.id.short(), c.summary);
    }
    let _ = writeln!(s, "files changed: {}", a.changes.len());
    for (cat, n) in &a.changes_by_category {
        let _ = writeln!(s, "  {:<13} {n}", format!("{cat:?}").to_lowercase());
    }
    for c in a.changes.iter().take(rollback_core::plan::FILES_SHOWN) {
        let _ = writeln!(
            s,
            "    {:<12} {:<13} {}{}",
            format!("{:?}", c.kind).to_lowercase(),
            format!("{:?}", c.category).to_lowercase(),
            c.path,
            if c.submodule { " (submodule)" } else { "" }
        );
    }
    if a.changes.len() > rollback_core::plan::FILES_SHOWN {
        let _ = writeln!(s, "    … and {} more (see --json)", a.changes.len() - rollback_core::plan::FILES_SHOWN);
    }
    let d = &a.dirty;
    let _ = writeln!(
        s,
        "dirty:      {} modified, {} staged, {} untracked, {} ignored",
        d.modified.len(),
        d.staged.len(),
        d.untracked.len(),
        d.ignored.len()
    );
    if a.risks.is_empty() {
        let _ = writeln!(s, "risks:      none");
    } else {
        let _ = writeln!(s, "risks:");
        for r in &a.risks {
            let _ = writeln!(s, "  [{:?}] {}: {}", r.severity, r.code, r.message);
        }
    }
    if let Some(p) = &a.production {
        let _ = writeln!(s, "{}", p.line());
    }
    if let Some(db) = &a.database {
        let revs = |r: &[rollback_core::db::Revision]| {
            if r.is_empty() {
                "base".to_owned()
            } else {
                r.iter().map(rollback_core::db::Revision::as_str).collect::<Vec<_>>().join(", ")
            }
        };
        let _ =
            writeln!(s, "database:   {} ({}){}", db.database, db.kind, if db.reachable { "" } else { " UNREACHABLE" });
        let _ = writeln!(s, "  current revision:  {}", revs(&db.current));
        let _ = writeln!(s, "  HEAD's files head: {}", revs(&db.code_heads));
        let _ = writeln!(s, "  target's head:     {}", revs(&db.target_heads));
        if db.path.is_empty() {
            let _ = writeln!(s, "  downgrade path:    none needed");
        } else {
            let _ = writeln!(s, "  downgrade path:");
            for p in &db.path {
                let warn = p.irreversible.as_ref().map(|r| format!("  IRREVERSIBLE: {r}")).unwrap_or_default();
                let _ = writeln!(s, "    undo {} {} ({}){warn}", p.revision, p.description, p.path);
            }
        }
    }
    if !a.data_loss.is_empty() {
        let _ = writeln!(
            s,
            "data loss:  a full rollback's downgrade destroys {}",
            rollback_core::db::rows::describe(&a.data_loss)
        );
    }
    if let Some(env) = &a.env {
        let files: Vec<String> = env.files.iter().map(ToString::to_string).collect();
        match &env.target_record {
            None => {
                let _ = writeln!(s, "env:        {} (no record for the target)", files.join(", "));
            }
            Some(r) => {
                let _ = writeln!(
                    s,
                    "env:        {} (recorded with the target on {})",
                    files.join(", "),
                    r.recorded_at.log_format()
                );
                if env.blocked.is_empty() && env.diffs.is_empty() {
                    let _ = writeln!(s, "  same keys and values as recorded");
                }
                for d in &env.diffs {
                    let mut parts = Vec::new();
                    if d.only_now {
                        parts.push("not in the record".to_owned());
                    }
                    if d.only_recorded {
                        parts.push("missing now".to_owned());
                    }
                    for (what, keys) in [("added back", &d.added), ("removed", &d.removed), ("changed", &d.changed)] {
                        if !keys.is_empty() {
                            parts.push(format!("{what}: {}", keys.join(", ")));
                        }
                    }
                    if d.content_differs {
                        parts.push("bytes differ, no key does".to_owned());
                    }
                    let _ = writeln!(s, "  {}: {}", d.file, parts.join("; "));
                }
            }
        }
        for b in &env.blocked {
            let _ = writeln!(s, "  cannot be restored: {}", b.message(&a.target.commit.id));
        }
    }
    let _ = writeln!(s, "recommended level: {} ({})", a.recommended_level, a.recommendation);
    s
}

/// One line per snapshot: a database snapshot says which database and how big its dump is
/// (it captures no paths).
pub(crate) fn backups(list: &[rollback_core::backup::SnapshotSummary]) -> String {
    let mut s = String::new();
    for b in list {
        if let Some(why) = &b.damaged {
            let _ = writeln!(s, "{}  DAMAGED: {why}", b.id);
            continue;
        }
        let what = match &b.database {
            Some(d) => format!(
                "database {} ({} dump, {} byte(s), at {})",
                d.database,
                d.engine,
                d.size,
                if d.revisions.is_empty() { "base".to_owned() } else { d.revisions.join(", ") }
            ),
            None => format!("{:>6} path(s) {:>10} byte(s)", b.entries, b.bytes),
        };
        let _ = writeln!(
            s,
            "{}  {} {what}  run {}",
            b.id,
            b.head.as_ref().map_or("-", |h| h.short()),
            b.run_id.as_deref().unwrap_or("-")
        );
    }
    s
}
