"""A real MediaWiki 1.39 (Debian's package) for the embedding tests: SQLite and its settings in a
temp folder (MW_CONFIG_FILE), served by `php -S` under a host name of our choosing, with the
recipes of docs/embedding.md read from that file. `scripts/setup.sh --test` installs it; without
it the tests fail saying so (they never skip)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

MEDIAWIKI = Path("/usr/share/mediawiki")
RECIPES = Path(__file__).resolve().parent.parent / "docs" / "embedding.md"
PASSWORD = "A-long-Pass-2026"
# php -S runs PHP files as asked; this router also serves qa-auth.php from the temp folder.
ROUTER = """<?php
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/qa-auth.php' && is_file(__DIR__ . '/qa-auth.php')) {
    require __DIR__ . '/qa-auth.php';
    return true;
}
return false;
"""


def recipe(name: str, **replace: str) -> str:
    """The code block after `<!-- recipe: NAME -->` in docs/embedding.md, with the example
    host names replaced by the test's."""
    text = RECIPES.read_text("utf-8")
    match = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S)
    assert match, f"docs/embedding.md has no recipe {name!r}"
    code = match.group(1)
    for old, new in replace.items():
        code = code.replace(old, new)
    return code


@dataclass
class Wiki:
    url: str  # what readers use, e.g. http://wiki.test:8080
    port: int  # where php -S listens on 127.0.0.1
    folder: Path
    env: dict[str, str]

    def run(self, script: str, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["php", str(MEDIAWIKI / "maintenance" / script), *args],
            input=stdin, capture_output=True, text=True, env=self.env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{script} failed: {done.stdout}\n{done.stderr}"
        return done.stdout

    def edit(self, title: str, text: str) -> None:
        self.run("edit.php", "--user", "Admin", "--summary", "test", title, stdin=text)

    def user(self, name: str, *groups: str) -> None:
        args = ["--force"] + ([f"--custom-groups={','.join(groups)}"] if groups else [])
        self.run("createAndPromote.php", *args, name, PASSWORD)


@contextlib.contextmanager
def mediawiki(folder: Path, url: str, port: int, settings: str = "") -> Iterator[Wiki]:
    """Install a wiki answering at `url` (served on 127.0.0.1:`port`) and run it."""
    assert (MEDIAWIKI / "maintenance" / "install.php").is_file(), (
        "MediaWiki is not installed: run bash scripts/setup.sh --test"
    )
    config = folder / "LocalSettings.php"
    env = {
        **os.environ,
        "MW_CONFIG_FILE": str(config),
        "MW_INSTALL_PATH": str(MEDIAWIKI),
        "PHP_CLI_SERVER_WORKERS": "4",
    }
    wiki = Wiki(url=url, port=port, folder=folder, env=env)
    wiki.run(
        "install.php", "--dbtype", "sqlite", "--dbpath", str(folder / "db"), "--dbname", "wiki",
        "--server", url, "--scriptpath", "", "--pass", PASSWORD, "--confpath", str(folder),
        "--skins", "Vector,MinervaNeue", "TestWiki", "Admin",
    )  # fmt: skip
    extra = [
        # Several php -S workers: sessions and caches in the database, not per-process APCu.
        "$wgMainCacheType = CACHE_DB;",
        "$wgSessionCacheType = CACHE_DB;",
        "$wgDefaultSkin = 'vector-2022';",
        "$wgJobRunRate = 0;",
        "$wgRateLimits = [];",
        "$wgGroupPermissions['*']['createaccount'] = false;",
    ]
    config.write_text(config.read_text() + "\n" + "\n".join(extra) + "\n" + settings + "\n")
    (folder / "router.php").write_text(ROUTER)
    log = (folder / "php.log").open("wb")
    process = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(MEDIAWIKI), str(folder / "router.php")],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
        start_new_session=True,  # its workers are killed with it (they outlive a lone SIGTERM)
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api.php", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "php -S did not start"
                assert process.poll() is None, (folder / "php.log").read_text()
                time.sleep(0.2)
        yield wiki
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        log.close()
