"""Memory: where the service's resident set comes from (imports, then token encodings).

Measured in a fresh process, in the order the service pays for them: importing the
modules `checker run` loads, then the token encodings `checker.cost.tokens.warm_up` loads
(the service warms up the encodings its targets' models need; an unknown model, as the
simulator's, gets the proxy encoding).
"""

from __future__ import annotations

import importlib
import json
import subprocess

from bench.common import PYTHON, ROOT, fmt, provenance, rss_mb, table, write_section

STEPS = (
    "checker.config.schema",
    "checker.probes.runner",
    "checker.store.writer",
    "checker.service.wiring",
    "checker.web.server",
    "checker.digest.build",
)


def child() -> list[tuple[str, float]]:
    """Runs in a fresh interpreter: RSS after each step."""
    out = [("interpreter", rss_mb())]
    for module in STEPS:
        importlib.import_module(module)
        out.append((f"import {module}", rss_mb()))
    from checker.cost import tokens

    for name in sorted(tokens.BUNDLED_ENCODINGS):
        tokens.load_encoding(name)
        out.append((f"encoding {name}", rss_mb()))
    return out


def main() -> None:
    code = "import json; from bench.memory import child; print(json.dumps(child()))"
    steps = json.loads(
        subprocess.run(
            [PYTHON, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    )
    rows = []
    previous = 0.0
    for step, rss in steps:
        rows.append([step, fmt(rss, 1), fmt(rss - previous, 1)])
        previous = rss
    text = (
        "## Memory: where the resident set comes from\n\n"
        f"{provenance()}\n\n"
        "RSS of a fresh interpreter after each step, cumulative (the service pays each "
        "once, at start). `checker.web` is loaded only with a `server:` section, "
        "`checker.digest` only when a notify channel is tagged for the digest; the service "
        "loads the encodings its targets' models need (`o200k_base` for any model tiktoken "
        "does not know), held compactly by `checker.cost.bpe` (not by tiktoken's Rust "
        "core).\n\n" + table(["step", "RSS (MB)", "added (MB)"], rows)
    )
    write_section("memory", text)
    print(text)


if __name__ == "__main__":
    main()
