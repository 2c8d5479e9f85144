use super::*;

#[test]
fn the_forge_preset_parses_and_lists_the_runbook_checks() {
    let c = Config::parse(&preset(Some("forge")).unwrap(), None).unwrap();
    let names: Vec<&str> = c.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fastapi", "flask", "gradio", "websocket", "auth"]);
    let kinds: Vec<&str> = c.checks.iter().map(CheckConfig::kind).collect();
    assert_eq!(kinds, ["http", "http", "http", "websocket", "flow"]);
    assert!(preset(Some("nope")).is_err());
}

#[test]
fn default_file_equals_built_in_defaults() {
    let from_file = Config::parse(DEFAULT_TOML, None).unwrap();
    let built_in = Config::default();
    assert_eq!(from_file.registry, built_in.registry);
    assert_eq!(from_file.caches, built_in.caches);
    assert_eq!(from_file.categories, built_in.categories);
    assert_eq!(from_file.vcs, built_in.vcs);
    assert_eq!(from_file.clean, built_in.clean);
    assert_eq!(from_file.env, built_in.env);
    assert_eq!(from_file.watch, built_in.watch);
    assert!(from_file.database.is_none() && from_file.checks.is_empty() && from_file.deploy.is_none());
    // Every commented example parses when uncommented.
    let uncommented = DEFAULT_TOML
        .lines()
        .map(|l| l.strip_prefix("# ").filter(|r| r.starts_with('[') || r.contains(" = ")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let all = Config::parse(&uncommented.replace("url_env = \"DATABASE_URL\"", "url = \"sqlite:///app.db\""), None)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert!(all.database.is_some() && all.checks.len() == 1 && all.restart.len() == 1 && all.notify.len() == 1);
}

#[test]
fn parse_errors_carry_line_and_column() {
    let err = Config::parse("[vcs]\nbackend = \"svn\"\n", Some(Path::new("x.toml"))).unwrap_err();
    let Error::Parse { line, column, message, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*line, *column), (2, 11), "{message}");
    assert!(message.contains("svn"), "{message}");

    let err = Config::parse("[caches]\nglob = []\n", None).unwrap_err();
    assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("unknown field `glob`"), "{err}");

    let err = Config::parse("[registry\n", None).unwrap_err();
    assert!(matches!(err, Error::Parse { line: 1, .. }), "{err}");
}

#[test]
fn bad_glob_and_bad_sections_are_named() {
    let err = Config::parse("[caches]\nglobs = [\"a[\"]\n", None).unwrap_err();
    assert!(err.to_string().contains("caches.globs") && err.to_string().contains("a["), "{err}");
    let err = Config::parse("[database]\nkind = \"mongo\"\n", None).unwrap_err();
    assert!(matches!(err, Error::Parse { line: 2, .. }) && err.to_string().contains("mongo"), "{err}");
    let err = Config::parse("[env]\nfiles = [\"../x.env\"]\n", None).unwrap_err();
    assert!(err.to_string().contains("env.files"), "{err}");
    let err = Config::parse("[watch]\nfailures = 0\n", None).unwrap_err();
    assert!(err.to_string().contains("watch.failures"), "{err}");
}

#[test]
fn a_cache_glob_that_names_nothing_is_refused() {
    for g in ["**", "*", "**/*", "/**", "*/*", "**/**", "*.*", "**/*.*", "**/.*", ".*", "?*", "[a-z]*", "{*,?}", "./**"]
    {
        let err =
            Config::parse(&format!("[caches]\nglobs = ['**/*.pyc', '{g}']\n"), Some(Path::new("c.toml"))).expect_err(g);
        let Error::Invalid { key, message, .. } = &err else { panic!("{g}: {err:?}") };
        assert_eq!(key, "caches.globs", "{g}");
        assert!(message.contains(&format!("`{g}`")), "{g}: {message}");
    }
    for g in ["**/__pycache__", "**/*.pyc", "build/*", "**/.cache", "*.log", "**/.pytest_cache", "\\**"] {
        let c = Config::parse(&format!("[caches]\nglobs = ['{g}']\n"), None).unwrap_or_else(|e| panic!("{g}: {e}"));
        assert_eq!(c.caches.globs, [g]);
    }
    // The defaults name what they clear.
    assert!(Config::default().caches.globs.iter().all(|g| !matches_nearly_everything(g)));
}

#[test]
fn categorizes_like_the_seed_app() {
    let c = Config::default();
    let cat = |p: &str| c.categorize(&RepoPath::new(p).unwrap());
    assert_eq!(cat("app/main.py"), Category::Code);
    assert_eq!(cat("alembic/versions/0002_add_users.py"), Category::Migrations);
    assert_eq!(cat("requirements.txt"), Category::Dependencies);
    assert_eq!(cat("backend/requirements-dev.txt"), Category::Dependencies);
    assert_eq!(cat(".env.example"), Category::Env);
    assert_eq!(cat("rollback/config/known-good-commits.json"), Category::Env);
    assert!(c.is_cache(&RepoPath::new("app/__pycache__").unwrap()));
    assert!(c.is_cache(&RepoPath::new("__pycache__").unwrap()));
    assert!(c.is_cache(&RepoPath::new("a/b/x.pyc").unwrap()));
    assert!(!c.is_cache(&RepoPath::new("a/pyc").unwrap()));
}

#[test]
fn env_files_are_taken_one_way_and_a_folder_or_a_repeat_is_refused_with_its_reason() {
    let c = Config::parse("[env]\nfiles = ['./.env', 'config/./app.env', 'deploy//prod.env']\n", None).unwrap();
    assert_eq!(c.env.files, [Path::new(".env"), Path::new("config/app.env"), Path::new("deploy/prod.env")]);

    for (files, said) in [
        ("'.env/'", "`.env/` ends with `/`, so it names a folder; an env file is a file (`.env`)"),
        ("'config/'", "`config/` ends with `/`"),
        ("''", "an empty path names no file"),
        ("'.'", "`.` must be a path inside the work tree, relative to it, without `..`"),
        ("'../x.env'", "`../x.env` must be a path inside the work tree"),
        ("'/etc/app.env'", "`/etc/app.env` must be a path inside the work tree"),
        ("'a/../.env'", "`a/../.env` must be a path inside the work tree"),
        ("'.env', './.env'", "`./.env` names `.env` a second time"),
    ] {
        let err = Config::parse(&format!("[env]\nfiles = [{files}]\n"), Some(Path::new("c.toml"))).expect_err(files);
        let Error::Invalid { key, message, .. } = &err else { panic!("{files}: {err:?}") };
        assert_eq!(key, "env.files", "{files}");
        assert!(message.contains(said), "{files}: {message}");
    }
}
