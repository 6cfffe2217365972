"""Config stage: the YAML file read, checked and turned into one frozen `Config`.

`schema` holds the pydantic models (every section strict); `load` reads the file
(${VAR}, `credential:`, errors by file:line) with `load()` / `parse()` / `ConfigError`.
Nothing is re-exported here: a `load` function would shadow the `load` module.
"""

__all__ = ["load", "schema"]
