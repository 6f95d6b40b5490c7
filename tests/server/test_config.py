"""Settings: flags > EVENTYARD_* environment > config file > defaults, and clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from eventyard.errors import ConfigurationError
from eventyard.server.config import Settings, find_config_file


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_apply_when_nothing_is_given(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, cwd=tmp_path)
    assert settings == Settings()
    assert settings.config_file is None


def test_eventyard_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    _write(tmp_path / "eventyard.toml", 'port = 5000\nregion = "eu-west-1"\ndemo = true\n')
    settings = Settings.load(environ={}, cwd=tmp_path)
    assert (settings.port, settings.region, settings.demo) == (5000, "eu-west-1", True)
    assert settings.config_file == str(tmp_path / "eventyard.toml")


def test_tool_eventyard_table_of_pyproject_is_read(tmp_path: Path) -> None:
    _write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "app"\n\n[tool.eventyard]\nport = 5001\nlog_level = "debug"\n',
    )
    settings = Settings.load(environ={}, cwd=tmp_path)
    assert (settings.port, settings.log_level) == (5001, "debug")


def test_a_pyproject_without_the_table_is_not_a_config_file(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", "[project\nthis is not even TOML")
    assert find_config_file(tmp_path) is None
    assert Settings.load(environ={}, cwd=tmp_path).port == Settings().port


def test_eventyard_toml_wins_over_pyproject(tmp_path: Path) -> None:
    _write(tmp_path / "eventyard.toml", "port = 5002\n")
    _write(tmp_path / "pyproject.toml", "[tool.eventyard]\nport = 5003\n")
    assert Settings.load(environ={}, cwd=tmp_path).port == 5002


def test_environment_beats_the_file_and_flags_beat_both(tmp_path: Path) -> None:
    _write(tmp_path / "eventyard.toml", 'port = 5000\nhost = "0.0.0.0"\nregion = "eu-west-1"\n')
    env = {"EVENTYARD_PORT": "6000", "EVENTYARD_HOST": "127.0.0.2"}
    settings = Settings.load(environ=env, cwd=tmp_path, port=7000)
    assert settings.port == 7000  # flag
    assert settings.host == "127.0.0.2"  # environment
    assert settings.region == "eu-west-1"  # file


def test_a_flag_left_out_does_not_override(tmp_path: Path) -> None:
    settings = Settings.load(environ={"EVENTYARD_PORT": "6000"}, cwd=tmp_path, port=None)
    assert settings.port == 6000


def test_config_flag_and_variable_name_the_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    _write(elsewhere / "a.toml", "port = 5100\n")
    _write(elsewhere / "b.toml", "port = 5200\n")
    env = {"EVENTYARD_CONFIG": str(elsewhere / "b.toml")}
    assert Settings.load(environ=env, cwd=tmp_path).port == 5200
    assert Settings.load(config=elsewhere / "a.toml", environ=env, cwd=tmp_path).port == 5100


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.toml \(from --config\) does not"):
        Settings.load(config="missing.toml", environ={}, cwd=tmp_path)
    with pytest.raises(ConfigurationError, match="from EVENTYARD_CONFIG"):
        Settings.load(environ={"EVENTYARD_CONFIG": "gone.toml"}, cwd=tmp_path)


def test_a_relative_data_dir_in_a_file_is_relative_to_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    _write(conf / "eventyard.toml", 'data_dir = "data"\n')
    settings = Settings.load(config=conf / "eventyard.toml", environ={}, cwd=tmp_path)
    assert settings.data_dir == str(conf / "data")


def test_an_unknown_key_names_the_file_the_line_and_a_close_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "eventyard.toml", '# settings\nport = 5000\ndata-dir = "x"\n')
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(environ={}, cwd=tmp_path)
    assert str(caught.value) == f"{path}:3: unknown key 'data-dir' (did you mean 'data_dir'?)"


def test_a_wrong_type_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "pyproject.toml", '[tool.other]\nport = 1\n[tool.eventyard]\nport = "80"\n'
    )
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(environ={}, cwd=tmp_path)
    assert str(caught.value) == f"{path}:4: port must be an integer, got str '80'"


def test_a_nested_table_is_a_wrong_type(tmp_path: Path) -> None:
    _write(tmp_path / "eventyard.toml", "[demo]\nx = 1\n")
    with pytest.raises(ConfigurationError, match="demo must be a boolean"):
        Settings.load(environ={}, cwd=tmp_path)


def test_an_integer_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    _write(tmp_path / "eventyard.toml", "http_timeout = 3\n")
    settings = Settings.load(environ={}, cwd=tmp_path)
    assert settings.http_timeout == 3.0 and isinstance(settings.http_timeout, float)


@pytest.mark.parametrize(
    "region", ["US-EAST-1", "us_east_1", "local", "", "us-east-1\n", "a:b-c-1"]
)
def test_a_region_must_look_like_an_aws_region(tmp_path: Path, region: str) -> None:
    # an ARN of any other region would not parse back: the server would not know whose
    with pytest.raises(
        ConfigurationError, match=r"region must be an AWS region name .*EVENTYARD_REGION"
    ):
        Settings.load(environ={"EVENTYARD_REGION": region}, cwd=tmp_path)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "us-gov-west-1", "ap-southeast-4"])
def test_aws_regions_are_accepted(tmp_path: Path, region: str) -> None:
    assert Settings.load(environ={"EVENTYARD_REGION": region}, cwd=tmp_path).region == region


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "eventyard.toml", "port = 1\nport = = 2\n")
    with pytest.raises(ConfigurationError, match=rf"^{path}: not valid TOML: .*line 2"):
        Settings.load(environ={}, cwd=tmp_path)


def test_a_value_that_cannot_work_names_where_it_came_from(tmp_path: Path) -> None:
    path = _write(tmp_path / "eventyard.toml", "\nport = 70000\n")
    with pytest.raises(ConfigurationError, match=rf"port must be .* \(from {path}:2\)$"):
        Settings.load(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigurationError, match=r"account_id .* \(from EVENTYARD_ACCOUNT_ID\)"):
        Settings.load(environ={"EVENTYARD_ACCOUNT_ID": "12"}, cwd=tmp_path, port=1)
    with pytest.raises(ConfigurationError, match=r"log_format .* \(from --log-format\)"):
        Settings.load(environ={}, cwd=tmp_path, port=1, log_format="xml")


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("EVENTYARD_PORT", "eighty", "EVENTYARD_PORT='eighty' is not an integer"),
        ("EVENTYARD_HTTP_TIMEOUT", "soon", "EVENTYARD_HTTP_TIMEOUT='soon' is not a number"),
        ("EVENTYARD_DEMO", "maybe", "EVENTYARD_DEMO='maybe' is not a boolean"),
    ],
)
def test_an_environment_variable_of_the_wrong_type_is_named(
    tmp_path: Path, variable: str, raw: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(environ={variable: raw}, cwd=tmp_path)


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("on", True), ("no", False), ("", False)])
def test_boolean_variables_take_the_usual_spellings(tmp_path: Path, raw: str, value: bool) -> None:
    assert Settings.load(environ={"EVENTYARD_DEMO": raw}, cwd=tmp_path).demo is value


def test_from_env_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "eventyard.toml", "port = 5000\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"EVENTYARD_REGION": "eu-west-1"}, port=5001)
    assert (settings.port, settings.region, settings.config_file) == (5001, "eu-west-1", None)


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for key in Settings.setting_types():
        assert f"`{key}`" in doc, key
        assert f"EVENTYARD_{key.upper()}" in doc, key


def test_the_printed_config_is_a_config_file_naming_each_source(tmp_path: Path) -> None:
    path = _write(tmp_path / "eventyard.toml", 'region = "eu-west-1"\nport = 5000\n')
    settings = Settings.load(
        environ={"EVENTYARD_PORT": "6000", "EVENTYARD_DATA_DIR": 'we"ird\\dir'},
        cwd=tmp_path,
        host="0.0.0.0",
    )
    text = settings.to_toml()
    assert tomllib.loads(text) == {key: getattr(settings, key) for key in Settings.setting_types()}
    lines = dict(line.split(" = ", 1) for line in text.splitlines())
    assert lines["host"] == '"0.0.0.0"  # --host'
    assert lines["port"] == "6000  # EVENTYARD_PORT"
    assert lines["region"] == f'"eu-west-1"  # {path}:1'
    assert lines["demo"] == "false  # default"


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), 3600.5])
def test_a_catalog_resync_interval_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(ConfigurationError, match="catalog_resync_interval must be above 0"):
        Settings(catalog_resync_interval=value).check()


def test_the_catalog_resync_interval_defaults_to_one_second_and_accepts_its_bounds() -> None:
    assert Settings().catalog_resync_interval == 1.0
    Settings(catalog_resync_interval=0.01).check()
    Settings(catalog_resync_interval=3600.0).check()
