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
}
