import dataclasses
import datetime as dt
import shutil

import pytest

from jobs.config import settings as settings_module
from jobs.config.settings import DEFAULT_CONF, Settings, load_settings
from jobs.runtime.errors import PolicyrankError


def test_default_conf_loads_every_key():
    s = load_settings()
    assert s.spark.master == "local[2]"
    assert s.candidates.top_k > 0 and s.scoring.top_n > 0
    assert s.warehouse.startswith("/")  # resolved once to an absolute path


def test_overrides_are_typed():
    s = load_settings(
        DEFAULT_CONF,
        [
            "scoring.top_n=3",
            "world.bad_row_share=0",
            "scoring.model_dir=/models/x",
            "spark.extra={a.b: 1}",
        ],
    )
    assert s.scoring.top_n == 3
    assert s.world.bad_row_share == 0.0 and isinstance(s.world.bad_row_share, float)
    assert s.scoring.model_dir == "/models/x"
    assert s.spark.extra == {"a.b": 1}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scoring.top_nn=3", "unknown config key 'scoring.top_nn'"),
        ("nope=1", "unknown config key 'nope'"),
        ("scoring.top_n=many", "'scoring.top_n' must be int"),
        ("scoring=3", "'scoring' must be a section"),
        ("top_n", "is not key=value"),
    ],
)
def test_bad_config_is_one_clear_line(override, message):
    with pytest.raises(PolicyrankError, match=message) as err:
        load_settings(DEFAULT_CONF, [override])
    assert "\n" not in str(err.value)


def test_missing_conf_file(tmp_path):
    with pytest.raises(PolicyrankError, match="config file not found"):
        load_settings(tmp_path / "absent.yaml")


def test_a_conf_file_is_layered_over_the_local_default(tmp_path):
    conf = tmp_path / "mine.yaml"
    conf.write_text("scoring:\n  top_n: 7\n")
    s = load_settings(conf)
    assert s.scoring.top_n == 7
    assert s.scoring.member_template == load_settings().scoring.member_template  # from the base


def test_cluster_example_is_valid():
    s = load_settings(DEFAULT_CONF.parent / "cluster.example.yaml")
    assert s.spark.extra["spark.task.resource.gpu.amount"] == 0.125
    scoring, teacher = s.inference_for("scoring"), s.inference_for("teacher")
    assert (scoring.task_gpus, scoring.task_cpus) == (0.5, 4)  # the scoring stage's profile
    assert (teacher.task_gpus, teacher.task_cpus) == (1.0, 4)  # the judge's own
    assert teacher.max_length == scoring.max_length == 256  # shared unless overridden
    assert s.world.generate_if_missing is False
    assert s.models_dir and s.reports_dir  # an s3a:// warehouse needs local folders named


def _settings_classes(cls: type = Settings) -> list[type]:
    nested = [f.type for f in dataclasses.fields(cls) if isinstance(f.type, str)]
    found = [cls]
    for name in nested:
        sub = getattr(settings_module, name.split(" ")[0], None)
        if dataclasses.is_dataclass(sub):
            found += _settings_classes(sub)
    return found


def test_defaults_exist_once_in_local_yaml():
    classes = _settings_classes()
    assert len(classes) >= 15
    with_default = [
        f"{c.__name__}.{f.name}"
        for c in classes
        for f in dataclasses.fields(c)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert with_default == [], "values belong in conf/local.yaml"


def test_changing_local_yaml_changes_behaviour(tmp_path, monkeypatch):
    from jobs import maintain

    conf = tmp_path / "local.yaml"
    shutil.copy(DEFAULT_CONF, conf)
    sunday, monday = dt.date(2026, 11, 29), dt.date(2026, 11, 30)
    assert maintain.is_due(load_settings(), sunday) and not maintain.is_due(load_settings(), monday)
    text = conf.read_text()
    assert "  weekday: 6 " in text and "  max_length: 256 " in text
    conf.write_text(
        text.replace("  weekday: 6 ", "  weekday: 0 ").replace(
            "  max_length: 256 ", "  max_length: 64 "
        )
    )
    monkeypatch.setattr(settings_module, "DEFAULT_CONF", conf)
    edited = load_settings()
    assert maintain.is_due(edited, monday) and not maintain.is_due(edited, sunday)
    assert edited.inference_for("teacher").max_length == 64


def test_a_key_missing_from_local_yaml_is_named(tmp_path, monkeypatch):
    conf = tmp_path / "local.yaml"
    conf.write_text(DEFAULT_CONF.read_text().replace("  top_n: 10 ", "  # top_n removed "))
    monkeypatch.setattr(settings_module, "DEFAULT_CONF", conf)
    with pytest.raises(PolicyrankError, match="'scoring.top_n' is missing"):
        load_settings()


def test_a_role_overrides_only_what_it_sets():
    s = load_settings(None, ["inference.token_budget=1024", "scoring.inference.cpu_threads=3"])
    scoring, teacher = s.inference_for("scoring"), s.inference_for("teacher")
    assert scoring.token_budget == teacher.token_budget == 1024
    assert (scoring.cpu_threads, teacher.cpu_threads) == (3, s.inference.cpu_threads)
    assert teacher.max_length == 256 and scoring.max_length == s.inference.max_length
    with pytest.raises(PolicyrankError, match="no inference role 'student'"):
        s.inference_for("student")
