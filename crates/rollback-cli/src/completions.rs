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
    let mut buf = Vec::new();
    clap_mangen::Man::new(Args::command()).render(&mut buf)?;
    out.text(&String::from_utf8_lossy(&buf))
}

/// Every page, `forge-rollback.1` and one per subcommand (`forge-rollback-run.1`,
/// `forge-rollback-known-good-mark.1`, ...), written into `dir` (created if missing); returns
/// the files written, sorted.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create folder {}", dir.display()))?;
    clap_mangen::generate_to(Args::command(), dir)
        .with_context(|| format!("write man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(BIN) && n.ends_with(".1")))
        .collect();
    pages.sort();
    Ok(pages)
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
