# Hand-written stub of the native module (crates/rollback-py/src/lib.rs); checked against it by
# `python -m mypy.stubtest forge_rollback` in scripts/test.sh. Keep the two in step.
# (PyO3's `PyModule::add` appends each name it adds to the module's `__all__`.)

__all__ = ["__version__"]

__version__: str
