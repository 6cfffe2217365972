"""Reading the config file: YAML, ${VAR} and `credential:` references, errors by file:line.

`parse()` and `load()` return a validated `Config` or raise `ConfigError`, whose
`problems` hold one human line per problem (`file:line: where: what`), all of them at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from checker.config.messages import explain
from checker.config.schema import Config

__all__ = ["ConfigError", "SecretsMode", "load", "locate", "parse", "placeholder"]


class ConfigError(Exception):
    """Raised by load(): `problems` holds one human line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CREDENTIAL = re.compile(r"^credential:([A-Za-z0-9_.-]+)$")


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based YAML line of the deepest node on `loc` that exists."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # A key that should not be there points at the key; otherwise the value.
                    nxt = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


# Secrets mode: "all" resolves every reference (the service, check, notify-test); "storage"
# only those under `storage:` (read-only commands need the database, not the API keys);
# "none" none (validate --lint, in CI without the secrets).
SecretsMode = Literal["all", "storage", "none"]


def placeholder(name: str) -> str:
    """What stands for a reference left unresolved: valid in URLs and keys, never sent
    (nothing that sends runs without its secrets) and recognizable in any output."""
    return f"unset-{name.lower().replace('_', '-')}"


def _substitute(
    data: Any,
    loc: tuple[Any, ...],
    errors: list[tuple[tuple[Any, ...], str]],
    mode: SecretsMode = "all",
) -> Any:
    """Resolve ${VAR} and credential:NAME in every string value; collect misses as errors
    (or, where `mode` does not need them, leave a placeholder)."""
    if isinstance(data, dict):
        return {k: _substitute(v, (*loc, k), errors, mode) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, (*loc, i), errors, mode) for i, v in enumerate(data)]
    if not isinstance(data, str):
        return data
    needed = mode == "all" or (mode == "storage" and loc[:1] == ("storage",))
    if not needed:
        if m := _CREDENTIAL.match(data):
            return placeholder(m.group(1))
        return _ENV.sub(
            lambda match: os.environ.get(match.group(1)) or placeholder(match.group(1)), data
        )
    if m := _CREDENTIAL.match(data):
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            errors.append((loc, f"{data} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)"))
            return data
        path = Path(directory) / m.group(1)
        try:
            value = path.read_text().strip()
        except OSError:
            errors.append((loc, f"credential {m.group(1)!r} not found in $CREDENTIALS_DIRECTORY"))
            return data
        if not value:
            errors.append((loc, f"credential {m.group(1)!r} is empty"))
        return value

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None or value == "":
            errors.append((loc, f"environment variable {name} is not set (or empty)"))
            return ""
        return value

    return _ENV.sub(repl, data)


# libyaml's loader when PyYAML has it (its wheels do): the pure-Python one took 0.2 s of CPU
# to read a 200-target file, twice over with the node tree for line numbers.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str, filename: str = "<config>", secrets: SecretsMode = "all") -> Config:
    """Parse and validate config text; raise ConfigError with one line per problem.
    `secrets` says which ${VAR} and credential: references must resolve."""
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at_line = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{at_line}: (yaml): invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: (top level): expected a mapping with `targets:`"])
    env_errors: list[tuple[tuple[Any, ...], str]] = []
    data = _substitute(data, (), env_errors, secrets)
    nodes: list[yaml.Node | None] = []

    def where(loc: tuple[Any, ...]) -> str:
        # The node tree (for line numbers) is composed only when there is a problem to place.
        if not nodes:
            nodes.append(yaml.compose(text, Loader=_YAML_LOADER))
        return f"{filename}:{_line_of(nodes[0], loc)}: {_fmt_loc(loc)}"

    problems = [f"{where(loc)}: {msg}" for loc, msg in env_errors]
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems += [f"{where(loc)}: {msg}" for loc, msg in explain(exc.errors())]
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def locate(text: str, filename: str, loc: tuple[Any, ...]) -> str:
    """`file:line: where` of a config path (("notify", 0, "url")), for problems found after
    loading (a channel URL Apprise rejects)."""
    root = yaml.compose(text, Loader=_YAML_LOADER)
    return f"{filename}:{_line_of(root, loc)}: {_fmt_loc(loc)}"


def load(path: str | os.PathLike[str], secrets: SecretsMode = "all") -> Config:
    """Read and validate the config file at `path`; raise ConfigError with one line per
    problem (`secrets`: see parse)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc.__class__.__name__}"]) from None
    return parse(text, str(p), secrets)
