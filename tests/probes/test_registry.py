"""The probe registry names every probe once; the runner finds each one's function."""

from __future__ import annotations

import inspect
import subprocess
import sys

from checker.probes import registry
from checker.probes.runner import MODULES, probe_function


def test_every_registered_probe_has_its_function_and_no_function_is_unregistered() -> None:
    for kind, specs in registry.SPECS.items():
        for spec in specs.values():
            assert inspect.iscoroutinefunction(probe_function(spec)), spec
        defined = {n[len("probe_") :] for n in dir(MODULES[kind]) if n.startswith("probe_")}
        assert defined == set(specs), kind


def test_loading_a_config_does_not_load_the_probes_or_httpx() -> None:
    code = (
        "import sys, checker.config.load; "
        "print(sorted(m for m in ('httpx', 'checker.probes.chat', 'checker.probes.runner') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
