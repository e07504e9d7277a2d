"""Round trips through the TFDS builders: prepare on a small grid, read back."""

import json
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import official_files

from gsgen import datasets
from gsgen import splits
from gsgen.datasets import loader
from gsgen.datasets import prepare
from gsgen.datasets import procedural
from gsgen import specs

GRIDS = {
    "dsprites": specs.DSPRITES.subgrid((3, 2, 3, 4, 4)),
    "shapes3d": specs.SHAPES3D.subgrid((2, 2, 2, 2, 4, 3)),
    "mpi3d": specs.MPI3D.subgrid((2, 6, 2, 2, 2, 2, 3)),
}


def _fake_images(grid, seed=0):
  """Random images that differ per record, so order mistakes show."""
  rng = np.random.default_rng(seed)
  if grid.name == "dsprites":
    return rng.integers(0, 2, (grid.num_images, 64, 64), np.uint8)  # official 0/1
  return rng.integers(0, 256, (grid.num_images,) + grid.image_shape, np.uint8)


def _write_official(grid, folder):
  """Writes the official file of `grid` in its published format; returns its images."""
  images = _fake_images(grid)
  idx = grid.all_factor_indices()
  if grid.name == "dsprites":
    classes = np.concatenate([np.zeros((len(idx), 1), np.int64), idx], 1)
    values = np.concatenate([np.ones((len(idx), 1)), grid.values(idx)], 1)
    np.savez_compressed(folder / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
                        imgs=images, latents_classes=classes, latents_values=values)
    return images[..., None] * 255
  if grid.name == "shapes3d":
    with h5py.File(folder / "3dshapes.h5", "w") as f:
      f["images"] = images
      f["labels"] = grid.values(idx) + 1e-12  # the published labels carry float noise
    return images
  np.savez(folder / "mpi3d_real.npz", images=images)
  return images


def _fresh_process_read(data_dir, names):
  """Reads records back with tfds.data_source in a process that never imported gsgen."""
  code = f"""
import json, sys
import numpy as np
import tensorflow_datasets as tfds
assert not any(m.startswith("gsgen") for m in sys.modules)
out = {{}}
for name in {names!r}:
  ds = tfds.data_source(name, data_dir={str(data_dir)!r})
  part = ds["train"]
  rows = [part[i] for i in range(len(part))]
  out[name] = {{
      "len": len(part),
      "index": [int(r["index"]) for r in rows],
      "labels": {{k: [int(r[k]) for r in rows] for k in rows[0] if k.startswith("label_")}},
      "checksum": [int(r["image"].astype(np.int64).sum()) for r in rows],
      "shape": list(rows[0]["image"].shape),
      "gsgen_imported": any(m.startswith("gsgen") for m in sys.modules),
  }}
print(json.dumps(out))
"""
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd="/")
  return json.loads(result.stdout.strip().splitlines()[-1])


def _check_round_trip(read, grid, images):
  assert read["len"] == grid.num_images
  assert read["index"] == list(range(grid.num_images))  # record i is flat index i
  idx = grid.all_factor_indices()
  for j, name in enumerate(grid.factor_names):
    assert read["labels"][f"label_{name}"] == idx[:, j].tolist()
  assert read["shape"] == list(grid.image_shape)
  expected = images.reshape(len(images), -1).astype(np.int64).sum(1)
  assert read["checksum"] == expected.tolist()
  assert not read["gsgen_imported"]


def test_procedural_and_official_round_trips(tmp_path):
  data_dir, official_dir = tmp_path / "tfds", tmp_path / "official"
  official_dir.mkdir()
  expected = {}
  for dataset, grid in GRIDS.items():
    prepare.prepare(dataset, "procedural", data_dir, grid_sizes=grid.sizes)
    expected[f"gsgen_{dataset}/procedural"] = (
        grid, procedural.render_numpy(grid, np.arange(grid.num_images)))
    official_images = _write_official(grid, official_dir)
    source = "real" if dataset == "mpi3d" else "official"
    prepare.prepare(dataset, source, data_dir, official_dir, grid_sizes=grid.sizes)
    expected[f"gsgen_{dataset}/{source}"] = (grid, official_images)
  read = _fresh_process_read(data_dir, list(expected))
  for name, (grid, images) in expected.items():
    _check_round_trip(read[name], grid, images)

  # gsgen.datasets.load gives the same records with random access.
  for dataset, grid in GRIDS.items():
    ds = datasets.load(dataset, "procedural", data_dir=data_dir)
    assert ds.spec.sizes == grid.sizes and ds.data_source == "procedural"
    np.testing.assert_array_equal(ds.factor_indices, grid.all_factor_indices())
    pick = np.array([5, 0, grid.num_images - 1, 5])
    np.testing.assert_array_equal(ds.images[pick], procedural.render_numpy(grid, pick))
    official = datasets.load(dataset, "official", data_dir=data_dir)
    assert official.data_source == "official"
    np.testing.assert_array_equal(official.images[pick], expected[
        f"gsgen_{dataset}/{'real' if dataset == 'mpi3d' else 'official'}"][1][pick])


def test_benchmark_split_round_trip(tmp_path):
  grid = GRIDS["shapes3d"]
  data_dir, official_dir = tmp_path / "tfds", tmp_path / "official"
  official_dir.mkdir()
  images = _fake_images(grid, seed=3)
  rng = np.random.default_rng(0)
  # The published files are not in grid order.
  written = {part: rng.permutation(splits.indices(grid, "extrapolation", part))
             for part in ("train", "test")}
  official_files.write_split(official_dir, "shapes3d", "extrapolation", grid, images, written)
  prepare.prepare("shapes3d", "benchmark_extrapolation", data_dir, official_dir,
                  grid_sizes=grid.sizes)
  for part, flat in written.items():
    ds = datasets.load("shapes3d", "benchmark_extrapolation", data_dir=data_dir, part=part)
    np.testing.assert_array_equal(grid.flat_index(ds.factor_indices), flat)
    np.testing.assert_array_equal(ds.images[np.arange(len(ds))], images[flat])
    assert ds.data_source == "official"


def test_load_names_the_prepare_command(tmp_path):
  with pytest.raises(FileNotFoundError, match="python -m gsgen.datasets.prepare --dataset "
                                              "mpi3d --source toy"):
    datasets.load("mpi3d", "toy", data_dir=tmp_path)


def test_missing_official_file_fails_before_writing(tmp_path):
  with pytest.raises(FileNotFoundError, match="3dshapes.h5"):
    prepare.prepare("shapes3d", "official", tmp_path / "tfds", tmp_path)
  assert prepare.main(["--dataset", "shapes3d", "--source", "official",
                       "--data_dir", str(tmp_path / "tfds"),
                       "--official_dir", str(tmp_path)]) == 2


def test_a_prepared_reduced_grid_is_not_mistaken_for_the_full_one(tmp_path):
  prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=(3, 2, 2, 2, 2))
  with pytest.raises(ValueError, match="already holds grid"):
    prepare.prepare("dsprites", "procedural", tmp_path)


def test_prepare_refuses_a_stray_pixel_the_opening_sample_missed(tmp_path):
  grid = specs.DSPRITES.subgrid((3, 2, 4, 4, 4))  # 384 images, 64 sampled on opening
  sampled = set(np.linspace(0, grid.num_images - 1, 64).astype(np.int64).tolist())
  row = next(r for r in range(grid.num_images) if r not in sampled)
  official_dir = tmp_path / "official"
  official_dir.mkdir()
  images = _fake_images(grid)
  images[row, 30, 31] = 7  # 7 * 255 wraps around to 249 if scaled unchecked
  idx = grid.all_factor_indices()
  path = official_dir / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
  np.savez(path, imgs=images,
           latents_classes=np.concatenate([np.zeros((len(idx), 1), np.int64), idx], 1))
  with pytest.raises(ValueError, match=f"{path}: imgs: record {row} holds pixel value 7"):
    prepare.prepare("dsprites", "official", tmp_path / "tfds", official_dir,
                    grid_sizes=grid.sizes)
  with pytest.raises(FileNotFoundError):  # nothing half-written is taken for prepared data
    datasets.load("dsprites", "official", data_dir=tmp_path / "tfds")
  assert prepare.main(["--dataset", "dsprites", "--source", "official",
                       "--data_dir", str(tmp_path / "tfds"), "--official_dir",
                       str(official_dir), "--grid", "3,2,4,4,4"]) == 2


def _read_everything(data_dir):
  recs = datasets.load("dsprites", "procedural:stored", data_dir=data_dir)
  return recs.images[:]


@pytest.mark.parametrize("offset", [300, 2000])  # a chunk read on opening, one read later
def test_a_damaged_prepared_file_names_the_dataset_folder_and_fix(tmp_path, offset):
  sizes = (3, 2, 2, 2, 2)
  folder = pathlib.Path(prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=sizes))
  (shard,) = folder.glob("*.array_record-*")
  good = _read_everything(tmp_path)
  with open(shard, "r+b") as f:
    f.seek(offset)
    f.write(b"\xff" * 64)
  with pytest.raises(loader.PreparedDataError) as e:
    _read_everything(tmp_path)
  message = str(e.value)
  assert "dsprites (procedural:stored)" in message and str(folder) in message
  assert "Riegeli" in message  # the underlying cause stays visible
  fix = (f"prepare it again: delete {folder} and run: python -m gsgen.datasets.prepare "
         f"--dataset dsprites --source procedural --data_dir {tmp_path} --grid 3,2,2,2,2")
  assert fix in message.replace("Prepare it again", "prepare it again")
  # The fix works.
  shutil.rmtree(folder)
  prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=sizes)
  np.testing.assert_array_equal(_read_everything(tmp_path), good)


def test_preparing_says_preparing_not_downloading(tmp_path, capsys):
  prepare.prepare("dsprites", "procedural", tmp_path, grid_sizes=GRIDS["dsprites"].sizes)
  out = capsys.readouterr().out
  assert "Preparing dsprites (procedural, nothing is downloaded)" in out
  assert "Download" not in out and "downloaded and prepared" not in out


def _write_shards(folder, images_per_shard, compressed=True):
  """array_record shards of tf.train.Examples with an ``image`` (and a label) per record."""
  from array_record.python import array_record_module
  from tensorflow_datasets.proto import tf_example_pb2
  import zlib
  paths = []
  for s, images in enumerate(images_per_shard):
    path = str(folder / f"x-train.array_record-{s:05d}-of-{len(images_per_shard):05d}")
    writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
    for i, image in enumerate(images):
      example = tf_example_pb2.Example()
      data = image.tobytes()
      example.features.feature["image"].bytes_list.value.append(
          zlib.compress(data) if compressed else data)
      example.features.feature["label"].int64_list.value.append(i)
      writer.write(example.SerializeToString())
    writer.close()
    paths.append(path)
  return paths


def _info(paths, lengths, shape, encoding):
  import types
  import tensorflow_datasets as tfds
  image = tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=encoding)
  split = types.SimpleNamespace(filepaths=[pathlib.Path(p) for p in paths],
                                shard_lengths=list(lengths))
  return types.SimpleNamespace(features={"image": image}, splits={"train": split})


@pytest.mark.parametrize("encoding", ["zlib", "none"])
def test_images_are_read_across_shards_in_the_asked_order(tmp_path, encoding):
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 4, 3, 2), np.uint8)
  paths = _write_shards(tmp_path, [images[:3], images[3:]], compressed=encoding == "zlib")
  reader = loader._Images(_info(paths, (3, 4), (4, 3, 2), tfds.features.Encoding(encoding)),
                          "train")
  order = np.array([6, 0, 3, 2, 6, 5])
  np.testing.assert_array_equal(reader.read(order), images[order])
  assert reader.read([]).shape == (0, 4, 3, 2)
  with pytest.raises(ValueError, match=r"record ids must lie in \[0, 7\)"):
    reader.read([7])


def test_an_image_of_the_wrong_size_names_its_record(tmp_path):
  import tensorflow_datasets as tfds
  images = np.zeros((3, 4, 4, 1), np.uint8)
  paths = _write_shards(tmp_path, [images])
  reader = loader._Images(_info(paths, (3,), (4, 3, 1), tfds.features.Encoding.ZLIB), "train")
  with pytest.raises(ValueError, match=r"record 2 holds 16 image bytes, not the 12"):
    reader.read([2])


def test_prepared_images_read_fast_equal_tfds_decoding(tmp_path):
  grid = GRIDS["shapes3d"]
  prepare.prepare("shapes3d", "procedural", tmp_path, grid_sizes=grid.sizes)
  raw = datasets.load("shapes3d", "procedural", data_dir=tmp_path).images.raw
  assert raw._images is not None  # the builders' uint8 zlib tensors take the fast path
  ids = np.arange(len(raw))
  np.testing.assert_array_equal(raw.read_rows(ids),
                                np.stack([r["image"] for r in raw.rows(ids)]))
