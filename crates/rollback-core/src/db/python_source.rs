//! Reading Alembic's files without running Python: the module-level `revision`,
//! `down_revision`, `branch_labels` and docstring of a revision file, what its `upgrade()` and
//! `downgrade()` do at a glance, and the versions folders `alembic.ini` names.
//!
//! Values are read as Python literals (strings, `None`, tuples/lists/sets of strings), with or
//! without a type annotation (`revision: str = "ae10"`,
//! `down_revision: Union[str, Sequence[str], None] = ("a", "b")`). A file whose values are not
//! literals (computed ids) is reported as invalid rather than guessed at.

use std::path::{Path, PathBuf};

use super::graph::{Migration, Reversibility};
use super::migration_files::normalize;
use super::{Error, Result, Revision};

/// Parses one revision file; `path` is relative to the work tree.
pub(crate) fn parse_revision_file(path: &str, bytes: &[u8]) -> Result<Migration> {
    let bad = |detail: String| Error::BadMigration { path: path.to_owned(), detail };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let stmts = top_level_statements(text);

    let mut revision = None;
    let mut down = None;
    let mut labels = Vec::new();
    for (name, value) in stmts.iter().filter_map(|s| assignment(s)) {
        match name {
            "revision" => {
                let vals = literal_strings(value).map_err(|e| bad(format!("`revision`: {e}")))?;
                match vals.as_slice() {
                    [one] if !value.trim_start().starts_with(['(', '[', '{']) => revision = Some(one.clone()),
                    _ => return Err(bad("`revision` must be one string".into())),
                }
            }
            "down_revision" => down = Some(literal_strings(value).map_err(|e| bad(format!("`down_revision`: {e}")))?),
            "branch_labels" => labels = literal_strings(value).map_err(|e| bad(format!("`branch_labels`: {e}")))?,
            _ => {}
        }
    }
    let Some(revision) = revision else {
        return Err(bad("no module-level `revision = \"...\"`".into()));
    };
    if revision.is_empty() {
        return Err(bad("`revision` is empty".into()));
    }
    let Some(down) = down else {
        return Err(bad("no module-level `down_revision` (use `down_revision = None` for a first migration)".into()));
    };
    let description = docstring_first_line(text)
        .unwrap_or_else(|| Path::new(path).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let downgrade = match function_body(text, "downgrade") {
        None => Reversibility::Irreversible { reason: "the migration has no `downgrade()` function".into() },
        Some(body) => body_reversibility(&body),
    };
    let destructive_upgrade = function_body(text, "upgrade").map(|b| destructive_ops(&b)).unwrap_or_default();
    Ok(Migration {
        revision: Revision(revision),
        down_revisions: down.into_iter().map(Revision).collect(),
        branch_labels: labels,
        description,
        path: path.to_owned(),
        downgrade,
        destructive_upgrade,
    })
}

/// Whether a file in a versions folder is a revision file (as Alembic picks them).
#[allow(clippy::case_sensitive_file_extension_comparisons)] // Alembic matches `.py` exactly
pub(crate) fn is_revision_file(name: &str) -> bool {
    name.ends_with(".py") && name != "__init__.py" && !name.starts_with(".#")
}

/// The versions folders `alembic.ini` implies, relative to the work tree: `version_locations`
/// when set, else `script_location` + `/versions`. `%(here)s` is the folder of the ini file.
pub(crate) fn versions_dirs(ini_path: &Path, bytes: &[u8]) -> Result<Vec<PathBuf>> {
    let shown = ini_path.display().to_string();
    let bad = |detail: String| Error::BadMigration { path: shown.clone(), detail };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
    let section = ini_section(text, "alembic");
    let here = ini_path.parent().unwrap_or(Path::new(""));
    let resolve = |v: &str| -> Result<PathBuf> {
        let v = v.trim();
        if v.contains(':') && !v.contains('/') && !v.starts_with("%(") {
            return Err(bad(format!(
                "`{v}` is a package resource; set `database.versions_dir` to the versions folder in the work tree"
            )));
        }
        let here_s = here.display().to_string();
        let replaced = v.replace("%(here)s", if here_s.is_empty() { "." } else { &here_s });
        let p = normalize(Path::new(&replaced));
        if p.is_absolute() {
            return Err(bad(format!(
                "`{v}` is an absolute path; set `database.versions_dir` relative to the work tree"
            )));
        }
        Ok(p)
    };
    if let Some(locs) = section.iter().find(|(k, _)| k == "version_locations").map(|(_, v)| v.clone()) {
        let sep = section
            .iter()
            .find(|(k, _)| k == "path_separator" || k == "version_path_separator")
            .map(|(_, v)| v.trim().to_owned());
        let parts: Vec<&str> = match sep.as_deref() {
            Some("space") => locs.split_whitespace().collect(),
            Some("newline") => locs.lines().collect(),
            Some("os" | ":") => locs.split(':').collect(),
            Some(";") => locs.split(';').collect(),
            Some(",") => locs.split(',').collect(),
            _ => locs.split(|c: char| c.is_whitespace() || c == ',').collect(),
        };
        return parts.into_iter().filter(|p| !p.trim().is_empty()).map(resolve).collect();
    }
    let Some((_, loc)) = section.iter().find(|(k, _)| k == "script_location") else {
        return Err(bad("no `script_location` in its `[alembic]` section".into()));
    };
    Ok(vec![resolve(loc)?.join("versions")])
}

/// `key = value` pairs of one ini section (continuation lines joined with newlines).
fn ini_section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            inside = trimmed[1..trimmed.len() - 1].trim() == name;
            continue;
        }
        if !inside || trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(trimmed);
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once('=').or_else(|| trimmed.split_once(':')) {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

/// Module-level statements: lines at column 0 outside strings, with bracketed continuations
/// and backslash continuations joined.
fn top_level_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth: i32 = 0;
    let mut in_triple: Option<&str> = None;
    for line in text.lines() {
        if let Some(q) = in_triple {
            if line.matches(q).count() % 2 == 1 {
                in_triple = None;
            }
            continue;
        }
        let continuing = depth > 0 || current.ends_with('\\');
        if !continuing {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            if line.starts_with([' ', '\t']) || line.trim().is_empty() {
                continue;
            }
            for q in ["\"\"\"", "'''"] {
                if line.matches(q).count() % 2 == 1 {
                    in_triple = Some(q);
                }
            }
            if in_triple.is_some() {
                continue;
            }
        }
        let code = strip_comment(line);
        depth += bracket_delta(code);
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(code.trim_end_matches('\\').trim());
        if depth <= 0 && !code.trim_end().ends_with('\\') {
            depth = 0;
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `line` without a trailing `# comment` (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' => return &line[..i],
                _ => {}
            },
        }
    }
    line
}

fn bracket_delta(code: &str) -> i32 {
    let mut quote: Option<char> = None;
    let mut d = 0;
    for c in code.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => d += 1,
                ')' | ']' | '}' => d -= 1,
                _ => {}
            },
        }
    }
    d
}

/// `name = value` or `name: annotation = value` → `(name, value)`.
fn assignment(stmt: &str) -> Option<(&str, &str)> {
    let name_end = stmt.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = &stmt[..name_end];
    if name.is_empty() {
        return None;
    }
    let rest = stmt[name_end..].trim_start();
    let rest = if let Some(ann) = rest.strip_prefix(':') {
        // Skip the annotation up to the `=` at bracket depth 0.
        let mut depth = 0;
        let mut eq = None;
        for (i, c) in ann.char_indices() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth -= 1,
                '=' if depth == 0 => {
                    eq = Some(i);
                    break;
                }
                _ => {}
            }
        }
        &ann[eq?..]
    } else {
        rest
    };
    let value = rest.strip_prefix('=')?;
    if value.starts_with('=') {
        return None;
    }
    Some((name, value.trim()))
}

/// A Python literal: `None`, a string, or a tuple/list/set of strings.
fn literal_strings(value: &str) -> std::result::Result<Vec<String>, String> {
    let v = value.trim();
    if v == "None" {
        return Ok(Vec::new());
    }
    let (inner, bracketed) = match v.chars().next() {
        Some(open @ ('(' | '[' | '{')) => {
            let close = match open {
                '(' => ')',
                '[' => ']',
                _ => '}',
            };
            let Some(inner) = v[1..].strip_suffix(close) else {
                return Err("unbalanced brackets".into());
            };
            (inner, true)
        }
        _ => (v, false),
    };
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (s, after) = string_literal(rest).ok_or_else(|| {
            "expected a string literal, a tuple of string literals or None (computed values are not supported)"
                .to_owned()
        })?;
        out.push(s);
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            if !bracketed {
                return Err("several values without brackets".into());
            }
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err("unexpected text after a string literal".into());
        }
    }
    Ok(out)
}

/// A Python string literal at the start of `s` (optional `r`/`u`/`b` prefix, single, double
/// or triple quotes) → `(value, rest)`.
fn string_literal(s: &str) -> Option<(String, &str)> {
    let body = s.trim_start_matches(['r', 'R', 'u', 'U', 'b', 'B']);
    if s.len() - body.len() > 2 {
        return None;
    }
    let raw = s[..s.len() - body.len()].to_ascii_lowercase().contains('r');
    let quote = if body.starts_with("\"\"\"") {
        "\"\"\""
    } else if body.starts_with("'''") {
        "'''"
    } else if body.starts_with('"') {
        "\""
    } else if body.starts_with('\'') {
        "'"
    } else {
        return None;
    };
    let content = &body[quote.len()..];
    let mut out = String::new();
    let mut chars = content.char_indices();
    while let Some((i, c)) = chars.next() {
        if content[i..].starts_with(quote) {
            return Some((out, &content[i + quote.len()..]));
        }
        if c == '\\' && !raw {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, e)) => out.push(e),
                None => return None,
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// The first line of the module docstring.
fn docstring_first_line(text: &str) -> Option<String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let (s, _) = string_literal(first).or_else(|| {
        // A triple-quoted docstring spanning lines: its first line is what follows the quotes.
        let body = first.trim_start_matches(['r', 'R', 'u', 'U']);
        let inner = body.strip_prefix("\"\"\"").or_else(|| body.strip_prefix("'''"))?;
        Some((inner.to_owned(), ""))
    })?;
    let line = s.lines().map(str::trim).find(|l| !l.is_empty())?.to_owned();
    Some(line)
}

/// The body lines of the module-level `def name(...)`, or `None` when there is none.
fn function_body(text: &str, name: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| {
        l.strip_prefix("def ")
            .is_some_and(|r| r.trim_start().strip_prefix(name).is_some_and(|r| r.trim_start().starts_with('(')))
    })?;
    let mut body = Vec::new();
    // The signature may span lines; it ends at the line whose code ends with `:`.
    let mut i = start;
    let mut depth = 0;
    loop {
        let code = strip_comment(lines[i]);
        depth += bracket_delta(code);
        if depth <= 0 {
            // `def f() -> None: pass` keeps its body on the same line.
            if let Some(idx) = code.rfind(':') {
                let after = code[idx + 1..].trim();
                if !after.is_empty() && !after.starts_with("->") {
                    body.push(after.to_owned());
                }
            }
            break;
        }
        i += 1;
        if i >= lines.len() {
            return Some(body);
        }
    }
    for line in &lines[i + 1..] {
        if !line.trim().is_empty() && !line.starts_with([' ', '\t']) && !line.starts_with('#') {
            break;
        }
        body.push((*line).to_owned());
    }
    Some(body)
}

/// A `downgrade()` body that only passes, holds a docstring, or raises `NotImplementedError`
/// cannot undo anything.
fn body_reversibility(body: &[String]) -> Reversibility {
    let code: Vec<String> = body.iter().map(|l| strip_comment(l).trim().to_owned()).filter(|l| !l.is_empty()).collect();
    if code.iter().any(|l| l.starts_with("raise NotImplementedError")) {
        return Reversibility::Irreversible { reason: "`downgrade()` raises NotImplementedError".into() };
    }
    // Drop a leading docstring.
    let mut rest: &[String] = &code;
    if let Some(first) = rest.first() {
        let body = first.trim_start_matches(['r', 'R', 'u', 'U']);
        if let Some(q) = ["\"\"\"", "'''"].into_iter().find(|q| body.starts_with(q)) {
            let closes_here = body.len() >= 6 && body[3..].contains(q);
            let end = if closes_here {
                0
            } else {
                rest.iter().skip(1).position(|l| l.contains(q)).map_or(rest.len() - 1, |p| p + 1)
            };
            rest = &rest[end + 1..];
        } else if string_literal(first).is_some_and(|(_, after)| after.trim().is_empty()) {
            rest = &rest[1..];
        }
    }
    if rest.iter().all(|l| l == "pass" || l == "...") {
        return Reversibility::Irreversible { reason: "`downgrade()` does nothing (only `pass`)".into() };
    }
    Reversibility::Reversible
}

/// `op.drop_table("users")`, `op.drop_column("users", "legacy")`, `batch_op.drop_column("x")`
/// and `DROP TABLE`/`DROP COLUMN` in `op.execute(...)` text, described.
fn destructive_ops(body: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for line in body {
        let code = strip_comment(line);
        for op in ["drop_table", "drop_column"] {
            let needle = format!(".{op}(");
            let mut from = 0;
            while let Some(pos) = code[from..].find(&needle) {
                let args_start = from + pos + needle.len();
                let args = literal_args(&code[args_start..]);
                out.push(if args.is_empty() { op.to_owned() } else { format!("{op} {}", args.join(".")) });
                from = args_start;
            }
        }
        if code.contains("execute(") {
            let upper = code.to_ascii_uppercase();
            for stmt in ["DROP TABLE", "DROP COLUMN"] {
                if upper.contains(stmt) {
                    out.push(format!("execute {}", stmt.to_ascii_lowercase()));
                }
            }
        }
    }
    out
}

/// The leading positional string arguments of a call (at most two).
fn literal_args(mut s: &str) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < 2 {
        s = s.trim_start();
        match string_literal(s) {
            Some((v, rest)) => {
                out.push(v);
                s = rest.trim_start();
                match s.strip_prefix(',') {
                    Some(r) => s = r,
                    None => break,
                }
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#""""add payments

Revision ID: b84e1d2c3f03
Revises: 7c2d9e4f5a02
Create Date: 2025-12-10 17:39:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "b84e1d2c3f03"
down_revision: Union[str, Sequence[str], None] = "7c2d9e4f5a02"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table("payments", sa.Column("id", sa.Integer(), primary_key=True))
    op.drop_column("users", "legacy")  # destructive
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column('note')
    op.execute("DROP TABLE old_stuff")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("payments")
"#;

    #[test]
    fn alembic_template() {
        let m = parse_revision_file("alembic/versions/b84e_add_payments.py", TEMPLATE.as_bytes()).unwrap();
        assert_eq!(m.revision.as_str(), "b84e1d2c3f03");
        assert_eq!(m.down_revisions, vec![Revision("7c2d9e4f5a02".into())]);
        assert!(m.branch_labels.is_empty());
        assert_eq!(m.description, "add payments");
        assert_eq!(m.downgrade, Reversibility::Reversible);
        assert_eq!(m.destructive_upgrade, vec!["drop_column users.legacy", "drop_column note", "execute drop table"]);
    }

    #[test]
    fn old_style_merge_and_labels() {
        let src = "\"\"\"merge heads\"\"\"\nrevision = 'm1'\ndown_revision = ('a1',\n    'b2',  # second parent\n)\nbranch_labels = ('shop',)\n\ndef upgrade():\n    pass\n\ndef downgrade():\n    pass\n";
        let m = parse_revision_file("v/m1.py", src.as_bytes()).unwrap();
        assert_eq!(m.down_revisions, vec![Revision("a1".into()), Revision("b2".into())]);
        assert_eq!(m.branch_labels, vec!["shop"]);
        assert_eq!(m.description, "merge heads");
        assert!(matches!(m.downgrade, Reversibility::Irreversible { ref reason } if reason.contains("pass")));
        assert!(m.destructive_upgrade.is_empty());
    }

    #[test]
    fn irreversible_forms() {
        let head = "revision = 'x'\ndown_revision = None\n";
        let cases = [
            ("def downgrade():\n    raise NotImplementedError('no way back')\n", true),
            ("def downgrade() -> None:\n    \"\"\"Nothing.\n\n    Really.\n    \"\"\"\n    ...\n", true),
            ("def downgrade(): pass\n", true),
            ("def downgrade():\n    # nothing to do\n    pass\n\ndef helper():\n    op.drop_table('x')\n", true),
            ("def upgrade():\n    pass\n", true),
            ("def downgrade():\n    \"\"\"Drop it.\"\"\"\n    op.drop_table('t')\n", false),
        ];
        for (body, irreversible) in cases {
            let m = parse_revision_file("v/x.py", format!("{head}\n{body}").as_bytes()).unwrap();
            assert_eq!(matches!(m.downgrade, Reversibility::Irreversible { .. }), irreversible, "{body}");
        }
    }

    #[test]
    fn invalid_files() {
        for (src, needle) in [
            ("down_revision = None\n", "no module-level `revision"),
            ("revision = 'a'\n", "no module-level `down_revision`"),
            ("revision = make_id()\ndown_revision = None\n", "`revision`: expected a string literal"),
            ("revision = 'a'\ndown_revision = ('b'\n", "unbalanced"),
            ("revision = ('a', 'b')\ndown_revision = None\n", "one string"),
        ] {
            let e = parse_revision_file("v/bad.py", src.as_bytes()).unwrap_err();
            assert!(matches!(e, Error::BadMigration { .. }), "{e}");
            assert!(e.to_string().contains(needle), "{src}: {e}");
            assert!(e.to_string().contains("v/bad.py"), "{e}");
        }
        // A docstring mentioning `revision = ...` does not count.
        let src = "\"\"\"Notes\nrevision = 'fake'\n\"\"\"\nrevision = 'real'\ndown_revision = None\n";
        assert_eq!(parse_revision_file("v/a.py", src.as_bytes()).unwrap().revision.as_str(), "real");
    }

    #[test]
    fn ini_locations() {
        let ini = "[alembic]\nscript_location = %(here)s/alembic\nsqlalchemy.url = driver://user:pass@localhost/dbname\n\n[loggers]\nkeys = root\n";
        assert_eq!(
            versions_dirs(Path::new("alembic.ini"), ini.as_bytes()).unwrap(),
            vec![PathBuf::from("alembic/versions")]
        );
        assert_eq!(
            versions_dirs(Path::new("backend/alembic.ini"), ini.as_bytes()).unwrap(),
            vec![PathBuf::from("backend/alembic/versions")]
        );
        let ini = "[alembic]\nscript_location = migrations\n";
        assert_eq!(
            versions_dirs(Path::new("alembic.ini"), ini.as_bytes()).unwrap(),
            vec![PathBuf::from("migrations/versions")]
        );
        let ini = "[alembic]\nscript_location = db\nversion_locations = %(here)s/a/versions %(here)s/b/versions\n";
        assert_eq!(
            versions_dirs(Path::new("alembic.ini"), ini.as_bytes()).unwrap(),
            vec![PathBuf::from("a/versions"), PathBuf::from("b/versions")]
        );
        let ini = "[alembic]\nscript_location = myapp:migrations\n";
        assert!(
            versions_dirs(Path::new("alembic.ini"), ini.as_bytes()).unwrap_err().to_string().contains("versions_dir")
        );
        assert!(
            versions_dirs(Path::new("alembic.ini"), b"[other]\nx = 1\n")
                .unwrap_err()
                .to_string()
                .contains("script_location")
        );
    }
}
