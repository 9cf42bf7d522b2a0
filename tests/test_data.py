"""Data modules on tiny files in the real formats: splits, ranges, binarisation, bad files."""

import functools
import http.server
import shutil
import threading
import time

import pytest
import scipy.io
import torch

from vae_lightning.data import FreyFaceDataModule, MNISTDataModule
from vae_lightning.data.files import default_cache_dir
from vae_lightning.data.loader import EpochOrder, TensorBatchLoader
from vae_lightning.errors import DataError


def mnist(tiny_data, tmp_path, **kwargs):
    root, checksums = tiny_data
    options = {"checksums": checksums["mnist"], "val_size": 50, "download": False}
    return MNISTDataModule(root, tmp_path / "cache", **{**options, **kwargs})


def frey(tiny_data, tmp_path, **kwargs):
    root, checksums = tiny_data
    options = {"checksums": checksums["frey_face"], "val_size": 20, "test_size": 20}
    return FreyFaceDataModule(root, tmp_path / "cache", **{**options, "download": False, **kwargs})


def test_a_datamodule_made_in_python_takes_the_papers_minibatch_and_binarisation(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    dm = MNISTDataModule()
    assert dm.data_dir == tmp_path / "data" and dm.cache_dir == default_cache_dir()
    assert (dm.batch_size, dm.eval_batch_size, dm.binarize) == (100, 1000, "dynamic")
    assert (dm.split_seed, dm.seed, dm.download) == (0, 0, True)
    assert FreyFaceDataModule().binarize == "none"  # grey levels, for the Gaussian decoder


def test_mnist_splits_ranges_and_labels(tiny_data, tmp_path):
    dm = mnist(tiny_data, tmp_path, binarize="none")
    dm.prepare_data()
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 250, "val": 50, "test": 100}
    for split, x in dm.splits.items():
        assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1
        assert len(dm.labels[split]) == len(x)
    train_and_val = torch.cat([dm.splits["train"], dm.splits["val"]]).flatten(1)
    assert len(torch.unique(train_and_val, dim=0)) == 300  # disjoint
    # Unpacked into the cache, not into the data folder.
    assert (tmp_path / "cache/MNIST/raw/train-images-idx3-ubyte").is_file()
    assert not (tiny_data[0] / "MNIST/raw/train-images-idx3-ubyte").exists()


def test_files_read_in_a_thread_give_setup_the_same_splits(tiny_data, tmp_path, monkeypatch):
    reference = mnist(tiny_data, tmp_path)
    reference.setup()
    threads = []
    dm = mnist(tiny_data, tmp_path)
    load = dm.load
    monkeypatch.setattr(dm, "load", lambda: threads.append(threading.current_thread()) or load())
    dm.start_loading()
    dm.start_loading()  # once only
    dm.setup()
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert threads[0].name.startswith("load-data")
    for split, x in reference.splits.items():
        assert torch.equal(dm.splits[split], x) and torch.equal(
            dm.labels[split], reference.labels[split]
        )
    dm.setup()  # loaded: nothing is read again
    dm.start_loading()
    assert len(threads) == 1


def test_starting_to_read_the_files_does_not_wait_for_them(tiny_data, tmp_path):
    dm, read = mnist(tiny_data, tmp_path), threading.Event()
    load = dm.load
    dm.load = lambda: read.wait(timeout=30) and load()
    started = time.perf_counter()
    dm.start_loading()
    assert time.perf_counter() - started < 10  # returned while the files wait to be read
    read.set()
    dm.setup()
    assert len(dm.splits["train"]) == 250


def test_an_error_reading_the_files_in_a_thread_is_raised_by_setup(tiny_data, tmp_path):
    dm = mnist(tiny_data, tmp_path)

    def unreadable():
        raise DataError("cannot read train-images-idx3-ubyte")

    dm.load = unreadable
    dm.start_loading()
    with pytest.raises(DataError, match="cannot read"):
        dm.setup()
    assert dm.splits == {}


def test_split_is_fixed_by_split_seed(tiny_data, tmp_path):
    a, b = mnist(tiny_data, tmp_path, seed=1), mnist(tiny_data, tmp_path, seed=2)
    c = mnist(tiny_data, tmp_path, split_seed=5)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["val"], b.splits["val"])
    assert not torch.equal(a.splits["val"], c.splits["val"])


def test_binarisation_modes(tiny_data, tmp_path):
    grey, static, dynamic = (
        mnist(tiny_data, tmp_path, binarize=m) for m in ("none", "static", "dynamic")
    )
    for dm in (grey, static, dynamic):
        dm.setup()
    is_binary = lambda x: bool(((x == 0) | (x == 1)).all())  # noqa: E731
    assert not is_binary(grey.splits["train"])
    assert all(is_binary(static.splits[s]) for s in ("train", "val", "test"))
    # dynamic: train stays grey (drawn afresh per batch); val/test are one fixed draw.
    assert not is_binary(dynamic.splits["train"]) and is_binary(dynamic.splits["test"])
    assert torch.equal(dynamic.splits["test"], static.splits["test"])

    class Training:
        training = True

    dynamic.trainer = Training()
    batch = dynamic.splits["train"][:20]
    first, second = (dynamic.on_after_batch_transfer(batch, 0) for _ in range(2))
    assert is_binary(first) and not torch.equal(first, second)
    # E[x_binary] = grey level: 400 draws, std of each mean <= 0.025, tolerance 6 sigma.
    torch.manual_seed(0)
    draws = torch.stack([dynamic.on_after_batch_transfer(batch, 0) for _ in range(400)])
    torch.testing.assert_close(draws.mean(0), batch, atol=0.15, rtol=0)


def test_frey_face_splits_and_shape(tiny_data, tmp_path):
    dm = frey(tiny_data, tmp_path)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 80, "val": 20, "test": 20}
    assert dm.splits["train"].shape[1:] == (1, 28, 20)
    everything = torch.cat(list(dm.splits.values()))
    assert everything.min() >= 8 / 255 - 1e-6 and everything.max() <= 238 / 255 + 1e-6
    assert len(torch.unique(everything.flatten(1), dim=0)) == 120  # disjoint splits


def frame_numbers(tiny_data, images):
    """The frame (column of the MAT-file's ff) each image of a split is."""
    ff = torch.from_numpy(scipy.io.loadmat(tiny_data[0] / "frey_rawface.mat")["ff"].T.copy())
    frames = ff.float().div(255).reshape(len(ff), -1)
    return sorted(torch.cdist(images.flatten(1), frames).argmin(1).tolist())


def test_frey_face_split_block_holds_out_runs_of_consecutive_frames(tiny_data, tmp_path):
    by_frame = frey(tiny_data, tmp_path)
    by_frame.setup()
    seeded = torch.randperm(120, generator=torch.Generator().manual_seed(0))
    assert frame_numbers(tiny_data, by_frame.splits["val"]) == sorted(seeded[:20].tolist())

    blocked = frey(tiny_data, tmp_path, split_block=10)
    blocked.setup()
    for split, count in (("val", 20), ("test", 20), ("train", 80)):
        frames = frame_numbers(tiny_data, blocked.splits[split])
        starts = {f for f in frames if f % 10 == 0}
        assert len(frames) == count
        assert frames == sorted(s + i for s in starts for i in range(10)), split


def test_missing_file_offline_names_file_url_and_fix(tmp_path):
    dm = FreyFaceDataModule(tmp_path / "empty", tmp_path / "cache", download=False)
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert (
        "frey_rawface.mat" in message
        and "https://cs.nyu.edu/~roweis/data/frey_rawface.mat" in message
    )
    assert "VAE_DATA_DIR" in message


def test_corrupt_file_is_refused_and_left_untouched(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data[0], root)
    mat = root / "frey_rawface.mat"
    mat.write_bytes(mat.read_bytes()[:-10] + b"corrupted!")
    before = mat.read_bytes()
    dm = FreyFaceDataModule(root, tmp_path / "cache", checksums=tiny_data[1]["frey_face"])
    with pytest.raises(DataError, match="fails its md5 check"):
        dm.prepare_data()
    assert mat.read_bytes() == before

    gz = root / "MNIST/raw/train-labels-idx1-ubyte.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz fails its md5 check"):
        mnist((root, tiny_data[1]), tmp_path, download=True).prepare_data()
    assert gz.read_bytes() == b"not gzip"


@pytest.fixture
def http_server(tiny_data):
    """Serves the tiny data folder on 127.0.0.1 as the download mirror."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_data[0]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_places_checked_files(tiny_data, tmp_path, http_server):
    target = tmp_path / "downloaded"
    dm = mnist(
        (target, tiny_data[1]), tmp_path, download=True, mirrors=[f"{http_server}/MNIST/raw/"]
    )
    dm.setup()
    assert len(dm.splits["train"]) == 250
    assert (target / "MNIST/raw/t10k-images-idx3-ubyte.gz").is_file()

    face = frey(
        (target, tiny_data[1]), tmp_path, download=True, url=f"{http_server}/frey_rawface.mat"
    )
    face.setup()
    assert (target / "frey_rawface.mat").read_bytes() == (
        tiny_data[0] / "frey_rawface.mat"
    ).read_bytes()


def test_download_with_a_wrong_checksum_leaves_nothing_behind(tiny_data, tmp_path, http_server):
    target = tmp_path / "downloaded"
    bad = {"md5": "0" * 32}
    dm = frey(
        (target, tiny_data[1]),
        tmp_path,
        download=True,
        checksums=bad,
        url=f"{http_server}/frey_rawface.mat",
    )
    with pytest.raises(DataError, match="Download failed"):
        dm.prepare_data()
    assert not (target / "frey_rawface.mat").exists()
    assert not list(target.glob(".download-*"))


def test_loader_serves_every_point_once_per_epoch_and_shards_without_padding():
    data = torch.arange(103).float()
    loader = TensorBatchLoader(data, 10, EpochOrder(103, shuffle=True, seed=3))
    first = torch.cat(list(loader))
    assert len(loader) == 11 and sorted(first.tolist()) == data.tolist()
    loader.sampler.set_epoch(1)
    assert not torch.equal(torch.cat(list(loader)), first)
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(loader)), first)  # the order is a function of (seed, epoch)

    shards = [
        torch.cat(list(TensorBatchLoader(data, 10, EpochOrder(103, False, 0, r, 2))))
        for r in (0, 1)
    ]
    assert sorted(torch.cat(shards).tolist()) == data.tolist()
    even = [len(EpochOrder(103, True, 0, r, 2, even=True).indices()) for r in (0, 1)]
    assert even == [51, 51]
