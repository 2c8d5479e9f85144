//! `forge-rollback completions SHELL` and `forge-rollback man`: generated from the same clap
//! model that parses the arguments, so they cannot drift from it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Args;
use crate::output::Output;

const BIN: &str = "forge-rollback";

/// The completion script of `shell` (`clap_complete`).
pub fn completions(out: &Output, shell: clap_complete::Shell) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), BIN, &mut buf);
    let mut script = String::from_utf8_lossy(&buf).into_owned();
    if shell == clap_complete::Shell::Bash {
        script = mend_bash(&script, BIN);
    }
    out.text(&script)
}

/// Makes a bash script by `clap_complete` (4.6.12 and earlier) complete past the subcommand
/// of a program whose name has a hyphen (clap-rs/clap#6421): its loop names the state of
/// `forge-rollback run` `forge__rollback__subcmd__run`, but the `case` arms that complete
/// `run`'s flags spell it `forge__subcmd__rollback__subcmd__run`, so no arm ever matched and
/// nothing after a subcommand completed. The arms are renamed the way the loop spells them; a
/// script that is already consistent is left as it is.
fn mend_bash(script: &str, bin: &str) -> String {
    let loop_name = bin.replace('-', "__");
    let arm_name = bin.replace('-', "__subcmd__");
    if loop_name == arm_name || script.contains(&format!("cmd=\"{arm_name}__subcmd__")) {
        return script.to_owned();
    }
    script
        .lines()
        .map(|line| match line.trim_start().strip_prefix(&arm_name) {
            Some(rest) if rest.starts_with("__subcmd__") && rest.ends_with(')') => {
                line.replacen(&arm_name, &loop_name, 1)
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The man page, roff (`clap_mangen`): `forge-rollback man > forge-rollback.1`.
pub fn man(out: &Output) -> std::io::Result<()> {
    let mut cmd = Args::command().disable_help_subcommand(true);
    cmd.build();
    out.text(&page(&cmd)?)
}

/// Every page, `forge-rollback.1` and one per subcommand (`forge-rollback-run.1`,
/// `forge-rollback-known-good-mark.1`, ...), written into `dir` (created if missing); returns
/// the files written, sorted. The walk is `clap_mangen::generate_to`'s, with each page's
/// synopsis mended ([`synopsis_with_values`]) before it is written.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn write(cmd: &clap::Command, dir: &Path, pages: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub, dir, pages)?;
        }
        let path = dir.join(clap_mangen::Man::new(cmd.clone()).get_filename());
        let text = page(cmd).with_context(|| format!("render {}", path.display()))?;
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        pages.push(path);
        Ok(())
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create folder {}", dir.display()))?;
    let mut cmd = Args::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    write(&cmd, dir, &mut pages).with_context(|| format!("write man pages into {}", dir.display()))?;
    pages.sort();
    Ok(pages)
}

/// One page, roff, its synopsis with the options' value names.
fn page(cmd: &clap::Command) -> std::io::Result<String> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    Ok(synopsis_with_values(&String::from_utf8_lossy(&buf), cmd))
}

/// Adds each option's value name to the SYNOPSIS line, which `clap_mangen` (0.2) leaves out:
/// `[-C DIR] [--config FILE]`, not `[-C ] [--config]` (the OPTIONS section has them). The
/// line is `clap_mangen`'s own roff: `\fB\-C \fR` for a short option alone, `\fB\-\-config\fR`
/// for a long one (after `\fB\-s\fR|` when it has both).
fn synopsis_with_values(page: &str, cmd: &clap::Command) -> String {
    let roff = |s: &str| s.replace('-', "\\-");
    let mut after_heading = false;
    let mut lines = Vec::new();
    for line in page.lines() {
        let mut line = line.to_owned();
        if after_heading {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set() && a.get_action().takes_values()) {
                let value = arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map_or_else(|| arg.get_id().as_str().to_uppercase(), ToString::to_string);
                let (from, to) = match (arg.get_short(), arg.get_long()) {
                    (_, Some(long)) => {
                        let flag = format!("\\fB{}\\fR", roff(&format!("--{long}")));
                        (flag.clone(), format!("{flag} \\fI{value}\\fR"))
                    }
                    (Some(short), None) => (
                        format!("\\fB{} \\fR", roff(&format!("-{short}"))),
                        format!("\\fB{}\\fR \\fI{value}\\fR", roff(&format!("-{short}"))),
                    ),
                    (None, None) => continue,
                };
                line = line.replacen(&from, &to, 1);
            }
        }
        after_heading = line == ".SH SYNOPSIS";
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::mend_bash;

    #[test]
    fn a_script_whose_arms_match_its_loop_is_left_as_it_is() {
        let fixed = "    cmd=\"my__app__subcmd__run\"\n        my__app__subcmd__run)\n";
        assert_eq!(mend_bash(fixed, "my-app"), fixed);
        let broken = "    cmd=\"my__app__subcmd__run\"\n        my__subcmd__app__subcmd__run)\n";
        assert_eq!(mend_bash(broken, "my-app"), fixed);
        assert_eq!(mend_bash(broken, "myapp"), broken, "no hyphen: nothing to mend");
    }
}
