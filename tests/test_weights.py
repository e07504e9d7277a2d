"""Weight files: format recognition, the network a file holds, and every refusal with its
message; the `inspect` command; the readers against the safetensors package."""

from __future__ import annotations

import builtins
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from gsgen.weights import files
from gsgen.weights import schemes
from gsgen.models import densenet
from gsgen.models import preact_resnet
from gsgen.models import resnet


def bit_arrays(depth: int = 50, dtype=np.uint8) -> dict[str, np.ndarray]:
  """A BiT .npz's tensors with the right names and shapes (zeros; shapes are what is read)."""
  shapes = schemes.model_shapes(f"bit_resnet{depth}")
  out = {name: np.zeros(shapes["/".join(map(str, path))], dtype)
         for name, path in preact_resnet.bit_param_map(depth).items()}
  out["resnet/head/conv2d/kernel"] = np.zeros((1, 1, 2048, 3), dtype)
  out["resnet/head/conv2d/bias"] = np.zeros(3, dtype)
  return out


def save(tmp_path, name, arrays) -> str:
  path = str(tmp_path / name)
  with open(path, "wb") as f:
    np.savez(f, **arrays)
  return path


def test_a_bit_npz_is_recognised_with_its_network(tmp_path):
  path = save(tmp_path, "BiT-M-R50x1.npz", bit_arrays())
  found = schemes.identify(path)
  assert (found.format, found.scheme.name, found.units) == ("npz", "bit", (3, 4, 6, 3))
  assert (found.architecture, found.model) == ("BiT ResNet-50", "bit_resnet50")
  schemes.check(path, "bit_resnet50")  # fits
  # The format comes from the bytes, not the name.
  other = tmp_path / "weights.bin"
  other.write_bytes((tmp_path / "BiT-M-R50x1.npz").read_bytes())
  assert schemes.identify(str(other)).format == "npz"


def test_another_depth_is_refused_naming_what_it_holds(tmp_path):
  path = save(tmp_path, "BiT-M-R50x1.npz", bit_arrays())
  with pytest.raises(ValueError, match=r"BiT-M-R50x1.npz \(npz, names of BiT's .npz .*\) holds "
                                       r"BiT ResNet-50 \(which is model 'bit_resnet50'\), not "
                                       r"'bit_resnet101'"):
    schemes.check(path, "bit_resnet101")
  with pytest.raises(ValueError, match=r"holds BiT ResNet-50 .*not 'resnet50'; resnet50 takes "
                                       r"torchvision's \(or timm's\) ResNet files"):
    schemes.check(path, "resnet50")


def test_missing_extra_and_misshapen_tensors_are_refused(tmp_path):
  arrays = bit_arrays()
  del arrays["resnet/block2/unit03/b/group_norm/beta"]
  arrays["resnet/block1/unit01/a/extra/kernel"] = np.zeros(3, np.uint8)
  arrays["resnet/root_block/standardized_conv2d/kernel"] = np.zeros((7, 7, 3, 192), np.uint8)
  path = save(tmp_path, "odd.npz", arrays)
  with pytest.raises(ValueError) as e:
    schemes.check(path, "bit_resnet50")
  message = str(e.value)
  assert message.startswith("odd.npz".join(path.rsplit("odd.npz", 1)))
  assert "does not fit bit_resnet50 (BiT ResNet-50)" in message
  assert "1 expected tensors missing (resnet/block2/unit03/b/group_norm/beta)" in message
  assert "1 tensors bit_resnet50 has no place for (resnet/block1/unit01/a/extra/kernel)" in message
  assert ("1 of another shape (resnet/root_block/standardized_conv2d/kernel (7, 7, 3, 192) "
          "(expected (7, 7, 3, 64)))") in message


def test_torch_layout_shapes_are_reported_in_the_files_layout(tmp_path):
  shapes = schemes.model_shapes("densenet121")
  arrays = {}
  for name, path in densenet.torchvision_param_map().items():
    s = shapes["/".join(map(str, path))]  # HWIO here, OIHW in the file
    arrays[name] = np.zeros((s[3], s[2], s[0], s[1]) if len(s) == 4 else s, np.uint8)
  arrays["features.conv0.weight"] = np.zeros((64, 3, 5, 5), np.uint8)
  path = tmp_path / "densenet.safetensors"
  write_safetensors(path, arrays)
  with pytest.raises(ValueError, match=r"features.conv0.weight \(64, 3, 5, 5\) \(expected "
                                       r"\(64, 3, 7, 7\)\)"):
    schemes.check(str(path), "densenet121")


@pytest.mark.parametrize("blocks,name", [((6, 12, 32, 32), "DenseNet-169"),
                                         ((6, 12, 48, 32), "DenseNet-201")])
def test_other_densenets_are_named_and_refused(tmp_path, blocks, name):
  arrays = {n: np.zeros(1, np.uint8) for n in densenet.torchvision_param_map(blocks)}
  path = save(tmp_path, "d.npz", arrays)
  found = schemes.identify(path)
  assert (found.architecture, found.model) == (name, None)
  with pytest.raises(ValueError, match=f"holds {name} \\(which no gsgen model is\\), not "
                                       f"'densenet121'"):
    schemes.check(path, "densenet121")


def test_resnet_depths_are_told_apart(tmp_path):
  for depth, label in ((18, "ResNet-18"), (50, "ResNet-50"), (101, "ResNet-101")):
    arrays = {n: np.zeros(1, np.uint8) for n in resnet.torchvision_param_map(depth)}
    assert schemes.identify(save(tmp_path, f"r{depth}.npz", arrays)).architecture == label
  # ResNet-34: basic units in ResNet-50's stage layout.
  names = [f"layer{i + 1}.{j}.conv{k}.weight" for i, n in enumerate((3, 4, 6, 3))
           for j in range(n) for k in "12"] + ["conv1.weight"]
  found = schemes.identify(save(tmp_path, "r34.npz", {n: np.zeros(1) for n in names}))
  assert (found.architecture, found.model) == ("ResNet-34", None)


def test_files_of_no_known_network_or_format_are_refused(tmp_path):
  path = save(tmp_path, "cnn.npz", {"features.0.weight": np.zeros(3)})
  with pytest.raises(ValueError, match=r"cnn.npz: a npz file whose tensor names fit no network "
                                       r"gsgen loads: expected the names of BiT's .npz .*found 1 "
                                       r"tensors such as features.0.weight"):
    schemes.identify(path)
  text = tmp_path / "notes.txt"
  text.write_text("not weights at all")
  with pytest.raises(ValueError, match=r"notes.txt: not a weight file gsgen reads: expected "
                                       r"BiT's .npz, a .safetensors file or a PyTorch .pth .*"
                                       r"first bytes are b'not weig'"):
    schemes.identify(str(text))
  with pytest.raises(FileNotFoundError, match="absent.npz not found; place it there "
                                              r"\(nothing is downloaded\)"):
    schemes.identify(str(tmp_path / "absent.npz"))
  with pytest.raises(ValueError, match="no weight file loads into model 'mlp'; models that "
                                       "take pretrained weights: bit_resnet101, bit_resnet50"):
    schemes.check(path, "mlp")


def write_safetensors(path, arrays: dict[str, np.ndarray]) -> None:
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def test_safetensors_reader_matches_the_safetensors_package(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {"a": rng.normal(size=(3, 4)).astype(np.float32),
            "b": rng.normal(size=(5,)).astype(np.float16),
            "c": rng.normal(size=(2, 2)).astype(ml_dtypes.bfloat16),
            "d": np.arange(4, dtype=np.int64)}
  path = tmp_path / "t.safetensors"
  write_safetensors(path, arrays)
  assert files.detect_format(str(path)) == "safetensors"
  assert files.read_shapes(str(path), "safetensors") == {
      "a": (3, 4), "b": (5,), "c": (2, 2), "d": (4,)}
  read = files.read_tensors(str(path), "safetensors", list(arrays))
  for name, value in arrays.items():
    np.testing.assert_array_equal(read[name], value.astype(read[name].dtype))
    assert read[name].dtype == (np.float32 if name != "d" else np.int64)
  damaged = tmp_path / "short.safetensors"
  damaged.write_bytes(path.read_bytes()[:-8])
  with pytest.raises(ValueError, match="short.safetensors: a damaged safetensors file"):
    files.read_tensors(str(damaged), "safetensors", list(arrays))


def test_pth_files_need_torch_and_must_be_state_dicts(tmp_path, monkeypatch):
  import torch  # pylint: disable=g-import-not-at-top
  path = tmp_path / "resnet18.pth"
  torch.save({n: torch.zeros(1) for n in resnet.torchvision_param_map(18)}, path)
  assert schemes.identify(str(path)).model == "resnet18"
  legacy = tmp_path / "legacy.pth"
  torch.save({"conv1.weight": torch.zeros(1)}, legacy, _use_new_zipfile_serialization=False)
  assert files.detect_format(str(legacy)) == "pth"
  assert files.read_shapes(str(legacy), "pth") == {"conv1.weight": (1,)}
  whole = tmp_path / "model.pth"
  torch.save(torch.nn.Linear(2, 2), whole)
  with pytest.raises(ValueError, match=r"model.pth: PyTorch cannot read it as a state dict "
                                       r"of tensors .*save model.state_dict\(\)"):
    schemes.identify(str(whole))
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == "torch":
      raise ImportError("No module named 'torch'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_torch)
  with pytest.raises(ImportError, match=r"resnet18.pth is a PyTorch .pth file, and reading it "
                                        r"needs PyTorch: pip install -e '.\[torch\]' .*or use "
                                        r"the same network's .safetensors file"):
    schemes.identify(str(path))


def test_inspect_prints_the_network_its_size_and_the_config_line(tmp_path):
  path = save(tmp_path, "BiT-M-R101x1.npz", bit_arrays(101))
  out = subprocess.run([sys.executable, "-m", "gsgen.weights", "inspect", path],
                       capture_output=True, text=True, check=True).stdout
  assert "format:       npz, tensor names of BiT's .npz" in out
  assert "architecture: BiT ResNet-101 (3, 4, 23, 3 units per stage)" in out
  # The backbone of tests/test_preact_resnet.py's BACKBONE[101]; the head 2048 * 3 + 3.
  assert "parameters:   42,492,480 loaded into the backbone; 6,147 left out" in out
  assert "fits:         model=bit_resnet101" in out
  assert (f"config:       python -m gsgen.main --config=benchmark:dataset=mpi3d,split="
          f"extrapolation,model=bit_resnet101,preset=transfer --config.init_from.weights="
          f"{path} ") in out
  bad = subprocess.run([sys.executable, "-m", "gsgen.weights", "inspect",
                        str(tmp_path / "none.npz")], capture_output=True, text=True)
  assert bad.returncode == 1 and "none.npz not found" in bad.stderr
