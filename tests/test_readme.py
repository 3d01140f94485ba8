"""The README's first steps work as written: every shell command of its "Start here" section (the
"Then" blocks included) and its Python snippet, run literally, as a new user would, in a fresh
clone of this repository with a fresh venv, on the embedded default (no variable set).

The commands and snippets are read from README.md, so this test follows the README when it changes.
What the test does besides running them (each is done where the code says so below):
  - the clone is `git clone` of this repository's HEAD with the working tree's uncommitted
    changes laid on top (so a developer tests what they are about to commit);
  - the environment is a new user's: only PATH, HOME, locale, proxy and pip settings pass through
    (no DATABASE_URL, REDIS_URL, DEBUG, secrets or DJANGO_SETTINGS_MODULE of this test run);
  - `make run` serves in the background until the next command that starts a server, or the end,
    and is then stopped as Ctrl-C would (SIGINT), which must end it cleanly;
  - `make test` runs with PYTEST_ADDOPTS="--collect-only -q tests/test_readme.py": pytest starts
    in the fresh clone and collects this module, not the whole suite (that takes 10-20 s), and
    runs nothing (running the suite would run this test inside itself);
  - after `cp config.example.yaml config.yaml`, the test makes the edit the README asks for: every
    model's api_base points at a fake OpenAI upstream (tests/fakes/openai_upstream.py) and its
    api_key is a literal (the example names OPENAI_API_KEY, VLLM_KEY, GROQ_API_KEY, unset here);
  - `sk-...` in the curl command and the Python snippet is replaced by the key create_key printed;
  - if port 4000 (the README's) is taken on this machine, another free port is used: PORT for
    make, and 127.0.0.1:4000 replaced in the commands (CI has 4000 free, so there it is literal).
Each command must exit 0 and do what it says: the admin login works, the deployment exists, the
key works, the chat answer comes back.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from tests.fakes.openai_upstream import REPLY_WORDS, FakeOpenAIUpstream

ROOT = Path(__file__).resolve().parents[1]
THIS_MODULE = Path(__file__).relative_to(ROOT).as_posix()
README_PORT = 4000
REPLY = "".join(REPLY_WORDS)
UPSTREAM_KEY = "sk-fake-upstream-key"
COMMAND_TIMEOUT = 300  # the first `make run` creates the venv: about 30-60 s with pip's cache


# --- reading the README -------------------------------------------------------------------


def readme_first_steps(text: str) -> tuple[list[str], list[str]]:
    """The shell commands (continued lines joined, comment lines dropped) and the Python snippets
    of the README's "Start here" section, in order."""
    section = text.split("\n## Start here\n", 1)[1].split("\n## ", 1)[0]
    commands, snippets = [], []
    for language, body in re.findall(r"^```(\w*)\n(.*?)^```", section, re.M | re.S):
        if language == "sh":
            commands += shell_commands(body)
        elif language == "python":
            snippets.append(body)
        else:
            raise AssertionError(f"README Start here: a ```{language} block this test cannot run")
    return commands, snippets


def shell_commands(block: str) -> list[str]:
    commands, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.strip().startswith("#")):
            continue
        current += line
        if line.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append(current)
        current = ""
    assert not current, f"README: a command continues past the end of its block: {current!r}"
    return commands


def test_readme_commands_are_found():
    """The parsing the slow test relies on (cheap, so a README edit that breaks it shows at once)."""
    commands, snippets = readme_first_steps((ROOT / "README.md").read_text())
    assert commands[0].split("#")[0].strip() == "make run"
    assert any("load_config config.yaml" in c for c in commands)
    assert any(c.startswith("curl ") and "-d '{" in c for c in commands)  # continued lines joined
    assert len(snippets) == 1 and "from openai import OpenAI" in snippets[0]


# --- the fresh clone and its environment ---------------------------------------------------


def fresh_clone(destination: Path) -> None:
    head = git("rev-parse", "HEAD").strip()
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(destination)], check=True)
    subprocess.run(["git", "-C", str(destination), "checkout", "--quiet", head], check=True)
    # The working tree's uncommitted changes (tracked files changed or deleted, new files not ignored).
    for name in git("ls-files", "-z", "--modified", "--others", "--exclude-standard").split("\0"):
        if not name:
            continue
        source, target = ROOT / name, destination / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.is_file():
            target.unlink()


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def new_user_environment() -> dict[str, str]:
    kept = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TMPDIR", "TZ",
            "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
    return {name: value for name, value in os.environ.items()
            if name in kept or name.startswith(("LC_", "PIP_", "XDG_", "SSL_CERT_"))}


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- running the commands ------------------------------------------------------------------


@dataclass
class NewUser:
    """Runs the README's commands in the clone, and checks that each did what it says."""

    clone: Path
    upstream: FakeOpenAIUpstream
    port: int
    env: dict[str, str]
    logs: Path
    server: subprocess.Popen | None = None
    server_log: Path | None = None
    key: str | None = None
    done: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def literal(self, command: str) -> str:
        """The command as run: the README's, with the printed key for `sk-...` (and the port, if moved)."""
        if "sk-..." in command:
            assert self.key, f"{command!r} needs the key create_key prints, and none was printed before it"
            command = command.replace("sk-...", self.key)
        return command.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{self.port}")

    def run(self, command: str) -> str:
        words = shlex.split(command, comments=True)
        if words[-2:] == ["make", "run"]:
            self.serve(self.literal(command))
        elif words == ["make", "test"]:
            # pytest starts on the project's configuration in the fresh clone and collects this
            # module; the suite itself is not run here (it would run this test inside itself).
            output = self.shell(command, extra_env={"PYTEST_ADDOPTS": f"--collect-only -q {THIS_MODULE}"})
            assert "test_readme_first_steps_work_as_written" in output, output
        else:
            output = self.shell(self.literal(command))
            self.check(words, output)
        self.done.append(command)
        return command

    def shell(self, command: str, extra_env: dict | None = None) -> str:
        result = subprocess.run(["bash", "-c", command], cwd=self.clone, env={**self.env, **(extra_env or {})},
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert result.returncode == 0, (
            f"README command failed (exit {result.returncode}): {command}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
        return result.stdout

    def serve(self, command: str) -> None:
        self.stop_server()
        self.server_log = self.logs / f"server-{len(self.done)}.log"
        self.server = subprocess.Popen(
            ["bash", "-c", command], cwd=self.clone, env=self.env, start_new_session=True,
            stdout=self.server_log.open("w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"{command!r} ended (exit {self.server.returncode}):\n{self.log()}"
            try:
                if requests.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(f"{command!r} did not answer /health/liveliness:\n{self.log()}")
        assignments = dict(word.split("=", 1) for word in shlex.split(command) if re.match(r"^[A-Z_]+=", word))
        if "GATEWAY_ADMIN_USER" in assignments:  # "let the server create (or reset) it at start"
            user = assignments["GATEWAY_ADMIN_USER"]
            assert f"Admin user {user!r} " in self.log(), self.log()
            self.admin_login(user, assignments["GATEWAY_ADMIN_PASSWORD"])

    def stop_server(self) -> None:
        """Stops the server as Ctrl-C in its terminal would; it must shut down cleanly."""
        if self.server is None:
            return
        os.killpg(self.server.pid, signal.SIGINT)
        try:
            self.server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(10)
            raise AssertionError(f"make run did not stop within 60 s of Ctrl-C:\n{self.log()}") from None
        finally:
            self.server = None
        log = self.log()
        assert "Application shutdown complete." in log and "Finished server process" in log, log
        assert "Traceback" not in log, log

    def kill_server(self) -> None:
        if self.server is not None:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(10)
            self.server = None

    def log(self) -> str:
        return self.server_log.read_text()[-5000:] if self.server_log else ""

    # --- each command does what it says ---

    def check(self, words: list[str], output: str) -> None:
        if "createsuperuser" in words:
            password = next(w.split("=", 1)[1] for w in words if w.startswith("DJANGO_SUPERUSER_PASSWORD="))
            self.admin_login(words[words.index("--username") + 1], password)
        elif words[:1] == ["cp"]:
            source, target = self.clone / words[1], self.clone / words[2]
            assert target.read_bytes() == source.read_bytes()
            if target.name == "config.yaml":
                self.edit_config(target)
        elif "load_config" in words:
            self.check_deployments(words[-1])
        elif "create_key" in words:
            self.key = output.strip().splitlines()[-1]
            assert re.fullmatch(r"sk-[A-Za-z0-9_-]{20,}", self.key), output
        elif words[:1] == ["curl"]:
            answer = json.loads(output)
            assert answer["choices"][0]["message"]["content"] == REPLY, answer
            assert answer["model"] == "gpt-4o-mini"

    def edit_config(self, path: Path) -> None:
        """The edit the README asks for after the copy: the models point at the fake upstream."""
        config = yaml.safe_load(path.read_text())
        for entry in config["model_list"]:
            entry["litellm_params"]["api_base"] = self.upstream.base_url
            entry["litellm_params"]["api_key"] = UPSTREAM_KEY
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def master_key(self) -> str:
        env_file = (self.clone / ".env").read_text()
        return re.search(r"^GATEWAY_MASTER_KEY=(.+)$", env_file, re.M).group(1)

    def check_deployments(self, file: str) -> None:
        """Every model of the file is a deployment the running server lists, at the fake upstream."""
        config = yaml.safe_load((self.clone / file).read_text())
        answer = requests.get(f"{self.url}/model/info", timeout=10,
                              headers={"Authorization": f"Bearer {self.master_key()}"})
        assert answer.status_code == 200, answer.text
        listed = {(d["model_name"], d["litellm_params"].get("api_base")) for d in answer.json()["data"]}
        for entry in config["model_list"]:
            assert (entry["model_name"], self.upstream.base_url) in listed, (entry, listed)

    def admin_login(self, username: str, password: str) -> None:
        """Logs into the admin as a browser would (the login form, its CSRF token)."""
        session = requests.Session()
        form = session.get(f"{self.url}/admin/login/", timeout=10)
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        answer = session.post(f"{self.url}/admin/login/?next=/admin/", timeout=10, allow_redirects=False,
                              data={"csrfmiddlewaretoken": token, "username": username, "password": password})
        assert answer.status_code == 302 and answer.headers["Location"] == "/admin/", answer.text[-2000:]

    def run_snippet(self, snippet: str, index: int) -> None:
        path = self.logs / f"snippet-{index}.py"
        path.write_text(self.literal(snippet))
        output = self.shell(f".venv/bin/python {shlex.quote(str(path))}")
        assert output.strip() == REPLY, output


@pytest.fixture
def upstream():
    fake = FakeOpenAIUpstream().start()
    yield fake
    fake.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_first_steps_work_as_written(tmp_path, upstream):
    commands, snippets = readme_first_steps((ROOT / "README.md").read_text())
    clone = tmp_path / "gateway"
    fresh_clone(clone)
    assert not (clone / ".env").exists() and not (clone / ".venv").exists()
    env = new_user_environment()
    port = README_PORT if port_free(README_PORT) else free_port()
    if port != README_PORT:
        env["PORT"] = str(port)
    user = NewUser(clone=clone, upstream=upstream, port=port, env=env, logs=tmp_path)
    try:
        for command in commands:
            user.run(command)
        for index, snippet in enumerate(snippets):
            user.run_snippet(snippet, index)
        user.stop_server()
    finally:
        user.kill_server()  # only if a step above failed with the server still up

    # The embedded default: `make run` wrote .env (git-ignored), and every command ran on it;
    # Celery, the entry point the README's first steps do not use, reads it too.
    env_file = (clone / ".env").read_text()
    assert re.search(r"^DEBUG=1$", env_file, re.M) and re.search(r"^SECRET_KEY=.{40,}$", env_file, re.M)
    assert subprocess.run(["git", "-C", str(clone), "check-ignore", "-q", ".env"]).returncode == 0
    assert "\nDEBUG: True\n" in user.shell(".venv/bin/celery -A gateway_project report")
    # The curl and the snippet reached the upstream, for the model the key allows.
    chats = [r for r in upstream.requests if r["path"] == "/v1/chat/completions"]
    assert [r["body"]["model"] for r in chats] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert all(r["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}" for r in chats)
