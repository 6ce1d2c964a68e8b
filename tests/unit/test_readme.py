"""What the README tells a newcomer is true: the prerequisites and the steps that need root, the
topics, one row per variable, `make run`'s keys, and the licence."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from shared.keys import KeyDigests
from shared.topics import DEPARTMENTS, Topic
from tests.support.settings_env import dev_keys_environment

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
STACK = REPO / "deploy" / "local" / "stack.sh"


def section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


# ---------------------------------------------------------------- prerequisites


def ferretdb_go_version() -> str:
    go_mod = (REPO / "deploy" / "local" / "ferretdb" / "go.mod").read_text(encoding="utf-8")
    found = re.search(r"^go (\d+\.\d+)", go_mod, flags=re.M)
    assert found
    return found.group(1)


def test_the_prerequisites_name_the_go_that_builds_ferretdb() -> None:
    quick = section("Quick start")
    assert ferretdb_go_version() == "1.24"
    assert "Go 1.24 or newer" in quick
    assert "1.19" in quick, "Debian 12's golang package is too old: say so"
    assert "https://go.dev/dl/" in quick
    assert "Go 1.22" not in README


def test_the_readme_says_which_steps_need_root() -> None:
    quick = section("Quick start")
    assert "root" in quick
    assert "deploy/local/tools.sh" in quick
    tools = (REPO / "deploy" / "local" / "tools.sh").read_text(encoding="utf-8")
    packages = set(re.findall(r"\[\w+\]=(\w+)", tools))
    assert packages, "tools.sh lists its Debian packages"
    for package in packages:
        assert f"`{package}`" in quick, f"{package}, which tools.sh installs as root"


def fake_go(folder: Path, version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "go"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in env) echo go{version} ;;'
        f' version) echo "go version go{version} linux/amd64" ;;'
        " *) echo 'not a real go' >&2; exit 1 ;; esac\n",
        encoding="utf-8",
    )
    script.chmod(0o755)


def build_ferretdb(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    """stack.sh's FerretDB start, with an empty cache, so it must build FerretDB first."""
    env = {
        **os.environ,
        "PATH": path,
        "CITYHELP_CACHE": str(tmp_path / "cache"),
        "CITYHELP_RUN_DIR": str(tmp_path / "run"),
        "MONGODB_PORT": "9",  # nothing answers there: the start goes on to the build
    }
    return subprocess.run(
        ["bash", str(STACK), "db-start"], env=env, capture_output=True, text=True, timeout=60
    )


def test_stack_sh_refuses_debians_go_with_a_hint_that_works(tmp_path: Path) -> None:
    fake_go(tmp_path / "old", "1.19.8")
    done = build_ferretdb(tmp_path, f"{tmp_path / 'old'}:/usr/bin:/bin")
    assert done.returncode != 0
    assert "Go is go1.19.8" in done.stderr, done.stderr
    assert "Go 1.24 or newer" in done.stderr
    assert "https://go.dev/dl/" in done.stderr
    assert "apt-get install -y golang" not in STACK.read_text(encoding="utf-8")


def test_stack_sh_without_go_says_which_to_install(tmp_path: Path) -> None:
    done = build_ferretdb(tmp_path, "/usr/bin:/bin")
    assert done.returncode != 0
    assert "'go' is missing" in done.stderr, done.stderr
    assert "Go 1.24 or newer" in done.stderr


def test_stack_sh_takes_a_new_enough_go(tmp_path: Path) -> None:
    fake_go(tmp_path / "new", "1.26.8")
    done = build_ferretdb(tmp_path, f"{tmp_path / 'new'}:/usr/bin:/bin")
    assert done.returncode != 0  # the fake cannot build; the version check let it try
    assert "Go is go" not in done.stderr, done.stderr
    assert "could not prepare FerretDB's sources" in done.stderr


# ---------------------------------------------------------------- topics and variables


def test_the_topic_list_is_every_topic_of_the_registry() -> None:
    listed = set(re.findall(r"`(help\.[a-z.]+)`", section("Topics")))
    assert listed == {t.value for t in Topic}
    configured = tomllib.loads((REPO / "config" / "topics.toml").read_text(encoding="utf-8"))
    assert set(configured["topics"]) == {t.value for t in Topic}


def configuration_rows() -> list[str]:
    rows = [line for line in section("Configuration").splitlines() if line.startswith("| `")]
    assert len(rows) > 20
    return rows


def test_each_variable_has_one_row_in_the_configuration_table() -> None:
    names: list[str] = []
    for row in configuration_rows():
        first = row.split(" | ")[0].lstrip("| ")
        names += re.findall(r"`([^`]+)`", first)
    repeated = sorted({n for n in names if names.count(n) > 1})
    assert repeated == []
    assert "CITYHELP_DEVELOPMENT" in names


# ---------------------------------------------------------------- make run's keys


def make_run_environment() -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_KEYS") and k != "CITYHELP_DEVELOPMENT"
    }
    return dev_keys_environment(clean)


def row(variable: str) -> str:
    [found] = [r for r in configuration_rows() if r.startswith(f"| `{variable}`")]
    return found


def test_make_run_sets_the_keys_the_readme_gives_for_each_role() -> None:
    env = make_run_environment()
    assert env["CITYHELP_DEVELOPMENT"] == "1"
    reviewers = json.loads(env["VERIFY_REVIEWER_KEYS"])
    desks = KeyDigests(json.loads(env["ROUTE_COMMAND_KEYS"]))
    assert env["INTAKE_OPEN311_API_KEYS"] == "dev-open311-key"
    assert "`dev-open311-key`" in row("INTAKE_OPEN311_API_KEYS")

    # The key a verifier sends, not the verifier's name, is what the README calls the key.
    verifier = re.search(r"verifier `([^`]+)` with the key `([^`]+)`", row("VERIFY_REVIEWER_KEYS"))
    assert verifier, row("VERIFY_REVIEWER_KEYS")
    assert reviewers == {verifier.group(1): verifier.group(2)}

    # The command centre answers its desk's key (route keeps only the digest): not 401.
    desk = re.search(r"desk `([^`]+)` with the key `([^`]+)`", row("ROUTE_COMMAND_KEYS"))
    assert desk, row("ROUTE_COMMAND_KEYS")
    assert desks.find(desk.group(2)) == desk.group(1)
    assert f"X-Command-Key: {desk.group(2)}" in section("Play a department")

    boards = KeyDigests(json.loads(env["ROUTE_BOARD_KEYS"]))
    assert "`dev-board-medical`" in row("ROUTE_BOARD_KEYS")
    for department in DEPARTMENTS:
        assert boards.find(f"dev-board-{department}") == department


def test_run_sh_uses_and_prints_those_keys() -> None:
    run = (REPO / "deploy" / "local" / "run.sh").read_text(encoding="utf-8")
    assert 'source "$here/dev-keys.sh"' in run
    for variable in ("$DEV_OPEN311_KEY", "$DEV_VERIFIER_KEY", "$DEV_COMMAND_KEY", "BOARD_KEY"):
        assert variable in run.split("cat <<MSG", 1)[1], f"run.sh prints {variable}"


# ---------------------------------------------------------------- licence


def test_the_licence_is_apache_2_and_the_readme_and_package_say_so() -> None:
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "[LICENSE](LICENSE)" in section("License")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
