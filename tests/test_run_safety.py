"""Run safety: one run per workdir, the same config or a refusal, results that keep their
fields, durable logs, only finite states saved, and every mistake caught before training."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from absl import flags

from gsgen import checkpoint
from gsgen import main as main_lib
from gsgen import results as results_lib
from gsgen import train
from gsgen import workdir as workdir_lib
from gsgen.configs import benchmark

SMOKE = "dataset=dsprites,split=random,model=cnn,preset=smoke"


def get_config(arg=SMOKE):
  config = benchmark.get_config(arg)
  config.progress = False
  return config


def rows(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def launch(workdir, *overrides, arg=SMOKE):
  """Starts ``python -m gsgen.main`` in a child process (8 fake devices, as here)."""
  argv = [sys.executable, "-m", "gsgen.main", f"--config=benchmark:{arg}",
          "--config.progress=False", f"--workdir={workdir}", *overrides]
  return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged(path, lines):
  """Whether the metric log at ``path`` has at least ``lines`` lines."""
  return path.exists() and path.read_text().count("\n") >= lines


def final_state(workdir):
  """``(step, state)`` of the newest checkpoint in ``workdir``."""
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), 1, create=False)
  step = ckpt.latest_step()
  state, _ = ckpt.read(step)
  ckpt.close()
  return step, state


# Long enough that a signal lands mid-run on a loaded machine (a smoke step takes about
# 0.15 s on 2 cores with 8 fake devices), short enough for seconds per run.
INTERRUPTED = ("--config.train.steps=40", "--config.train.log_every=1",
               "--config.train.checkpoint_every=1000")
GRACE_SECONDS = 30  # what a scheduler gives (Kubernetes' default, SLURM's KillWait)


def interrupted_config():
  config = get_config()
  config.train.steps, config.train.log_every, config.train.checkpoint_every = 40, 1, 1000
  return config


def wait_for(predicate, proc, timeout=300):
  start = time.time()
  while not predicate():
    if proc.poll() is not None:
      raise AssertionError(f"the run ended early: {proc.communicate()}")
    if time.time() - start > timeout:
      raise AssertionError("timed out")
    time.sleep(0.2)


def test_a_second_run_on_a_live_workdir_is_refused_and_the_first_is_unharmed(tmp_path):
  first = launch(tmp_path, "--config.train.steps=120", "--config.train.log_every=1",
                 "--config.train.checkpoint_every=100")
  metrics = tmp_path / "metrics.jsonl"
  wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 2, first)
  other = get_config(SMOKE.replace("preset", "seed=1,preset"))
  with pytest.raises(workdir_lib.RunLockedError,
                     match=rf"in use by a live run \(pid {first.pid} on host .*, started"):
    train.train_and_evaluate(other, str(tmp_path))
  out, err = first.communicate(timeout=600)
  assert first.returncode == 0, err
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["seed"] == 0 and results["steps"] == 120
  assert [r["step"] for r in rows(tmp_path)] == list(range(1, 121))


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
  (tmp_path / "run.lock").write_text("pid 999999 on host gone, started long ago")
  results = train.train_and_evaluate(get_config(), str(tmp_path))
  assert results["steps"] == 4
  assert (tmp_path / "run.lock").read_text() == ""  # released at the end


def test_a_changed_training_config_is_refused_naming_the_fields(tmp_path):
  config = get_config()
  assert train.train_and_evaluate(config, str(tmp_path), stop_after_step=2) is None
  changed = get_config()
  changed.optim.learning_rate = 1e-2
  changed.train.batch_size = 32
  changed.eval.batch_size = 128  # how the scores are computed: not a training field
  with pytest.raises(results_lib.ConfigChangedError,
                     match=r"trained to step 2 with another config \(optim.learning_rate: "
                           r"0.001 -> 0.01; train.batch_size: 64 -> 32\)"):
    train.train_and_evaluate(changed, str(tmp_path))
  assert not (tmp_path / "results.json").exists()
  assert json.loads((tmp_path / "config.json").read_text())["optim"]["learning_rate"] == 1e-3
  # The same config resumes, with other evaluation settings.
  same = get_config()
  same.eval.batch_size = 128
  assert train.train_and_evaluate(same, str(tmp_path))["steps"] == 4


def test_more_steps_only_on_purpose_and_recorded(tmp_path):
  train.train_and_evaluate(get_config(), str(tmp_path))
  longer = get_config()
  longer.train.steps = 6
  with pytest.raises(results_lib.ConfigChangedError, match=r"train.steps: 4 -> 6"):
    train.train_and_evaluate(longer, str(tmp_path))
  results = train.train_and_evaluate(longer, str(tmp_path), accept_config_changes=True)
  assert results["steps"] == 6
  assert results["config_changes"][0]["step"] == 4
  assert results["config_changes"][0]["fields"] == {"train.steps": [4, 6]}
  assert [r["step"] for r in rows(tmp_path)] == [2, 4, 6]


def test_rerunning_a_finished_run_keeps_every_field(tmp_path):
  first = train.train_and_evaluate(get_config(), str(tmp_path))
  text = (tmp_path / "results.json").read_text()
  again = train.train_and_evaluate(get_config(), str(tmp_path))
  assert again == json.loads(text) and (tmp_path / "results.json").read_text() == text
  assert first["train"]["final_loss"] is not None
  assert first["train"]["images_per_second"] is not None


def test_a_resume_after_a_kill_during_evaluation_keeps_every_field(tmp_path, monkeypatch):
  config = get_config()
  whole = train.train_and_evaluate(config, str(tmp_path / "whole"))

  def killed(*args, **kwargs):
    raise KeyboardInterrupt  # what a kill in the middle of the evaluation leaves behind

  with monkeypatch.context() as m:
    m.setattr(train.evaluate, "run", killed)
    with pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(config, str(tmp_path / "parts"))
  assert not (tmp_path / "parts" / "results.json").exists()
  resumed = train.train_and_evaluate(config, str(tmp_path / "parts"))
  assert resumed["train"]["final_loss"] == whole["train"]["final_loss"]
  assert resumed["train"]["images_per_second"] == rows(tmp_path / "parts")[-1][
      "images_per_second"]
  assert resumed["test"] == whole["test"]
  for key in set(whole) - {"train"}:
    assert resumed[key] == whole[key], key


def test_a_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
  config = get_config()
  train.train_and_evaluate(config, str(tmp_path), stop_after_step=2)
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 3, "stage": "tra')  # a full disk cut the line short
  with caplog.at_level(logging.WARNING):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert any("metrics.jsonl: dropped a torn last line" in r.getMessage() for r in caplog.records)
  assert [r["step"] for r in rows(tmp_path)] == [2, 4]
  assert results["steps"] == 4


def test_tensorboard_events_survive_a_sigkill(tmp_path):
  run = launch(tmp_path, "--config.train.steps=100000", "--config.train.log_every=1",
               "--config.train.checkpoint_every=1000")
  wait_for(lambda: (tmp_path / "metrics.jsonl").exists()
           and (tmp_path / "metrics.jsonl").read_text().count("\n") >= 3, run)
  run.send_signal(signal.SIGKILL)
  run.wait()
  events = list((tmp_path / "tensorboard").iterdir())
  assert events and b"train/loss" in events[0].read_bytes()


def test_a_diverging_run_saves_nothing_non_finite_and_the_advised_rerun_succeeds(tmp_path):
  config = get_config()
  # SGD with a warm-up from 0: step 1 leaves the weights as they are, step 2 blows them up.
  config.optim.update(name="sgd", schedule="warmup_cosine", warmup_steps=2, learning_rate=2e30)
  config.train.checkpoint_every = 1
  with pytest.raises(FloatingPointError, match=r"at step 2; nothing from it was saved.*the "
                                               r"last good checkpoint is step 1: rerun"):
    train.train_and_evaluate(config, str(tmp_path))
  saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == ["1"]
  config.optim.learning_rate = 1e-3
  with pytest.raises(results_lib.ConfigChangedError, match="optim.learning_rate"):
    train.train_and_evaluate(config, str(tmp_path))
  results = train.train_and_evaluate(config, str(tmp_path), accept_config_changes=True)
  assert results["steps"] == 4 and results["test"]["rsquared"] is not None
  assert results["config_changes"][0]["fields"]["optim.learning_rate"] == [2e30, 1e-3]


@pytest.mark.parametrize("field,value,message", [
    ("eval.batch_size", 60, r"config.eval.batch_size \(60\) must be a multiple of the number "
                            r"of devices \(8\)"),
    ("train.batch_size", 0, r"config.train.batch_size must be an integer >= 1; got 0"),
    ("train.checkpoint_every", 0, r"config.train.checkpoint_every must be an integer >= 1"),
    ("train.log_every", -1, r"config.train.log_every must be an integer >= 1"),
    ("optim.name", "adamx", r"config.optim.name"),
    ("init_from.workdir", "/nonexistent/run", r"config.init_from.workdir"),
])
def test_every_mistake_fails_before_anything_is_created(tmp_path, field, value, message):
  config = get_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_seed_that_is_not_a_number_names_the_field():
  with pytest.raises(ValueError, match="seed must be an integer; got seed='one'"):
    benchmark.get_config("seed=one")


def test_an_unwritable_checkpoint_folder_is_found_at_start(tmp_path):
  (tmp_path / "checkpoints").write_text("a file where the folder should be")
  with pytest.raises(PermissionError, match="cannot write to .*checkpoints"):
    train.train_and_evaluate(get_config(), str(tmp_path))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "run.lock"]


def test_the_launcher_prints_user_errors_without_a_traceback(tmp_path):
  for flag, message in (
      ("--config.train.batch_size=0", "error: config.train.batch_size must be an integer >= 1; "
                                      "got 0. (--verbosity=0 shows the traceback)"),
      ("--config.train.step=10", "error: --config.train.step: config.train has no field "
                                 "'step'; did you mean 'steps'? its fields: batch_size, "
                                 "checkpoint_every, log_every, steps.")):
    proc = launch(tmp_path / "run", flag)
    out, err = proc.communicate(timeout=300)
    assert (proc.returncode, err.strip(), out) == (1, message, "")
    assert not (tmp_path / "run").exists()


# Every mistake of the command line: one line on stderr naming the field and what it could
# be, exit status 1. (Mistakes found once the config is complete are in the list above.)
MISTAKES = [
    (["--config=benchmark:preset=smoke", "--config.train.step=10"],
     "--config.train.step: config.train has no field 'step'; did you mean 'steps'?"),
    (["--config=benchmark:preset=CPU"],
     "--config: unknown preset 'CPU'; choose one of cpu, paper, smoke, transfer."),
    (["--config=benchmark:modle=cnn"],
     "--config: bad config argument 'modle=cnn': expected key=value with key one of dataset, "),
    (["--config=benchmark:seed=one"], "--config: seed must be an integer; got seed='one'."),
    (["--config=benchmark", "--config.trian.steps=3"],
     "--config.trian.steps: config has no field 'trian'; did you mean 'train'? its fields: "),
    (["--config=benchmark", "--config.optim.learning_rat=3"],
     "--config.optim.learning_rat: config.optim has no field 'learning_rat'; did you mean "
     "'learning_rate'?"),
    (["--config=benchmark", "--config.readout.optim.nme=sgd"],
     "--config.readout.optim.nme: config.readout.optim has no field 'nme'; did you mean "
     "'name'?"),
    (["--config=benchmark", "--config.train.steps=abc"],
     "--config.train.steps=abc: expected an integer (the default is 3000)."),
    (["--config=benchmark", "--config.optim.learning_rate=fast"],
     "--config.optim.learning_rate=fast: expected a number (the default is 0.001)."),
    (["--config=benchmark", "--config.progress=maybe"],
     "--config.progress=maybe: expected true or false (the default is True)."),
    (["--config=benchmark", "--config.optim=adam"],
     "--config.optim is a section; set one of its fields: optim.decay_at, "),
    (["--config=benchmark", "--config.seed.x=1"],
     "--config.seed.x: config.seed is a value, not a section; set config.seed=VALUE."),
    (["--config=benchmrk:preset=smoke"], "no packaged config 'benchmrk'; choose one of benchmark"),
    (["--config=nofile.py"], "--config=nofile.py: no config file 'nofile.py'; use a packaged"),
    (["--config=benchmark", "--workdirr=x"],
     "Unknown command line flag 'workdirr'. Did you mean: workdir ?"),
]


@pytest.mark.parametrize("argv,message", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_every_command_line_mistake_is_one_line_and_exit_status_1(argv, message, capsys,
                                                                   monkeypatch):
  flags.FLAGS.unparse_flags()
  argv = ["gsgen.main", *argv, "--workdir=/nonexistent/run"]
  monkeypatch.setattr(sys, "argv", argv)  # parse_flags sets it, as absl's parsing reads it
  with pytest.raises(SystemExit) as exit_:
    main_lib.parse_flags(argv)
  err = capsys.readouterr().err
  assert exit_.value.code == 1
  assert err.count("\n") == 1 and err.startswith("error: " + message), err



def test_sigterm_saves_the_step_reached_and_the_resumed_run_equals_an_uninterrupted_one(
    tmp_path):
  run = launch(tmp_path / "parts", *INTERRUPTED)
  wait_for(lambda: logged(tmp_path / "parts" / "metrics.jsonl", 3), run)
  sent = time.time()
  run.send_signal(signal.SIGTERM)
  out, err = run.communicate(timeout=GRACE_SECONDS)
  assert time.time() - sent < GRACE_SECONDS
  assert run.returncode == 143, err  # 128 + SIGTERM: schedulers requeue on it
  assert "Traceback" not in err and not out
  [line] = [l for l in err.splitlines() if "stopped by" in l]
  found = re.fullmatch(r"stopped by SIGTERM: saved a checkpoint of step (\d+) of 40; resume "
                       r"with: python -m gsgen\.main (.*)", line)
  assert found, line
  step = int(found[1])
  assert 3 <= step < 40 and f"--workdir={tmp_path / 'parts'}" in found[2]
  assert final_state(tmp_path / "parts")[0] == step  # checkpoint_every=1000: saved on the signal
  assert rows(tmp_path / "parts")[-1]["step"] == step
  resumed = train.train_and_evaluate(interrupted_config(), str(tmp_path / "parts"))
  whole = train.train_and_evaluate(interrupted_config(), str(tmp_path / "whole"))
  (step_a, state_a), (step_b, state_b) = (final_state(tmp_path / "parts"),
                                          final_state(tmp_path / "whole"))
  assert step_a == step_b == 40
  jax.tree.map(np.testing.assert_array_equal, state_a, state_b)
  assert resumed["test"] == whole["test"]
  assert [r["loss"] for r in rows(tmp_path / "parts")] == [r["loss"] for r in
                                                         rows(tmp_path / "whole")]


def test_sigint_during_training_saves_and_a_second_signal_stops_at_once(tmp_path):
  run = launch(tmp_path, "--config.train.steps=100000", "--config.train.log_every=1",
               "--config.train.checkpoint_every=1000")
  wait_for(lambda: logged(tmp_path / "metrics.jsonl", 2), run)
  run.send_signal(signal.SIGINT)
  out, err = run.communicate(timeout=GRACE_SECONDS)
  assert run.returncode == 130 and "Traceback" not in err, err
  assert re.search(r"stopped by SIGINT: saved a checkpoint of step \d+ of 100000; resume", err)
  # A second signal while the first is being handled acts as without the handlers: SIGTERM
  # ends the process at once, SIGINT raises KeyboardInterrupt.
  script = """if True:
      import os, signal, sys, time
      from gsgen import workdir
      signum = getattr(signal, sys.argv[1])
      # A fresh interpreter's handlers, whatever this test's process passed down (a signal
      # it ignores stays ignored in its children).
      signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                    else signal.SIG_DFL)
      with workdir.stop_signals() as stop:
        os.kill(os.getpid(), signum)
        time.sleep(0.2)
        print("first", stop.signum, flush=True)
        try:
          os.kill(os.getpid(), signum)
          time.sleep(30)
        except KeyboardInterrupt:
          print("second: KeyboardInterrupt", flush=True)
      print("handlers restored", signal.getsignal(signum) in (signal.SIG_DFL,
                                                               signal.default_int_handler))
      """
  for name, code, out in (("SIGTERM", -signal.SIGTERM, "first 15\n"),
                          ("SIGINT", 0, "first 2\nsecond: KeyboardInterrupt\n"
                                        "handlers restored True\n")):
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (code, out), proc.stderr
    assert time.time() - start < 20


def test_a_signal_during_the_evaluation_stops_at_once_naming_the_saved_last_step():
  stop = workdir_lib.StopRequest()
  stop.training_saved(40, 40)  # everything trained is on disk
  with pytest.raises(workdir_lib.Interrupted, match="stopped by SIGTERM during the evaluation; "
                                                   "training is saved to its last step, 40") as e:
    stop._handle(signal.SIGTERM, None)  # pylint: disable=protected-access
  assert e.value.exit_status == 143 and e.value.evaluating
