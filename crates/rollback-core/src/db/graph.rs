//! Migration graphs: revisions, their parents (merges have several), branch labels, and the
//! downgrade path between two sets of heads.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DowngradeStep, Error, Result, Revision};

/// Whether a migration's downgrade can restore the data its upgrade changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reversibility {
    /// A real downgrade.
    Reversible,
    /// `downgrade()` is `pass` or raises `NotImplementedError`, or the `.down.sql` is missing
    /// or empty.
    Irreversible {
        /// Why.
        reason: String,
    },
}

/// One migration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Its revision.
    pub revision: Revision,
    /// Its parents: none for a root, several for a merge.
    pub down_revisions: Vec<Revision>,
    /// Alembic branch labels.
    pub branch_labels: Vec<String>,
    /// Message or file name.
    pub description: String,
    /// The file, relative to the work tree.
    pub path: String,
    /// Whether its downgrade restores data.
    pub downgrade: Reversibility,
    /// Destructive operations found in its upgrade (`drop_table users`, `drop_column ...`):
    /// a downgrade cannot bring back the data they removed.
    pub destructive_upgrade: Vec<String>,
}

/// The migrations of one commit (or of the work tree).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationGraph {
    /// Every migration, in no particular order.
    pub migrations: Vec<Migration>,
}

impl MigrationGraph {
    /// Revisions no other migration names as a parent, sorted.
    pub fn heads(&self) -> Vec<Revision> {
        let parents: BTreeSet<&Revision> = self.migrations.iter().flat_map(|m| &m.down_revisions).collect();
        let mut heads: Vec<Revision> =
            self.migrations.iter().map(|m| &m.revision).filter(|r| !parents.contains(r)).cloned().collect();
        heads.sort();
        heads.dedup();
        heads
    }

    /// The migration with this revision.
    pub fn get(&self, rev: &Revision) -> Option<&Migration> {
        self.migrations.iter().find(|m| &m.revision == rev)
    }

    /// Checks the graph: no revision defined twice, every parent defined, no cycle.
    pub fn check(&self) -> Result<()> {
        let mut seen: BTreeMap<&Revision, &str> = BTreeMap::new();
        for m in &self.migrations {
            if let Some(other) = seen.insert(&m.revision, &m.path) {
                return Err(Error::BadMigration {
                    path: m.path.clone(),
                    detail: format!("revision `{}` is also defined in `{other}`", m.revision),
                });
            }
        }
        for m in &self.migrations {
            if let Some(p) = m.down_revisions.iter().find(|p| !seen.contains_key(p)) {
                return Err(Error::BadMigration {
                    path: m.path.clone(),
                    detail: format!("its parent revision `{p}` is not defined by any migration file"),
                });
            }
        }
        // Kahn's algorithm: every migration must be reachable from the roots.
        let mut pending: BTreeMap<&Revision, usize> =
            self.migrations.iter().map(|m| (&m.revision, m.down_revisions.len())).collect();
        let children = self.children();
        let mut ready: Vec<&Revision> = pending.iter().filter(|(_, n)| **n == 0).map(|(r, _)| *r).collect();
        let mut done = 0;
        while let Some(r) = ready.pop() {
            done += 1;
            for c in children.get(r).into_iter().flatten() {
                if let Some(n) = pending.get_mut(c) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(c);
                    }
                }
            }
        }
        if done != self.migrations.len() {
            let stuck = pending.iter().find(|(_, n)| **n > 0).map(|(r, _)| (*r).clone());
            let path = stuck.as_ref().and_then(|r| self.get(r)).map(|m| m.path.clone()).unwrap_or_default();
            return Err(Error::BadMigration { path, detail: "the migrations' parents form a cycle".into() });
        }
        Ok(())
    }

    fn children(&self) -> BTreeMap<&Revision, Vec<&Revision>> {
        let mut map: BTreeMap<&Revision, Vec<&Revision>> = BTreeMap::new();
        for m in &self.migrations {
            for p in &m.down_revisions {
                map.entry(p).or_default().push(&m.revision);
            }
        }
        map
    }

    /// `revs` and all their ancestors.
    pub fn ancestors_or_self(&self, revs: &[Revision]) -> BTreeSet<Revision> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<&Revision> = revs.iter().collect();
        while let Some(r) = stack.pop() {
            if out.insert(r.clone())
                && let Some(m) = self.get(r)
            {
                stack.extend(&m.down_revisions);
            }
        }
        out
    }

    /// The migrations to undo, in the order they are undone, to go from `from` (the
    /// database's revisions) down to `to` (the target's heads): everything applied at `from`
    /// that is not an ancestor-or-self of `to`. Fails when `to` is not below `from`.
    pub fn downgrade_path(&self, from: &[Revision], to: &[Revision]) -> Result<Vec<DowngradeStep>> {
        self.downgrade_path_on(GRAPH_LABEL, from, to)
    }

    /// [`Self::downgrade_path`], with errors naming `database`.
    pub fn downgrade_path_on(&self, database: &str, from: &[Revision], to: &[Revision]) -> Result<Vec<DowngradeStep>> {
        let show = |revs: &[Revision]| {
            if revs.is_empty() {
                "base".to_owned()
            } else {
                revs.iter().map(Revision::as_str).collect::<Vec<_>>().join(", ")
            }
        };
        let no_path =
            |detail: String| Error::NoPath { database: database.to_owned(), from: show(from), to: show(to), detail };
        if let Some(r) = from.iter().find(|r| self.get(r).is_none()) {
            return Err(Error::UnknownRevision { database: database.to_owned(), revision: r.0.clone() });
        }
        if let Some(r) = to.iter().find(|r| self.get(r).is_none()) {
            return Err(no_path(format!(
                "the target revision `{r}` is not defined by the migration files used to downgrade"
            )));
        }
        let applied = self.ancestors_or_self(from);
        if let Some(r) = to.iter().find(|r| !applied.contains(*r)) {
            return Err(no_path(format!(
                "the target revision `{r}` is not applied below the current revisions (reaching it would need an upgrade)"
            )));
        }
        let keep = self.ancestors_or_self(to);
        let undo: BTreeSet<&Revision> = applied.iter().filter(|r| !keep.contains(*r)).collect();

        // Depth from the roots orders independent branches deterministically: deepest first.
        let depth = self.depths();
        let children = self.children();
        let mut heads: BTreeSet<Revision> = from.iter().cloned().collect();
        let mut remaining = undo.clone();
        let mut steps = Vec::with_capacity(undo.len());
        while !remaining.is_empty() {
            // Undoable now: no applied child still to undo.
            let next = remaining
                .iter()
                .filter(|r| children.get(**r).is_none_or(|cs| cs.iter().all(|c| !remaining.contains(c))))
                .max_by_key(|r| (depth.get(**r).copied().unwrap_or(0), (**r).clone()))
                .copied();
            let Some(rev) = next else {
                return Err(no_path("the migration graph has a cycle".into()));
            };
            remaining.remove(rev);
            let Some(m) = self.get(rev) else {
                return Err(Error::UnknownRevision { database: database.to_owned(), revision: rev.0.clone() });
            };
            heads.remove(rev);
            for p in &m.down_revisions {
                let covered =
                    heads.iter().any(|h| h != p && self.ancestors_or_self(std::slice::from_ref(h)).contains(p));
                if !covered {
                    heads.insert(p.clone());
                }
            }
            steps.push(DowngradeStep {
                revision: rev.clone(),
                down_to: heads.iter().cloned().collect(),
                description: m.description.clone(),
                path: m.path.clone(),
                irreversible: match &m.downgrade {
                    Reversibility::Reversible => None,
                    Reversibility::Irreversible { reason } => Some(reason.clone()),
                },
            });
        }
        Ok(steps)
    }

    /// Longest distance of each revision from a root.
    fn depths(&self) -> BTreeMap<Revision, usize> {
        let mut depth = BTreeMap::new();
        for m in &self.migrations {
            self.depth_of(&m.revision, &mut depth, 0);
        }
        depth
    }

    fn depth_of(&self, rev: &Revision, memo: &mut BTreeMap<Revision, usize>, guard: usize) -> usize {
        if let Some(d) = memo.get(rev) {
            return *d;
        }
        let d = match self.get(rev) {
            Some(m) if guard <= self.migrations.len() => {
                m.down_revisions.iter().map(|p| self.depth_of(p, memo, guard + 1) + 1).max().unwrap_or(0)
            }
            _ => 0,
        };
        memo.insert(rev.clone(), d);
        d
    }
}

/// How errors from a graph alone name the database.
const GRAPH_LABEL: &str = "(migration files)";

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rev: &str, parents: &[&str], irreversible: bool) -> Migration {
        Migration {
            revision: Revision(rev.into()),
            down_revisions: parents.iter().map(|p| Revision((*p).into())).collect(),
            branch_labels: vec![],
            description: format!("migration {rev}"),
            path: format!("versions/{rev}.py"),
            downgrade: if irreversible {
                Reversibility::Irreversible { reason: "downgrade() is empty".into() }
            } else {
                Reversibility::Reversible
            },
            destructive_upgrade: vec![],
        }
    }

    fn revs(v: &[&str]) -> Vec<Revision> {
        v.iter().map(|r| Revision((*r).into())).collect()
    }

    fn order(steps: &[DowngradeStep]) -> Vec<(&str, Vec<&str>)> {
        steps.iter().map(|s| (s.revision.as_str(), s.down_to.iter().map(Revision::as_str).collect())).collect()
    }

    #[test]
    fn linear() {
        let g = MigrationGraph { migrations: vec![m("c", &["b"], false), m("a", &[], false), m("b", &["a"], true)] };
        g.check().unwrap();
        assert_eq!(g.heads(), revs(&["c"]));
        let p = g.downgrade_path(&revs(&["c"]), &revs(&["a"])).unwrap();
        assert_eq!(order(&p), vec![("c", vec!["b"]), ("b", vec!["a"])]);
        assert_eq!(p[1].irreversible.as_deref(), Some("downgrade() is empty"));
        assert_eq!(p[0].irreversible, None);
        let p = g.downgrade_path(&revs(&["c"]), &[]).unwrap();
        assert_eq!(order(&p), vec![("c", vec!["b"]), ("b", vec!["a"]), ("a", vec![])]);
        assert!(g.downgrade_path(&revs(&["b"]), &revs(&["b"])).unwrap().is_empty());
    }

    #[test]
    fn branches_and_merges() {
        // a - b - c
        //   \             //    d --- m (merge of c and d)
        let g = MigrationGraph {
            migrations: vec![
                m("a", &[], false),
                m("b", &["a"], false),
                m("c", &["b"], false),
                m("d", &["a"], false),
                m("m", &["c", "d"], false),
            ],
        };
        g.check().unwrap();
        assert_eq!(g.heads(), revs(&["m"]));
        let p = g.downgrade_path(&revs(&["m"]), &revs(&["b"])).unwrap();
        assert_eq!(order(&p), vec![("m", vec!["c", "d"]), ("c", vec!["b", "d"]), ("d", vec!["b"])]);
        // Down to one branch of the branch point.
        let p = g.downgrade_path(&revs(&["m"]), &revs(&["d"])).unwrap();
        assert_eq!(order(&p), vec![("m", vec!["c", "d"]), ("c", vec!["b", "d"]), ("b", vec!["d"])]);
        // Two heads, one branch undone.
        let g2 = MigrationGraph { migrations: vec![m("a", &[], false), m("b", &["a"], false), m("d", &["a"], false)] };
        assert_eq!(g2.heads(), revs(&["b", "d"]));
        let p = g2.downgrade_path(&revs(&["b", "d"]), &revs(&["d"])).unwrap();
        assert_eq!(order(&p), vec![("b", vec!["d"])]);
        let p = g2.downgrade_path(&revs(&["b", "d"]), &revs(&["a"])).unwrap();
        assert_eq!(order(&p), vec![("d", vec!["b"]), ("b", vec!["a"])]);
    }

    #[test]
    fn errors() {
        let g = MigrationGraph { migrations: vec![m("a", &[], false), m("b", &["a"], false), m("d", &["a"], false)] };
        let e = g.downgrade_path(&revs(&["b"]), &revs(&["d"])).unwrap_err();
        assert!(matches!(e, Error::NoPath { .. }), "{e}");
        assert!(e.to_string().contains("from b to d"), "{e}");
        let e = g.downgrade_path(&revs(&["zzz"]), &revs(&["a"])).unwrap_err();
        assert!(matches!(e, Error::UnknownRevision { ref revision, .. } if revision == "zzz"), "{e}");
        let e = g.downgrade_path(&revs(&["b"]), &revs(&["nope"])).unwrap_err();
        assert!(matches!(e, Error::NoPath { .. }), "{e}");
        let e = g.downgrade_path(&[], &revs(&["a"])).unwrap_err();
        assert!(e.to_string().contains("from base to a"), "{e}");

        let dup = MigrationGraph { migrations: vec![m("a", &[], false), m("a", &[], false)] };
        assert!(dup.check().unwrap_err().to_string().contains("also defined"));
        let orphan = MigrationGraph { migrations: vec![m("b", &["x"], false)] };
        assert!(orphan.check().unwrap_err().to_string().contains("`x`"));
        let cycle = MigrationGraph { migrations: vec![m("a", &["b"], false), m("b", &["a"], false)] };
        assert!(cycle.check().unwrap_err().to_string().contains("cycle"));
    }
}
