import pytest

from jobs.config.settings import DEFAULT_CONF, load_settings
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
    assert (s.scoring.task_gpus, s.scoring.task_cpus) == (0.5, 4)  # the scoring stage's profile
    assert s.world.generate_if_missing is False
