//! `completions SHELL` and `man`: generated from the argument parser, outside any repository.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::common::run_in;

/// Every top-level command, as `forge-rollback --help` lists them.
const COMMANDS: &[&str] = &[
    "init",
    "assess",
    "plan",
    "run",
    "undo",
    "resume",
    "rehearse",
    "verify",
    "watch",
    "runs",
    "known-good",
    "backups",
    "report",
    "unlock",
    "demo",
    "completions",
    "man",
];

/// Runs `script` with `stdin` as its input; returns (status, stdout, stderr).
fn sh(program: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bash_completion_registers_and_completes_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["completions", "bash"], &[]);
    out.ok();
    for c in COMMANDS {
        assert!(out.stdout.contains(c), "the bash script does not mention `{c}`");
    }
    // Real bash loads it, registers it for `forge-rollback`, and completes `reh` to `rehearse`.
    let probe = format!(
        "{}\ncomplete -p forge-rollback\nCOMP_WORDS=(forge-rollback reh); COMP_CWORD=1; COMP_LINE='forge-rollback reh'; COMP_POINT=${{#COMP_LINE}}\n_forge__rollback forge-rollback reh forge-rollback\nprintf 'got:%s\\n' \"${{COMPREPLY[@]}}\"\n",
        out.stdout
    );
    let (ok, stdout, stderr) = sh("bash", &["-s"], &probe);
    assert!(ok, "bash rejected the script: {stderr}");
    assert!(stdout.contains("forge-rollback"), "not registered: {stdout}");
    assert!(stdout.contains("got:rehearse"), "`reh` did not complete to `rehearse`: {stdout}\n{stderr}");
}

/// What real bash completes for the words `line` (the last one being completed).
fn bash_completes(script: &str, line: &[&str]) -> String {
    let words = line.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
    let (cur, prev) = (line[line.len() - 1], line[line.len() - 2]);
    let probe = format!(
        "{script}\nCOMP_WORDS=({words}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}\n_forge__rollback forge-rollback '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        line.len() - 1,
        line.join(" "),
    );
    let (ok, stdout, stderr) = sh("bash", &["-s"], &probe);
    assert!(ok, "bash rejected the script: {stderr}");
    stdout
}

#[test]
fn bash_completion_completes_the_flags_and_subcommands_after_a_subcommand() {
    // clap_complete 4.6.12 names the `case` arms of a hyphenated program differently from the
    // state its loop computes (clap-rs/clap#6421): nothing after a subcommand completed.
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["completions", "bash"], &[]);
    out.ok();
    let script = &out.stdout;
    assert!(!script.contains("forge__subcmd__rollback"), "an arm the loop never reaches is left");
    for (line, want) in [
        (&["forge-rollback", "run", "--ta"][..], "--target"),
        (&["forge-rollback", "undo", "--restore"], "--restore-snapshot"),
        (&["forge-rollback", "known-good", "ma"], "mark"),
        (&["forge-rollback", "backups", "ver"], "verify"),
        (&["forge-rollback", "man", "--d"], "--dir"),
    ] {
        let got = bash_completes(script, line);
        assert_eq!(got.lines().collect::<Vec<_>>(), [want], "{line:?}");
    }
}

#[test]
fn man_dir_writes_a_page_for_every_subcommand_where_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    // Started in `dir` with `-C elsewhere`: a relative `--dir` is taken from where the command
    // was started (as `report --output`), and `-C` does not leak into it.
    let o =
        crate::common::command(elsewhere.path(), &["man", "--dir", "man1"]).current_dir(dir.path()).output().unwrap();
    let out = crate::common::Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    out.ok();
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    let listed: Vec<&str> = out.stdout.lines().collect();
    for c in COMMANDS.iter().chain(&["known-good-mark", "backups-verify", "runs-show"]) {
        let page = pages.join(format!("forge-rollback-{c}.1"));
        assert!(page.is_file(), "no page for `{c}`");
        // Listed as the operator wrote the folder.
        assert!(listed.contains(&format!("man1/forge-rollback-{c}.1").as_str()), "`{c}` not listed: {listed:?}");
    }
    assert!(pages.join("forge-rollback.1").is_file());
    let run = std::fs::read_to_string(pages.join("forge-rollback-run.1")).unwrap();
    assert!(run.contains(".TH forge-rollback-run 1"), "{run}");
    for flag in ["target", "fast", "allow\\-irreversible"] {
        assert!(run.contains(&format!("\\-\\-{flag}")), "the run page has no --{flag}");
    }
    let (ok, text, warnings) = sh("groff", &["-man", "-Tutf8", "-ww", "-P-cbou"], &run);
    assert!(ok && warnings.is_empty(), "groff: {warnings}");
    assert!(text.contains("--target"), "{text}");
    // The synopsis names each option's value, as `--help` does (it used to read `[--target]`).
    // (groff justifies the lines: spaces collapsed.)
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let synopsis = &flat[flat.find("SYNOPSIS").unwrap()..flat.find("DESCRIPTION").unwrap()];
    for with_value in ["[-C DIR]", "[--config FILE]", "[--target REV]", "[--reason TEXT]", "[--severity LEVEL]"] {
        assert!(synopsis.contains(with_value), "no `{with_value}` in the synopsis: {synopsis}");
    }
}

#[test]
fn man_dir_that_cannot_be_made_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("man1");
    let out = run_in(dir.path(), &["man", "--dir", target.to_str().unwrap()], &[]);
    out.code(1);
    assert!(out.stderr.contains(&format!("create folder {}", target.display())), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn zsh_and_fish_completions_name_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let zsh = run_in(dir.path(), &["completions", "zsh"], &[]);
    zsh.ok();
    assert!(zsh.stdout.starts_with("#compdef forge-rollback"), "{}", &zsh.stdout[..80.min(zsh.stdout.len())]);
    let fish = run_in(dir.path(), &["completions", "fish"], &[]);
    fish.ok();
    assert!(fish.stdout.contains("complete -c forge-rollback"));
    assert!(fish.stdout.contains("rehearse"));
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["completions", "tcsh"], &[]);
    out.code(2);
    assert!(out.stderr.contains("invalid value 'tcsh'"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn man_page_has_its_sections_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["man"], &[]);
    out.ok();
    let page = &out.stdout;
    assert!(page.contains(".TH forge-rollback 1"), "{page}");
    let sections: Vec<&str> = page.lines().filter_map(|l| l.strip_prefix(".SH ")).collect();
    for s in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SUBCOMMANDS", "VERSION"] {
        assert!(sections.contains(&s), "no {s} section in {sections:?}");
    }
    for c in COMMANDS {
        // roff escapes the hyphen of `known-good`.
        assert!(page.contains(&c.replace('-', "\\-")), "the man page does not list `{c}`");
    }
    // groff (man's formatter) renders it without warnings.
    let (ok, text, warnings) = sh("groff", &["-man", "-Tutf8", "-ww", "-P-cbou"], page);
    assert!(ok && warnings.is_empty(), "groff: {warnings}");
    assert!(text.contains("SUBCOMMANDS") && text.contains("rehearse"), "{text}");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("SYNOPSIS forge-rollback [-C DIR] [--config FILE] [--json]"), "{text}");
}

/// `--json` with a command whose output is a document (TOML, roff, a shell script) is a usage
/// error naming the conflict, not a success whose stdout is not JSON.
#[test]
fn json_is_refused_where_the_output_is_not_json() {
    let dir = tempfile::tempdir().unwrap();
    for (args, command) in [
        (&["--json", "init", "--print"][..], "init --print"),
        (&["--json", "man"][..], "man"),
        (&["--json", "completions", "bash"][..], "completions"),
    ] {
        let out = run_in(dir.path(), args, &[]);
        out.code(2);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains(&format!("`--json` does not apply to `{command}`")), "{args:?}: {}", out.stderr);
    }
    // `man --dir` lists what it wrote as JSON: still allowed.
    let pages = dir.path().join("pages").display().to_string();
    let out = run_in(dir.path(), &["--json", "man", "--dir", &pages], &[]);
    out.ok();
    assert!(out.json()["pages"].as_array().is_some_and(|p| !p.is_empty()), "{}", out.stdout);
}
