//! Bad input for every parser: config TOML, registry JSON, manifests, journals.
