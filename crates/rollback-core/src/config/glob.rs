//! Cache globs that name nothing, refused by the configuration.

/// Whether a cache glob names nothing: every `/`-separated part of it is made only of
/// wildcards (`*`, `**`, `?`, a `[...]` class, `{`, `}`, `,`) and dots, so that it matches any
/// name at some depth (`**`, `*`, `**/*`, `/**`, `*/*`, `*.*`, `**/.*`, `?*`). Such a glob
/// would clear the work tree's untracked and ignored files (`.env`, a SQLite database) as
/// caches, which are not snapshotted. A glob with one literal character other than a dot
/// (`**/*.pyc`, `build/*`, `**/.cache`) names what it clears.
pub fn matches_nearly_everything(glob: &str) -> bool {
    let mut literal = false;
    let mut chars = glob.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => in_class = true,
            '\\' => {
                // An escaped character is literal (`\*` is a star).
                if chars.next().is_some_and(|e| e != '.') {
                    literal = true;
                }
            }
            '*' | '?' | '{' | '}' | ',' | '/' | '.' => {}
            _ => literal = true,
        }
    }
    !literal
}
