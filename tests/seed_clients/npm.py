"""Node 20 and the npm packages (esbuild, React, recharts) that run the seed's clients.

The packages named in ``package.json`` here are installed once per test session
into a temporary folder (npm's own cache makes later sessions quick: with the exact
versions pinned, ``--prefer-offline`` takes them from it without asking the registry). Without
Node or the npm registry the tests skip with the reason; under ``CI=true`` they
fail, since nothing may be skipped silently in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NODE_MAJOR = 20
"""The Node version the seed's TypeScript targets (its ``fetch`` is global from 18)."""
NPM_TIMEOUT = 300.0
"""Seconds ``npm install`` may take (a cold cache downloads about 10 MB)."""


def unavailable(reason: str) -> None:
    """Skip with ``reason``; fail with it when ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the seed-client tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def node() -> str:
    """The ``node`` executable (major version >= 20)."""
    binary = shutil.which("node")
    if binary is None:
        unavailable("node is not installed (Node 20 runs the seed's TypeScript clients)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    major = int(re.match(r"v(\d+)", version.stdout).group(1))  # type: ignore[union-attr]
    if major < NODE_MAJOR:
        unavailable(f"node {version.stdout.strip()} is older than {NODE_MAJOR}")
    return binary


def install(folder: Path) -> Path:
    """Install ``package.json``'s packages into ``folder``; returns the esbuild executable."""
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed")
    shutil.copy(HERE / "package.json", folder / "package.json")
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.CalledProcessError as exc:
        unavailable(f"npm install failed (is the npm registry reachable?): {exc.stderr[-2000:]}")
    return folder / "node_modules" / ".bin" / "esbuild"


class Bundler:
    """esbuild with the installed packages: seed files in, JavaScript out."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.esbuild = install(folder)

    def build(self, name: str, *, browser: bool = False) -> Path:
        """Bundle ``tests/seed_clients/<name>``; returns the ``.mjs`` (Node) or ``.js`` file.

        For the browser, JSX uses React's automatic runtime (React 17+, what Vite
        and Next.js use), since the seed's component imports no ``React``.
        """
        source = self.folder / name
        shutil.copy(HERE / name, source)
        out = self.folder / "out" / (source.stem + (".js" if browser else ".mjs"))
        options = ["--bundle", "--format=esm", f"--outfile={out}", "--log-level=warning"]
        if browser:
            options += [
                "--platform=browser",
                "--jsx=automatic",
                "--minify",
                '--define:process.env.NODE_ENV="production"',
            ]
        else:
            options += ["--platform=node", "--target=node20"]
        subprocess.run(
            [str(self.esbuild), str(source), *options],
            cwd=self.folder,
            capture_output=True,
            text=True,
            check=True,
        )
        return out


def verbatim(name: str) -> str:
    """The part of a seed-client file between its ``verbatim`` markers."""
    text = (HERE / name).read_text()
    start = text.index("// --- the seed's code, verbatim ---\n") + len(
        "// --- the seed's code, verbatim ---\n"
    )
    return text[start : text.index("// --- end of the seed's code ---")]
