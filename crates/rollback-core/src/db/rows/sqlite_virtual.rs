//! SQLite virtual tables in a put-back.
//!
//! A full-text table (`CREATE VIRTUAL TABLE docs USING fts5(title, body)`) keeps its text and
//! its index in shadow tables (`docs_content`, `docs_data`, …) that only the module writes. Its
//! rows are put back by inserting them through the virtual table, rowid included (the module
//! then indexes them, as it did when the app wrote them); the shadow tables are never written
//! or counted. That is sound only for a full-text table that keeps its own text: one whose
//! text lives in another table (`content=posts`) or nowhere (`content=''`) reads back values
//! that are not its own, and other modules (R*Tree, extensions) store rows their own way. Those
//! are refused by name before anything changes.

use rusqlite::{Connection, OptionalExtension};

/// Of `tables`, the first virtual table whose rows cannot be put back through it, with why;
/// `None` when every one can (or none is virtual).
pub(super) fn unsound(conn: &Connection, tables: &[String]) -> rusqlite::Result<Option<String>> {
    for t in tables {
        let sql: Option<String> = conn
            .query_row(
                "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?1 AND sql LIKE 'CREATE VIRTUAL TABLE%'",
                [t],
                |r| r.get(0),
            )
            .optional()?;
        let Some((module, args)) = sql.as_deref().map(module_and_args) else { continue };
        let why = if !["fts3", "fts4", "fts5"].contains(&module.to_ascii_lowercase().as_str()) {
            "only full-text tables (fts3, fts4, fts5) that keep their own text can be"
        } else if args.iter().any(|a| option_name(a).is_some_and(|o| o.eq_ignore_ascii_case("content"))) {
            "its text is kept in another table, or not at all (`content=`), so its rows read back are not its own"
        } else {
            continue;
        };
        return Ok(Some(format!("virtual table {t} ({module}) cannot be put back row by row: {why}")));
    }
    Ok(None)
}

/// `CREATE VIRTUAL TABLE x USING fts5(title, body, tokenize = 'porter')` → `("fts5",
/// ["title", "body", "tokenize = 'porter'"])`: the module after the first `USING` outside
/// quotes, and its arguments split at commas outside quotes and parentheses.
fn module_and_args(sql: &str) -> (String, Vec<String>) {
    let mut words = Vec::new();
    let mut rest = sql;
    // Words and quoted names, up to the `(` of the arguments.
    while let Some(c) = rest.chars().next() {
        if c == '(' {
            break;
        }
        let len = match c {
            '"' | '`' | '\'' => quoted_len(rest, c),
            '[' => rest.find(']').map_or(rest.len(), |i| i + 1),
            c if c.is_alphanumeric() || c == '_' => {
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(rest.len())
            }
            c => c.len_utf8(),
        };
        if !c.is_whitespace() {
            words.push(&rest[..len]);
        }
        rest = &rest[len..];
    }
    let module = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("using"))
        .and_then(|i| words.get(i + 1))
        .map_or_else(String::new, |m| (*m).to_owned());
    let mut args = Vec::new();
    let body = rest.strip_prefix('(').unwrap_or(rest);
    let (mut depth, mut start, mut i) = (0usize, 0, 0);
    while let Some(c) = body[i..].chars().next() {
        match c {
            '"' | '`' | '\'' => i += quoted_len(&body[i..], c) - c.len_utf8(),
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(body[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    args.push(body[start..i.min(body.len())].trim().to_owned());
    args.retain(|a| !a.is_empty());
    (module, args)
}

/// The length of the quoted text `s` begins with (`q` doubled inside is one `q`).
fn quoted_len(s: &str, q: char) -> usize {
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == q {
            if chars.peek().is_some_and(|(_, n)| *n == q) {
                chars.next();
            } else {
                return i + c.len_utf8();
            }
        }
    }
    s.len()
}

/// `content = 'x'` → `content`: the name of an option argument (`name = value`).
fn option_name(arg: &str) -> Option<&str> {
    let (name, _) = arg.split_once('=')?;
    let name = name.trim();
    name.chars().all(|c| c.is_alphanumeric() || c == '_').then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_module_and_its_arguments() {
        let (m, a) = module_and_args(
            "CREATE VIRTUAL TABLE \"my (using\" USING fts5(title, \"a,b\", tokenize = 'unicode61 separators '',.''')",
        );
        assert_eq!(m, "fts5");
        assert_eq!(a, ["title", "\"a,b\"", "tokenize = 'unicode61 separators '',.'''"]);
        let (m, a) = module_and_args("create virtual table geo using rtree(id, minx, maxx)");
        assert_eq!((m.as_str(), a.len()), ("rtree", 3));
        assert_eq!(option_name(" content = '' "), Some("content"));
        assert_eq!(option_name("content"), None, "a column named content");
    }

    #[test]
    fn only_full_text_tables_with_their_own_text_go_back() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT);
             CREATE VIRTUAL TABLE docs USING fts5(title, content);
             CREATE VIRTUAL TABLE ext USING fts5(body, content = posts, content_rowid = id);
             CREATE VIRTUAL TABLE geo USING rtree(id, minx, maxx);",
        )
        .unwrap();
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(unsound(&c, &names(&["posts", "docs"])).unwrap(), None);
        let ext = unsound(&c, &names(&["docs", "ext"])).unwrap().unwrap();
        assert!(ext.starts_with("virtual table ext (fts5) cannot be put back row by row: its text is kept"), "{ext}");
        let geo = unsound(&c, &names(&["geo"])).unwrap().unwrap();
        assert!(geo.starts_with("virtual table geo (rtree) cannot be put back row by row: only full-text"), "{geo}");
    }
}
