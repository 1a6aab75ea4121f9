"""Tests for pyproject/config.py: layered settings, conversions and the checks at start-up."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from pyproject.config import DEFAULTS, ConfigError, load_config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own settings out of these tests."""
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def env_file(tmp_path: Path):
    """Give a function that writes a .env file and gives its path."""

    def write(text: str) -> Path:
        path = tmp_path / ".env"
        path.write_text(text)
        return path

    return write


def load(tmp_path: Path, overrides: dict | None = None, env_file: Path | None = None) -> dict:
    """Load settings with a key, an instance folder in tmp_path and no .env unless given."""
    values = {"SECRET_KEY": "k" * 32, "INSTANCE_PATH": str(tmp_path / "instance")}
    values.update(overrides or {})
    return load_config(values, env_file=env_file)


# --- layers ----------------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_set(tmp_path):
    config = load(tmp_path)

    assert config["SITE_NAME"] == DEFAULTS["SITE_NAME"]
    assert config["PORT"] == 8000
    assert config["DEBUG"] is False
    assert config["BASE_URL"] == "http://127.0.0.1:8000"


def test_env_file_beats_defaults(tmp_path, env_file):
    path = env_file("SITE_NAME=From dotenv\nPORT=9001\n")

    config = load(tmp_path, env_file=path)

    assert config["SITE_NAME"] == "From dotenv"
    assert config["PORT"] == 9001


def test_environment_beats_env_file(tmp_path, env_file, monkeypatch):
    path = env_file("SITE_NAME=From dotenv\nPORT=9001\n")
    monkeypatch.setenv("SITE_NAME", "From environment")

    config = load(tmp_path, env_file=path)

    assert config["SITE_NAME"] == "From environment"
    assert config["PORT"] == 9001


def test_overrides_beat_the_environment(tmp_path, env_file, monkeypatch):
    path = env_file("SITE_NAME=From dotenv\nTIMEZONE=Europe/Paris\n")
    monkeypatch.setenv("SITE_NAME", "From environment")
    monkeypatch.setenv("PORT", "9002")

    config = load(tmp_path, {"SITE_NAME": "From overrides"}, env_file=path)

    assert config["SITE_NAME"] == "From overrides"
    assert config["PORT"] == 9002
    assert config["TIMEZONE"] == "Europe/Paris"


def test_an_empty_value_in_the_environment_still_counts(tmp_path, env_file, monkeypatch):
    path = env_file("SITE_DESCRIPTION=From dotenv\n")
    monkeypatch.setenv("SITE_DESCRIPTION", "")

    assert load(tmp_path, env_file=path)["SITE_DESCRIPTION"] == ""


def test_unknown_names_in_env_file_and_environment_are_ignored(tmp_path, env_file, monkeypatch):
    path = env_file("NOT_A_SETTING=1\nsite_name=lower case\n")
    monkeypatch.setenv("ALSO_NOT_A_SETTING", "1")

    config = load(tmp_path, env_file=path)

    assert "NOT_A_SETTING" not in config
    assert "ALSO_NOT_A_SETTING" not in config
    assert config["SITE_NAME"] == DEFAULTS["SITE_NAME"]


def test_env_file_values_may_be_quoted_and_commented(tmp_path, env_file):
    path = env_file('# a comment\nSITE_NAME="Quoted # not a comment"\nPORT=9003 # trailing\n')

    config = load(tmp_path, env_file=path)

    assert config["SITE_NAME"] == "Quoted # not a comment"
    assert config["PORT"] == 9003


def test_a_missing_env_file_is_not_an_error(tmp_path):
    config = load(tmp_path, env_file=tmp_path / "no-such.env")

    assert config["PORT"] == 8000


# --- conversions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        (" YES ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_booleans_are_converted(tmp_path, monkeypatch, raw, expected):
    monkeypatch.setenv("DEBUG", raw)

    assert load(tmp_path)["DEBUG"] is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "yes please", "-1"])
def test_a_bad_boolean_raises_naming_the_setting(tmp_path, monkeypatch, raw):
    monkeypatch.setenv("DEBUG", raw)

    with pytest.raises(ConfigError, match="DEBUG"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [("PORT", "8080", 8080), ("PORT", " 8081 ", 8081), ("MAX_CONTENT_LENGTH", "1024", 1024)],
)
def test_integers_are_converted(tmp_path, env_file, name, raw, expected):
    path = env_file(f"{name}={raw}\n")

    assert load(tmp_path, env_file=path)[name] == expected


@pytest.mark.parametrize("raw", ["eighty", "80.5", "", "8_0x", "1e3"])
@pytest.mark.parametrize("name", ["PORT", "SESSION_MAX_AGE", "MAX_FORM_FIELDS"])
def test_a_bad_integer_raises_naming_the_setting(tmp_path, monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)

    with pytest.raises(ConfigError, match=name):
        load(tmp_path)


def test_a_bad_value_in_overrides_raises_too(tmp_path):
    with pytest.raises(ConfigError, match="WORKERS"):
        load(tmp_path, {"WORKERS": "many"})


def test_typed_overrides_are_kept_as_given(tmp_path):
    config = load(tmp_path, {"PORT": 1234, "DEBUG": True, "SESSION_STORE": object})

    assert config["PORT"] == 1234
    assert config["DEBUG"] is True
    assert config["SESSION_STORE"] is object


def test_trusted_proxies_are_read_as_networks(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", " 10.0.0.5, 10.1.0.0/16 ,::1 ")

    assert load(tmp_path)["TRUSTED_PROXIES"] == ("10.0.0.5/32", "10.1.0.0/16", "::1/128")
    assert load(tmp_path, {"TRUSTED_PROXIES": ""})["TRUSTED_PROXIES"] == ()


@pytest.mark.parametrize("raw", ["proxy.example", "10.0.0.300", "10.0.0.0/33", "*"])
def test_a_trusted_proxy_that_is_not_an_address_raises_naming_it(tmp_path, monkeypatch, raw):
    monkeypatch.setenv("TRUSTED_PROXIES", f"10.0.0.5, {raw}")

    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load(tmp_path)


# --- the secret key --------------------------------------------------------------------


def test_without_debug_a_missing_secret_key_raises_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load(tmp_path, {"SECRET_KEY": "", "DEBUG": False})


def test_an_empty_secret_key_in_the_environment_raises(tmp_path, env_file, monkeypatch):
    path = env_file("SECRET_KEY=from-dotenv\n")
    monkeypatch.setenv("SECRET_KEY", "")

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config({"INSTANCE_PATH": str(tmp_path)}, env_file=path)


def test_with_debug_a_secret_key_is_made_in_the_instance_folder_and_reused(tmp_path):
    overrides = {"SECRET_KEY": "", "DEBUG": True}

    first = load(tmp_path, overrides)["SECRET_KEY"]
    second = load(tmp_path, overrides)["SECRET_KEY"]

    key_file = tmp_path / "instance" / "secret_key"
    assert len(first) >= 32
    assert first == second
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_with_debug_an_empty_secret_key_file_is_never_used_as_the_key(tmp_path):
    key_file = tmp_path / "instance" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_text("")

    secret = load(tmp_path, {"SECRET_KEY": "", "DEBUG": True})["SECRET_KEY"]

    assert len(secret) >= 32
    assert load(tmp_path, {"SECRET_KEY": "", "DEBUG": True})["SECRET_KEY"] == secret


def test_workers_starting_together_all_get_the_same_nonempty_development_key(tmp_path):
    # gunicorn starts its workers at once; each loads the settings on first start.
    for attempt in range(10):
        folder = tmp_path / f"attempt{attempt}"
        barrier = threading.Barrier(8)
        keys: list[str] = []

        def start_worker(folder=folder, barrier=barrier, keys=keys) -> None:
            barrier.wait()
            keys.append(load(folder, {"SECRET_KEY": "", "DEBUG": True})["SECRET_KEY"])

        workers = [threading.Thread(target=start_worker) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        assert len(keys) == 8
        assert len(set(keys)) == 1
        assert len(keys[0]) >= 32


def test_a_given_secret_key_wins_over_the_development_one(tmp_path):
    load(tmp_path, {"SECRET_KEY": "", "DEBUG": True})

    assert load(tmp_path, {"SECRET_KEY": "given", "DEBUG": True})["SECRET_KEY"] == "given"


# --- BASE_URL and hosts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        ("https://blog.example", "blog.example"),
        ("https://Blog.Example:8443/", "blog.example"),
        ("http://127.0.0.1:8000", "127.0.0.1"),
        ("https://blog.example/sub/path/", "blog.example"),
    ],
)
def test_allowed_hosts_are_derived_from_base_url(tmp_path, base_url, host):
    config = load(tmp_path, {"BASE_URL": base_url})

    assert host in config["ALLOWED_HOSTS"]
    assert "localhost" in config["ALLOWED_HOSTS"]
    assert not config["BASE_URL"].endswith("/")


def test_explicit_allowed_hosts_replace_the_derived_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " One.Example, .two.example ,, ")

    config = load(tmp_path, {"BASE_URL": "https://blog.example"})

    assert config["ALLOWED_HOSTS"] == ("one.example", ".two.example")


@pytest.mark.parametrize(
    "base_url",
    [
        "blog.example",
        "/blog",
        "//blog.example",
        "ftp://blog.example",
        "https://",
        "https:///path",
        "javascript:alert(1)",
        "",
    ],
)
def test_a_base_url_that_is_not_absolute_raises(tmp_path, base_url):
    with pytest.raises(ConfigError, match="BASE_URL"):
        load(tmp_path, {"BASE_URL": base_url})


def test_database_url_defaults_to_sqlite_in_the_instance_folder(tmp_path):
    config = load(tmp_path)

    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'pyproject.sqlite3'}"
