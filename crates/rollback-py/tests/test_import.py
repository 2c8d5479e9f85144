"""The package imports, is the native module, and carries the workspace's version."""

import importlib.machinery
import tomllib
from pathlib import Path

import forge_rollback
from forge_rollback import _forge_rollback

WORKSPACE_CARGO_TOML = Path(__file__).resolve().parents[3] / "Cargo.toml"


def workspace_version() -> str:
    with WORKSPACE_CARGO_TOML.open("rb") as f:
        version = tomllib.load(f)["workspace"]["package"]["version"]
    assert isinstance(version, str)
    return version


def test_version_is_the_workspace_version() -> None:
    assert forge_rollback.__version__ == workspace_version()
    assert _forge_rollback.__version__ == workspace_version()


def test_native_module_path() -> None:
    assert _forge_rollback.__name__ == "forge_rollback._forge_rollback"
    assert _forge_rollback.__spec__ is not None
    assert _forge_rollback.__spec__.name == "forge_rollback._forge_rollback"
    # A compiled extension, not a Python file shadowing it.
    assert _forge_rollback.__file__ is not None
    assert _forge_rollback.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_native_module_has_a_docstring() -> None:
    assert _forge_rollback.__doc__
    assert "forge_rollback" in _forge_rollback.__doc__


def test_all_names_exist() -> None:
    assert "__version__" in forge_rollback.__all__
    for name in forge_rollback.__all__:
        assert hasattr(forge_rollback, name), name


def test_every_public_class_function_and_method_has_a_docstring() -> None:
    missing = []
    for name in forge_rollback.__all__:
        obj = getattr(forge_rollback, name)
        if isinstance(obj, str):  # __version__
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or member is None:
                    continue
                if callable(member) or isinstance(member, property) or type(member).__name__ == "getset_descriptor":
                    if not (getattr(member, "__doc__", None) or "").strip():
                        missing.append(f"{name}.{attr}")
    assert missing == []


def test_docstrings_are_checked_on_members() -> None:
    # The check above reaches methods and getters of the native classes.
    assert forge_rollback.Rollback.verify.__doc__
    assert "VerificationError" in (forge_rollback.Rollback.verify.__doc__ or "")
    assert forge_rollback.RunResult.undone_by.__doc__
    assert forge_rollback.VerificationReport.raise_for_status.__doc__


def test_cli_main_is_exported_as_the_docs_name_it() -> None:
    """docs/python.md: `forge_rollback.cli_main(argv)` runs the command line in-process."""
    assert "cli_main" in forge_rollback.__all__
    assert forge_rollback.cli_main is _forge_rollback.cli_main
    assert forge_rollback.cli_main(["forge-rollback", "--version"]) == 0
