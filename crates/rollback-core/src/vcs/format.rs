//! Repository formats libgit2 cannot read, named from its error.

/// The repository format named by a libgit2 error opening a repository, when the error is
/// one of an unsupported format rather than of no repository at all.
pub(crate) fn unsupported_format(message: &str) -> Option<String> {
    if message.contains("extensions.refstorage") {
        return Some("the reftable ref format (`extensions.refStorage`, `git init --ref-format=reftable`)".to_owned());
    }
    if message.contains("object format") || message.contains("extensions.objectformat") {
        return Some("SHA-256 object ids (`extensions.objectFormat`, `git init --object-format=sha256`)".to_owned());
    }
    let ext = message.split("unsupported extension name ").nth(1)?;
    let ext = ext.split_whitespace().next().unwrap_or(ext).trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    Some(format!("the repository extension `{ext}`"))
}

#[cfg(test)]
mod tests {
    use super::unsupported_format;

    #[test]
    fn libgit2s_messages_of_an_unsupported_format_name_it() {
        let reftable = unsupported_format("unsupported extension name extensions.refstorage").unwrap();
        assert!(reftable.contains("reftable"), "{reftable}");
        let sha256 = unsupported_format("unknown object format 'sha256'").unwrap();
        assert!(sha256.contains("SHA-256"), "{sha256}");
        let other =
            unsupported_format("unsupported extension name extensions.frobnicate; class=Repository (6)").unwrap();
        assert_eq!(other, "the repository extension `extensions.frobnicate`");
        assert_eq!(unsupported_format("could not find repository at '/tmp/x'"), None);
    }
}
