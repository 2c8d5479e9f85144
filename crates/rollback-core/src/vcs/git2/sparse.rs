//! Sparse checkout for the libgit2 back-end, which has none (libgit2 1.9): which of a
//! reset's files a sparse checkout leaves out of the work tree ([`Sparse::leaves_out`]), as
//! `git` decides it from `core.sparseCheckout` and the patterns in
//! `$GIT_DIR/info/sparse-checkout`, cone mode (`core.sparseCheckoutCone`) or not.
//!
//! Git applies the patterns again at every checkout: a file outside them gets the
//! skip-worktree flag and is not written. libgit2 writes every file of the tree, so a rollback
//! and its undo would fill a sparse work tree with every file of the repository.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use git2::Repository;
use globset::{GlobBuilder, GlobMatcher};

/// The target's files (`entries`: path, blob, mode) a sparse checkout of `repo` leaves out and
/// that are not in the work tree `workdir` now (a folder in their place is cleared before the
/// checkout): not written, and flagged skip-worktree, as git does. One that is there is
/// written (or kept) as without a sparse checkout. Empty without a sparse checkout.
pub(super) fn left_out(repo: &Repository, workdir: &Path, entries: &[(Vec<u8>, git2::Oid, u32)]) -> HashSet<Vec<u8>> {
    let Some(sparse) = Sparse::read(repo) else { return HashSet::new() };
    entries
        .iter()
        .filter(|(path, _, mode)| *mode != super::MODE_GITLINK && sparse.leaves_out(path))
        .filter(|(path, _, _)| {
            !std::fs::symlink_metadata(workdir.join(OsStr::from_bytes(path))).is_ok_and(|m| !m.is_dir())
        })
        .map(|(path, _, _)| path.clone())
        .collect()
}

/// What to name to the checkout when files are `left_out`: every other path of `all` (the
/// target's, HEAD's and the index's), by exact name, but those `way_leaves` (what the way
/// clearing handles itself). A name also stands for what is below it, so the paths that are
/// folders of files left out are not named but returned apart (the second list): a file of
/// HEAD there is removed before the checkout.
pub(super) fn named_paths<'a>(
    left_out: &HashSet<Vec<u8>>,
    all: impl Iterator<Item = &'a [u8]>,
    way_leaves: impl Fn(&[u8]) -> bool,
) -> (std::collections::BTreeSet<&'a [u8]>, Vec<&'a [u8]>) {
    let folders: HashSet<&[u8]> =
        left_out.iter().flat_map(|p| p.iter().enumerate().filter(|(_, b)| **b == b'/').map(|(i, _)| &p[..i])).collect();
    let mut replaced = Vec::new();
    let paths = all
        .filter(|p| !left_out.contains(*p) && !way_leaves(p))
        .filter(|p| {
            let folder = folders.contains(p);
            if folder {
                replaced.push(*p);
            }
            !folder
        })
        .collect();
    (paths, replaced)
}

/// The patterns of a sparse checkout.
pub(super) enum Sparse {
    /// Cone mode: the folders whose every file is in (`recursive`), and those whose own files
    /// only are in (`parents`); the files at the top are always in.
    Cone { recursive: HashSet<Vec<u8>>, parents: HashSet<Vec<u8>> },
    /// Patterns as in `.gitignore`: the last one to match a path, or else its nearest folder,
    /// decides.
    Patterns(Vec<Pattern>),
}

/// One non-cone pattern line.
pub(super) struct Pattern {
    glob: GlobMatcher,
    negative: bool,
    dir_only: bool,
    /// Matched against the whole path (it had a `/` before its end), else against the name.
    anchored: bool,
}

/// `key` as a boolean: from the work tree's own `config.worktree` first (`git sparse-checkout`
/// writes there when `extensions.worktreeConfig` is on), then the repository's configuration.
fn config_bool(repo: &Repository, key: &str) -> bool {
    let own = repo.path().join("config.worktree");
    if own.is_file()
        && let Ok(Some(v)) = git2::Config::open(&own).map(|c| c.get_bool(key).ok())
    {
        return v;
    }
    repo.config().and_then(|c| c.get_bool(key)).unwrap_or(false)
}

impl Sparse {
    /// The sparse checkout of `repo`'s work tree; `None` when it has none (or no patterns:
    /// git then leaves nothing out).
    pub(super) fn read(repo: &Repository) -> Option<Self> {
        if !config_bool(repo, "core.sparseCheckout") {
            return None;
        }
        let text = std::fs::read(repo.path().join("info").join("sparse-checkout")).ok()?;
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
            .collect();
        if config_bool(repo, "core.sparseCheckoutCone")
            && let Some(cone) = cone(&lines)
        {
            return Some(cone);
        }
        // Git falls back to these too when cone patterns do not parse as such.
        Some(Self::Patterns(lines.iter().filter_map(|l| Pattern::parse(l)).collect()))
    }

    /// Whether a sparse checkout leaves the file `path` (`/`-separated) out.
    pub(super) fn leaves_out(&self, path: &[u8]) -> bool {
        let dirs = || path.iter().enumerate().filter(|(_, b)| **b == b'/').map(|(i, _)| &path[..i]);
        match self {
            Self::Cone { recursive, parents } => {
                let parent = dirs().next_back();
                let inside = parent.is_none_or(|p| parents.contains(p)) || dirs().any(|d| recursive.contains(d));
                !inside
            }
            Self::Patterns(patterns) => {
                // The file itself, then its folders from the nearest up: the first that a
                // pattern decides.
                let levels = std::iter::once((path, false)).chain(dirs().rev().map(|d| (d, true)));
                for (level, is_dir) in levels {
                    if let Some(p) = patterns.iter().rev().find(|p| p.matches(level, is_dir)) {
                        return p.negative;
                    }
                }
                true
            }
        }
    }
}

/// Cone-mode patterns (`/*`, `!/*/`, `/a/`, `!/a/*/`, `/a/b/`), or `None` when a line is of
/// another shape.
fn cone(lines: &[&[u8]]) -> Option<Sparse> {
    let (mut recursive, mut parents) = (HashSet::new(), HashSet::new());
    for line in lines {
        if *line == b"/*" {
            continue;
        }
        if let Some(dir) = line.strip_prefix(b"!/").and_then(|l| l.strip_suffix(b"*/")) {
            let dir = dir.strip_suffix(b"/").unwrap_or(dir);
            if !dir.is_empty() && !recursive.remove(dir) {
                return None;
            }
            parents.insert(dir.to_vec());
        } else if let Some(dir) = line.strip_prefix(b"/").and_then(|l| l.strip_suffix(b"/"))
            && !dir.is_empty()
            && !dir.iter().any(|b| b"*?[\\!".contains(b))
        {
            recursive.insert(dir.to_vec());
        } else {
            return None;
        }
    }
    Some(Sparse::Cone { recursive, parents })
}

impl Pattern {
    fn parse(line: &[u8]) -> Option<Self> {
        let line = std::str::from_utf8(line).ok()?;
        // Trailing spaces are dropped unless escaped, as in `.gitignore`.
        let line = if line.ends_with("\\ ") { line } else { line.trim_end_matches(' ') };
        let (negative, line) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line.strip_prefix("\\!").map_or(line, |_| &line[1..])),
        };
        let (dir_only, line) = line.strip_suffix('/').map_or((false, line), |l| (true, l));
        let anchored = line.contains('/');
        let line = line.strip_prefix('/').unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let glob = GlobBuilder::new(line).literal_separator(true).backslash_escape(true).build().ok()?;
        Some(Self { glob: glob.compile_matcher(), negative, dir_only, anchored })
    }

    fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        let subject = if self.anchored { path } else { path.rsplit(|b| *b == b'/').next().unwrap_or(path) };
        self.glob.is_match(Path::new(OsStr::from_bytes(subject)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cone_of(text: &str) -> Sparse {
        let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
        cone(&lines).expect("cone patterns")
    }

    #[test]
    fn cone_mode_keeps_top_files_the_cone_and_its_parents_own_files() {
        let s = cone_of("/*\n!/*/\n/a/\n!/a/*/\n/a/b/\n");
        for (path, out) in [
            ("top.txt", false),
            ("a/own.txt", false),
            ("a/b/deep/x", false),
            ("a/c/x", true),
            ("lib/x", true),
            ("lib/a/b/x", true),
        ] {
            assert_eq!(s.leaves_out(path.as_bytes()), out, "{path}");
        }
    }

    #[test]
    fn a_line_that_is_no_cone_pattern_falls_back() {
        assert!(cone(&[b"/*".as_slice(), b"*.py"]).is_none());
        assert!(cone(&[b"!/x/*/".as_slice()]).is_none(), "a parent never included");
    }

    #[test]
    fn patterns_decide_by_the_last_match_then_by_the_nearest_folder() {
        let patterns: Vec<Pattern> = ["/app/", "/README", "*.md", "!/app/tmp/", "docs"]
            .iter()
            .filter_map(|l| Pattern::parse(l.as_bytes()))
            .collect();
        let s = Sparse::Patterns(patterns);
        for (path, out) in [
            ("app/main.py", false),
            ("app/tmp/x", true),
            ("README", false),
            ("lib/README", true),
            ("lib/notes.md", false),
            ("lib/docs/x", false),
            ("lib/util.py", true),
            (".gitignore", true),
        ] {
            assert_eq!(s.leaves_out(path.as_bytes()), out, "{path}");
        }
    }
}
