"""`python -m bench.screenshots`: the status page in headless Chromium at 1280 px and on a
390 px phone, saved as docs/status-page.png and docs/status-page-phone.png.

It runs the browser test (tests/web/test_status_page_browser.py) with CHECKER_SCREENSHOTS
pointing at docs/: the same scenario, the same checks (no console problem, no horizontal
scroll), so a screenshot in the README is one that passed them. Ordinary test runs write
their screenshots to a temporary directory instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import PYTHON, ROOT

TEST = "tests/web/test_status_page_browser.py::test_status_page_in_chromium"


def main() -> int:
    env = {**os.environ, "CHECKER_SCREENSHOTS": str(ROOT / "docs"), "CI": "true"}
    command = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    code = subprocess.run(command, cwd=ROOT, env=env).returncode
    if code == 0:
        print(f"wrote {ROOT / 'docs' / 'status-page.png'} and status-page-phone.png")
    return code


if __name__ == "__main__":
    sys.exit(main())
