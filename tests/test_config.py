"""Bad configuration fails early with a message that names the thing and the fix."""

import pytest
from hydra.errors import MissingConfigException

from foresight.config import compose
from foresight.training.train import instantiate, train
from tests.helpers import run_script


@pytest.mark.parametrize(
    "override,choices",
    [
        ("option=Z", ["A", "B", "C", "D"]),
        ("model=ltx_99b", ["ltx_2b", "tiny"]),
        ("vlm=qwen9", ["qwen2_5_vl_7b", "tiny"]),
    ],
)
def test_unknown_group_choice_lists_the_choices(override, choices):
    with pytest.raises(MissingConfigException) as err:
        compose([override])
    for choice in choices:
        assert choice in str(err.value)


def test_cli_unknown_option_prints_choices():
    out = run_script("train.py", "option=Z")
    assert out.returncode != 0
    assert "Available options in 'option'" in out.stderr and "\tB" in out.stderr


@pytest.mark.parametrize(
    "override,field,nearest",
    [
        ("data.future_frames=10", "data.future_frames=10", "9 or 17"),
        ("data.height=70", "data.height=70", "64 or 96"),
        ("data.width=100", "data.width=100", "96 or 128"),
    ],
)
def test_bad_window_fails_before_any_model_loads(override, field, nearest, tmp_path):
    # The VLM points at a directory that does not exist: reaching it would raise FileNotFoundError.
    cfg = compose([override, f"vlm.pretrained={tmp_path}/absent", "vlm.twin=null", "logger=none"])
    with pytest.raises(ValueError) as err:
        train(cfg)
    assert field in str(err.value) and nearest in str(err.value)


def test_missing_vlm_directory_names_path_and_expected(tmp_path):
    cfg = compose([f"vlm.pretrained={tmp_path}/qwen", "vlm.twin=null"])
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/qwen"):
        instantiate(cfg.vlm)


@pytest.mark.parametrize(
    "name,target",
    [
        ("optionA", "CleanLatents"),
        ("optionB", "PartialDiffusion"),
        ("optionC", "ImagePath"),
        ("optionD", "TextPath"),
    ],
)
def test_experiments_select_their_option(name, target):
    cfg = compose([f"+experiment={name}"])
    assert cfg.option._target_.endswith(target)
    assert name in cfg.tags and cfg.logger.wandb.group == name  # wandb groups runs by experiment


def test_real_scale_is_one_override_away():
    cfg = compose(["+experiment=optionB", "model=ltx_2b", "vlm=qwen2_5_vl_7b", "trainer=gpu"])
    assert cfg.model.dtype == "bfloat16"  # the release itself: tests/test_releases.py
    assert cfg.vlm.pretrained == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert cfg.trainer.precision == "bf16-mixed"
    assert compose(["vlm=qwen2_5_vl_3b"]).vlm.pretrained == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_experiment_with_and_without_plus_is_one_experiment_and_overrides_its_groups():
    """train.yaml names the group (`experiment: null`): `experiment=optionB` is the form, and
    `+experiment=optionB`, which commands used before, gives the same config; an experiment's values
    win over the groups it follows, and the command line wins over the experiment."""
    from omegaconf import OmegaConf

    def job(overrides):
        cfg = compose(overrides)
        return OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k not in ("hydra", "paths")])
        )

    assert job(["experiment=optionB"]) == job(["+experiment=optionB"])
    assert compose(["experiment=optionB", "option=C"]).option._target_.endswith("ImagePath")
    assert compose(["experiment=optionB", "option.t_star=0.8"]).option.t_star == 0.8
    out = run_script("train.py", "experiment=optionB", "option.t_star=0.8", "--cfg", "job")
    assert out.returncode == 0 and "t_star: 0.8" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("option", ["A", "B", "C", "D", "prefix", "i2v"])
def test_an_option_has_one_name_in_config_class_and_checkpoint(option):
    """conf/option/<name>.yaml builds the class whose `name` is <name>, which checkpoints store as
    `option` (TrainableCheckpoint) and compare groups by."""
    assert instantiate(compose([f"option={option}"]).option).name == option


def test_the_lr_schedule_is_configured_like_the_optimizer(twin_dir):
    """module.scheduler is a partial on the optimizer: changing it in the config changes the schedule
    the module trains with (here no warm-up, and a floor of half the lr at the last step)."""
    from tests.helpers import build

    def lrs(overrides):
        module = build("A", twin_dir, ["trainer.max_steps=4", *overrides])
        opt = module.configure_optimizers()
        sched = opt["lr_scheduler"]["scheduler"]
        seen = []
        for _ in range(5):
            seen.append(opt["optimizer"].param_groups[0]["lr"])
            opt["optimizer"].step()
            sched.step()
        return seen

    default = lrs([])  # linear warm-up over 10 steps: the first step at a tenth of the lr
    assert default[0] == pytest.approx(1e-4)
    changed = lrs(["module.scheduler.warmup_steps=0", "module.scheduler.floor=0.5"])
    assert changed[0] == pytest.approx(1e-3) and changed[4] == pytest.approx(0.5e-3)  # step 4 = max_steps
    constant = build("A", twin_dir, ["~module.scheduler"]).configure_optimizers()
    assert "lr_scheduler" not in constant
