//! VcsBackend conformance suite: every test runs against both backends.
