"""Settings: defaults, the TOML file, the BATTLETRACKER_* contract, errors and masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from battletracker.settings import (
    ApiKey,
    IdRange,
    Settings,
    SettingsError,
    load_settings,
    parse_keys,
    parse_range,
)

E = "BATTLETRACKER_"


def load(env: dict[str, str] | None = None, path: Path | None = None, **kw: object) -> Settings:
    """Load with an explicit environment, so the developer's shell never leaks in."""
    return load_settings(path, environ={f"{E}{k}": v for k, v in (env or {}).items()}, **kw)


def write(tmp_path: Path, text: str, name: str = "bt.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- defaults ------------------------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./battletracker.toml here
    s = load()
    assert s == Settings()
    assert s.source == "defaults"
    assert s.database_url.startswith("postgresql")
    assert s.broker_url.startswith("amqp://")
    assert s.wg_api_url == "https://api-console.worldoftanks.com/wotx/"
    assert s.wg_keys == ()
    assert s.xbox_range == IdRange(5_000, 15_500_000)
    assert s.ps_range == IdRange(1_073_740_000, 1_085_000_000)
    assert s.chunk_size == 10_000
    assert s.growth_margin == 50_000
    assert s.growth_step == 200_000
    assert s.elasticsearch_url is None
    assert s.range_for("xbox") is s.xbox_range and s.range_for("ps") is s.ps_range


def test_settings_are_frozen_and_replace_revalidates() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.chunk_size = 500  # type: ignore[misc]
    assert s.replace(chunk_size=500).chunk_size == 500
    with pytest.raises(SettingsError, match="chunk_size"):
        s.replace(chunk_size=150)


# -- the config file -----------------------------------------------------------------------


def test_toml_top_level_keys(tmp_path: Path) -> None:
    p = write(tmp_path, 'chunk_size = 500\nxbox_range = "5000-9999"\nwg_keys = ["a1:12"]\n')
    s = load(path=p)
    assert (s.chunk_size, s.xbox_range) == (500, IdRange(5000, 9999))
    assert s.wg_keys == (ApiKey("a1", 12),)
    assert str(p) in s.source


def test_toml_battletracker_table(tmp_path: Path) -> None:
    p = write(tmp_path, '[battletracker]\nchunk_size = 2_000\ngrowth_step = 1000\n'
                        'elasticsearch_url = "http://es:9200"\n')  # fmt: skip
    s = load(path=p)
    assert (s.chunk_size, s.growth_step, s.elasticsearch_url) == (2000, 1000, "http://es:9200")


def test_config_file_from_env_variable_and_from_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = write(tmp_path, "chunk_size = 700\n", "elsewhere.toml")
    assert load_settings(environ={f"{E}CONFIG": str(p)}).chunk_size == 700
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "chunk_size = 800\n", "battletracker.toml")
    assert load_settings(environ={}).chunk_size == 800


def test_environment_overrides_file_and_keyword_overrides_environment(tmp_path: Path) -> None:
    p = write(tmp_path, "chunk_size = 500\ngrowth_margin = 10\n")
    s = load({"CHUNK_SIZE": "600"}, path=p)
    assert s.chunk_size == 600  # env wins over the file
    assert s.growth_margin == 10  # the file wins over the default
    assert s.source.endswith(f"{E}CHUNK_SIZE")
    assert load({"CHUNK_SIZE": "600"}, path=p, chunk_size=900).chunk_size == 900


# -- the operator's environment contract ---------------------------------------------------


def test_every_contract_variable_parses() -> None:
    s = load({
        "DATABASE_URL": "postgresql://bt:pw@db:5432/bt",
        "BROKER_URL": "amqp://u:p@mq:5672/vh",
        "WG_API_URL": "http://127.0.0.1:9000/wotx/",
        "WG_KEYS": "appA:20, appB:7.5,appC",
        "XBOX_RANGE": "5000-20000000",
        "PS_RANGE": " 1073740000 - 1090000000 ",
        "CHUNK_SIZE": "5_000",
        "GROWTH_MARGIN": "1234",
        "GROWTH_STEP": "4321",
        "ELASTICSEARCH_URL": "https://es.example:9200",
    })  # fmt: skip
    assert s.database_url == "postgresql://bt:pw@db:5432/bt"
    assert s.broker_url == "amqp://u:p@mq:5672/vh"
    assert s.wg_api_url == "http://127.0.0.1:9000/wotx/"
    assert s.wg_keys == (ApiKey("appA", 20.0), ApiKey("appB", 7.5), ApiKey("appC", 10.0))
    assert s.xbox_range == IdRange(5000, 20_000_000)
    assert s.ps_range == IdRange(1_073_740_000, 1_090_000_000)
    assert s.chunk_size == 5000
    assert (s.growth_margin, s.growth_step) == (1234, 4321)
    assert s.elasticsearch_url == "https://es.example:9200"


def test_empty_elasticsearch_url_means_none() -> None:
    assert load({"ELASTICSEARCH_URL": ""}).elasticsearch_url is None


def test_parse_helpers() -> None:
    assert parse_range("x", "1-2") == IdRange(1, 2)
    assert parse_keys("") == ()
    assert parse_keys("k:1,,j:2,") == (ApiKey("k", 1.0), ApiKey("j", 2.0))


# -- errors name the setting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"XBOX_RANGE": "5000"}, "xbox_range"),
        ({"XBOX_RANGE": "a-b"}, "xbox_range"),
        ({"PS_RANGE": "-5-10"}, "ps_range"),
        ({"XBOX_RANGE": "9000-5000"}, "xbox_range"),
        ({"XBOX_RANGE": "0-5000"}, "xbox_range"),
        ({"XBOX_RANGE": "5000-1073740000"}, "xbox_range and ps_range"),
        ({"PS_RANGE": "5000-9000"}, "xbox_range and ps_range"),
        # an Xbox range reaching into PlayStation's id space would mislabel its chunks
        ({"XBOX_RANGE": "5000-1050000000"}, "xbox_range"),
        ({"PS_RANGE": "900000000-1085000000", "XBOX_RANGE": "5000-6000"}, "ps_range"),
        ({"CHUNK_SIZE": "150"}, "chunk_size"),
        ({"CHUNK_SIZE": "0"}, "chunk_size"),
        ({"CHUNK_SIZE": "200000"}, "chunk_size"),
        ({"CHUNK_SIZE": "ten"}, "chunk_size"),
        ({"GROWTH_MARGIN": "-1"}, "growth_margin"),
        ({"GROWTH_STEP": "0"}, "growth_step"),
        ({"WG_KEYS": "app:fast"}, "wg_keys"),
        ({"WG_KEYS": ":10"}, "wg_keys"),
        ({"WG_KEYS": "bad key!:10"}, "wg_keys"),
        ({"WG_KEYS": "app:0"}, "wg_keys"),
        ({"WG_KEYS": "app:-3"}, "wg_keys"),
        ({"WG_KEYS": "app:nan"}, "wg_keys"),
        ({"WG_KEYS": "app:5000"}, "wg_keys"),
        ({"WG_API_URL": "ftp://x"}, "wg_api_url"),
        ({"DATABASE_URL": "mysql://x"}, "database_url"),
        ({"ELASTICSEARCH_URL": "es:9200"}, "elasticsearch_url"),
        ({"GUEST_LOGIN": "perhaps"}, "guest_login"),
        ({"REQUEST_TIMEOUT": "soon"}, "request_timeout"),
        ({"CYCLE_TIME": "25:00"}, "cycle_time"),
        ({"CHUNKSIZE": "500"}, "BATTLETRACKER_CHUNKSIZE"),
        ({"SOURCE": "me"}, "BATTLETRACKER_SOURCE"),
    ],
)
def test_malformed_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load(env)


def test_unknown_env_variable_says_unknown() -> None:
    with pytest.raises(SettingsError, match=r"BATTLETRACKER_WG_KEY\b.*unknown setting"):
        load({"WG_KEY": "a:1"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("chunksize = 500\n", "chunksize"),
        ("[battletracker]\nnot_a_setting = 1\n", "not_a_setting"),
        ("[other]\nchunk_size = 500\n", "other"),
        ("chunk_size = true\n", "chunk_size"),
        ("chunk_size = 1000.0\n", "chunk_size"),
        ("database_url = 5\n", "database_url"),
        ("xbox_range = [5000, 9000]\n", "xbox_range"),
        ("chunk_size = 250\n", "chunk_size"),
    ],
)
def test_bad_file_values_name_the_setting(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load(path=write(tmp_path, text))


def test_missing_explicit_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError, match=r"nope\.toml.*does not exist"):
        load(path=missing)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(environ={f"{E}CONFIG": str(missing)})


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "chunk_size = = 5\n")
    with pytest.raises(SettingsError, match=r"config file .*bt\.toml"):
        load(path=p)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# -- secrets -------------------------------------------------------------------------------

SECRETS = {
    "DATABASE_URL": "postgresql://bt:dbpass-s3cr3t@db:5432/bt",
    "BROKER_URL": "amqp://mq:brokerpass-s3cr3t@mq:5672//",
    "WG_KEYS": "appidsecret0001:20,appidsecret0002:5",
    "SECRET_KEY": "signing-s3cr3t",
    "GUEST_PASSWORD": "guestpass-s3cr3t",
    "ELASTICSEARCH_URL": "https://elastic:espass-s3cr3t@es:9200",
}
LEAKS = ("dbpass", "brokerpass", "appidsecret", "signing-s3cr3t", "guestpass", "espass")


def test_secrets_are_masked_in_repr_and_masked() -> None:
    s = load(SECRETS)
    dumps = {"repr": repr(s), "masked": str(s.masked()), "key repr": repr(s.wg_keys)}
    for where, text in dumps.items():
        for leak in LEAKS:
            assert leak not in text, f"{leak} visible in {where}"
    m = s.masked()
    # what is not secret stays readable for the operator
    assert "db:5432/bt" in m["database_url"] and "bt:" in m["database_url"]
    assert "mq:5672" in m["broker_url"]
    assert "es:9200" in m["elasticsearch_url"]
    assert m["chunk_size"] == "10000"
    assert set(m) >= {"database_url", "wg_keys", "secret_key", "xbox_range"}


def test_password_containing_at_sign_is_masked_whole() -> None:
    # SQLAlchemy and kombu both read "p@ss-word" as the password of such a URL
    s = load({"DATABASE_URL": "postgresql://bt:p@ss-word@db/bt"})
    assert "ss-word" not in repr(s) and "ss-word" not in s.masked()["database_url"]
    assert s.masked()["database_url"].endswith("@db/bt")


def test_the_real_values_are_kept() -> None:
    s = load(SECRETS)
    assert s.secret_key == "signing-s3cr3t"
    assert s.wg_keys[0].app_id == "appidsecret0001"
    assert "dbpass-s3cr3t" in s.database_url
