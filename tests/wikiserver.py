"""A real MediaWiki for tests: Debian's package, SQLite in a temp folder, served by `php -S`.

Nothing outside the temp folder is written: the wiki's LocalSettings.php lives there too and
reaches MediaWiki through the MW_CONFIG_FILE environment variable. `scripts/setup.sh --test`
installs the packages; without them the tests fail saying so (they never skip).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

MEDIAWIKI = Path("/usr/share/mediawiki")
ADMIN_PASSWORD = "A-long-Pass-2026"
# Bot passwords are 32 characters of [0-9a-w] (MediaWiki checks that shape before trying one).
BOT_PASSWORD = "abcdefghijklmnopqrstuvw012345678"


@dataclass
class Wiki:
    api: str
    folder: Path
    env: dict[str, str]
    bot_user: str = "Admin@qa"
    bot_password: str = BOT_PASSWORD

    def maintenance(
        self, script: str, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> str:
        done = subprocess.run(
            ["php", str(MEDIAWIKI / "maintenance" / script), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{script} failed: {done.stdout}\n{done.stderr}"
        return done.stdout

    def editor(self) -> Editor:
        return Editor(self)


class Editor:
    """Writes to the wiki through its own API, as a bot would."""

    def __init__(self, wiki: Wiki) -> None:
        self.api = wiki.api
        self.http = httpx.Client(timeout=60)
        token = self._get(action="query", meta="tokens", type="login")["query"]["tokens"]
        result = self._post(
            action="login",
            lgname=wiki.bot_user,
            lgpassword=wiki.bot_password,
            lgtoken=token["logintoken"],
        )
        assert result["login"]["result"] == "Success", result
        self.csrf = self._get(action="query", meta="tokens")["query"]["tokens"]["csrftoken"]

    def _get(self, **params: str) -> dict:
        response = self.http.get(self.api, params={**params, "format": "json"})
        response.raise_for_status()
        return response.json()

    def _post(self, **params: str) -> dict:
        response = self.http.post(self.api, data={**params, "format": "json"})
        response.raise_for_status()
        data = response.json()
        assert "error" not in data, data
        return data

    def edit(self, title: str, text: str) -> dict:
        return self._post(action="edit", title=title, text=text, token=self.csrf, bot="1")

    def move(self, old: str, new: str) -> dict:
        return self._post(action="move", **{"from": old}, to=new, token=self.csrf, reason="t")

    def delete(self, title: str) -> dict:
        return self._post(action="delete", title=title, token=self.csrf)

    def sections(self, title: str) -> list[dict]:
        """The wiki's own section list (with anchors) of a page."""
        return self._get(action="parse", page=title, prop="sections")["parse"]["sections"]

    def close(self) -> None:
        self.http.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mediawiki(folder: Path, *, private: bool = True, extra: str = "") -> Iterator[Wiki]:
    """Install a fresh wiki in `folder` and serve it until the block ends."""
    if not (MEDIAWIKI / "maintenance" / "install.php").is_file():
        raise RuntimeError(
            "MediaWiki is not installed: run `bash scripts/setup.sh --test` (it installs "
            "Debian's mediawiki and php-sqlite3)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = f"http://127.0.0.1:{port}"
    config = folder / "LocalSettings.php"
    env = {**os.environ, "MW_CONFIG_FILE": str(config), "PHP_CLI_SERVER_WORKERS": "4"}
    install = subprocess.run(
        ["php", str(MEDIAWIKI / "maintenance" / "install.php"), "--dbtype", "sqlite",
         "--dbpath", str(folder / "db"), "--dbname", "testwiki", "--server", server,
         "--scriptpath", "", "--pass", ADMIN_PASSWORD, "--confpath", str(folder),
         "TestWiki", "Admin"],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip
    assert install.returncode == 0, f"install.php failed: {install.stdout}\n{install.stderr}"
    settings = [
        # Several php -S workers: sessions and caches must live in the database, not APCu.
        "$wgMainCacheType = CACHE_DB;",
        "$wgSessionCacheType = CACHE_DB;",
        "$wgRateLimits = [];",
        "$wgJobRunRate = 0;",  # jobs run when the test asks, not on random requests
        "$wgExtraNamespaces[100] = 'Staff';",
        "$wgExtraNamespaces[101] = 'Staff_talk';",
    ]
    if private:
        settings.append("$wgGroupPermissions['*']['read'] = false;")
    config.write_text(config.read_text() + "\n" + "\n".join(settings) + "\n" + extra)
    wiki = Wiki(api=f"{server}/api.php", folder=folder, env=env)
    wiki.maintenance(
        "createBotPassword.php", "--appid", "qa",
        "--grants", "basic,highvolume,editpage,createeditmovepage,delete",
        "Admin", BOT_PASSWORD,
    )  # fmt: skip
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(MEDIAWIKI)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
        # php -S forks its workers: a group of their own, so they end with it (a plain
        # terminate() left the four workers running, orphaned, after every test run).
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(wiki.api, params={"format": "json"}, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"php -S did not serve the wiki: {folder / 'server.log'}")
            time.sleep(0.2)
        yield wiki
    finally:
        _end_group(process)
        log.close()


def _end_group(process: subprocess.Popen) -> None:
    """End php -S and every worker it forked (they share its process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers are not our children: wait for the group
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
