"""Settings: defaults, file, environment, and one clear line for each mistake."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from etckit import config
from etckit.config import ConfigError, load
from tests.support.procs import env_with, etckit_argv

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "etckit.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    cfg = load(None, environ={})
    assert cfg.main_server.port == 8080
    assert cfg.database.url == "sqlite:///var/etckit.db"
    assert cfg.auth.fake_login is False


def test_file_then_environment(tmp_path):
    path = write(tmp_path, '[main_server]\nport = 9000\n[wssvc]\nallowed_origins = ["https://a"]\n')
    cfg = load(path, environ={"ETCKIT_MAIN_SERVER__PORT": "9100",
                              "ETCKIT_AUTH__FAKE_LOGIN": "yes",
                              "ETCKIT_SSO__SCOPES": "openid, email",
                              "UNRELATED": "x"})
    assert cfg.main_server.port == 9100
    assert cfg.wssvc.allowed_origins == ["https://a"]
    assert cfg.auth.fake_login is True
    assert cfg.sso.scopes == ["openid", "email"]
    assert cfg.heartbeat.interval == 1.0


@pytest.mark.parametrize("text, words", [
    ('[main_server]\nport = "eighty"\n', ["main_server.port", "'eighty'", "an integer"]),
    ("[main_server]\nport = 70000\n", ["main_server.port", "70000", "65535"]),
    ("[main_server]\nprot = 80\n", ["unknown key main_server.prot", "port"]),
    ("[mainserver]\nport = 80\n", ["unknown section [mainserver]", "main_server"]),
    ('[log]\nlevel = "loud"\n', ["log.level", "'loud'", "'debug'"]),
    ("[auth]\nfake_login = 1\n", ["auth.fake_login", "a boolean"]),
    ('[database]\nurl = "mysql://x"\n', ["database.url", "postgresql://"]),
    ("[database]\npool_min = 5\npool_max = 2\n", ["pool_min = 5", "pool_max = 2"]),
    ("main_server = 3\n", ["main_server", "must be a table"]),
    ("[main_server\n", ["not valid TOML"]),
])
def test_bad_file_names_the_key(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), environ={})
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("name, value, words", [
    ("ETCKIT_MAIN_SERVER__PORT", "x", ["environment ETCKIT_MAIN_SERVER__PORT", "an integer"]),
    ("ETCKIT_AUTH__FAKE_LOGIN", "maybe", ["auth.fake_login", "a boolean"]),
    ("ETCKIT_NOPE__X", "1", ["ETCKIT_NOPE__X", "unknown section"]),
])
def test_bad_environment_names_the_variable(name, value, words):
    with pytest.raises(ConfigError) as info:
        load(None, environ={name: value})
    for word in words:
        assert word in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load("/nonexistent/etckit.toml", environ={})


@pytest.mark.parametrize("text, key", [
    ('[main_server]\nport = "80"\n', "main_server.port"),
    ("[main_server]\nbogus = true\n", "main_server.bogus"),
])
def test_program_exits_2_with_one_line(tmp_path, text, key):
    path = write(tmp_path, text)
    done = subprocess.run(etckit_argv("main-server", "--config", str(path)), env=env_with(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert key in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_reference_documents_every_key_with_its_default():
    text = DOCS.read_text()
    assert config.reference().strip() in text, (
        "docs/configuration.md is out of date: paste etckit.config.reference() into it"
    )
