"""Your own data (a folder of images, a tensor file) and the benchmarks beside MNIST
(Fashion-MNIST, KMNIST, Omniglot), on tiny files in the real formats made here."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from conftest import (
    fake_digits,
    md5,
    run_cli,
    run_forked,
    tiny_overrides,
    write_idx_images,
    write_idx_labels,
)
from hydra import compose, initialize_config_dir
from PIL import Image
from torchvision.datasets import KMNIST, FashionMNIST

from vae_lightning.config import config_dir
from vae_lightning.data import (
    FashionMNISTDataModule,
    FreyFaceDataModule,
    ImageFolderDataModule,
    KMNISTDataModule,
    OmniglotDataModule,
    TensorFileDataModule,
)
from vae_lightning.data.mnist import MNIST_FILES, md5_by_role
from vae_lightning.errors import ConfigError, DataError
from vae_lightning.train import train


def frey_frames(tiny_data) -> np.ndarray:
    """The tiny Frey Face frames as the MAT-file holds them: uint8, (frames, 28, 20)."""
    ff = scipy.io.loadmat(tiny_data[0] / "frey_rawface.mat")["ff"]
    return ff.T.reshape(-1, 28, 20)


def write_images(folder: Path, images: np.ndarray, names: list[str] | None = None) -> list[Path]:
    """Each image (uint8, (H, W) grey or (H, W, 3) colour) as a PNG file in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"frame_{i:05d}.png" for i in range(len(images))]
    for name, image in zip(names, images, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / name)
    return [folder / name for name in names]


def frey(tiny_data, tmp_path, **kwargs) -> FreyFaceDataModule:
    root, checksums = tiny_data
    options = {"val_size": 20, "test_size": 20, "download": False, **kwargs}
    return FreyFaceDataModule(root, tmp_path / "cache", checksums=checksums["frey_face"], **options)


def loaded(dm):
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.mark.parametrize("split_block", [1, 10])
def test_a_folder_of_the_frey_frames_gives_frey_faces_splits(split_block, tiny_data, tmp_path):
    write_images(tmp_path / "faces", frey_frames(tiny_data))
    folder = loaded(
        ImageFolderDataModule(
            path=tmp_path / "faces", val_size=20, test_size=20, split_block=split_block
        )
    )
    dedicated = loaded(frey(tiny_data, tmp_path, split_block=split_block))
    assert folder.image_shape == dedicated.image_shape == (1, 28, 20)
    for split, images in dedicated.splits.items():
        assert torch.equal(folder.splits[split], images), split  # 8-bit PNG: exact
        assert folder.labels[split] is None
    assert folder.split_sizes() == {"train": 80, "val": 20, "test": 20}


def test_a_tensor_file_of_the_frey_frames_gives_frey_faces_splits(tiny_data, tmp_path):
    np.save(tmp_path / "faces.npy", frey_frames(tiny_data))  # N x H x W, uint8
    from_file = loaded(TensorFileDataModule(tmp_path, path="faces.npy", val_size=20, test_size=20))
    dedicated = loaded(frey(tiny_data, tmp_path))
    assert from_file.image_shape == (1, 28, 20)
    for split, images in dedicated.splits.items():
        assert torch.equal(from_file.splits[split], images), split
    digest = hashlib.sha256((tmp_path / "faces.npy").read_bytes()).hexdigest()
    assert from_file.sha256 == digest


def test_images_are_converted_and_resized_to_one_shape(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (2, 12, 10), dtype=np.uint8)
    colour = rng.integers(0, 256, (1, 7, 9, 3), dtype=np.uint8)
    write_images(tmp_path / "mixed", list(grey) + list(colour), ["a.png", "b.png", "c.jpg"])
    options = {"val_size": 0, "test_size": 0, "image_size": [8, 6]}
    either = loaded(ImageFolderDataModule(path=tmp_path / "mixed", **options))
    assert either.image_shape == (3, 8, 6)  # one colour image: all in colour
    images = torch.cat(list(either.splits.values()))
    assert images.min() >= 0 and images.max() <= 1 and images.dtype == torch.float32
    first = either.pool()[0][0]  # a.png, grey: the same in R, G and B
    assert torch.equal(first[0], first[1]) and torch.equal(first[1], first[2])

    as_grey = loaded(ImageFolderDataModule(path=tmp_path / "mixed", channels=1, **options))
    assert as_grey.image_shape == (1, 8, 6)

    write_images(tmp_path / "grey", grey)
    same_size = loaded(ImageFolderDataModule(path=tmp_path / "grey", val_size=0, test_size=0))
    assert torch.equal(same_size.pool()[0][:, 0], torch.from_numpy(grey))  # not resized


def test_class_subfolders_are_the_labels_and_dot_files_are_left_out(tmp_path):
    images = np.zeros((4, 5, 5), dtype=np.uint8)
    names = ["cat/1.png", "cat/2.png", "ant/1.png", "ant/sub/2.png"]
    write_images(tmp_path / "classes", images, names)
    write_images(tmp_path / "classes" / ".ipynb_checkpoints", images[:1])
    (tmp_path / "classes" / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(path=tmp_path / "classes", val_size=1, test_size=1)
    assert [f.relative_to(tmp_path / "classes").as_posix() for f in dm.files()] == sorted(names)
    assert dm.pool()[1].tolist() == [0, 0, 1, 1]  # ant/..., cat/...
    dm.setup()
    assert sum(len(labels) for labels in dm.labels.values()) == 4

    write_images(tmp_path / "classes", images[:1], ["loose.png"])
    unlabelled = ImageFolderDataModule(path=tmp_path / "classes")
    assert unlabelled.pool()[1] is None  # an image outside the class folders


def test_the_data_digest_changes_with_any_image_and_pins_the_data(tmp_path):
    rng = np.random.default_rng(1)
    [first, *_] = write_images(tmp_path / "faces", rng.integers(0, 256, (3, 6, 6), np.uint8))

    def digest(**kwargs) -> str:
        dm = ImageFolderDataModule(path=tmp_path / "faces", **kwargs)
        dm.prepare_data()
        return dm.sha256

    before = digest()
    assert digest() == before and len(before) == 64
    assert digest(sha256=before) == before  # pinned and unchanged
    pixels = np.asarray(Image.open(first)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(first)
    changed = digest()
    assert changed != before
    first.rename(first.with_name("renamed.png"))
    assert digest() not in (before, changed)
    with pytest.raises(DataError) as refused:
        digest(sha256=before)
    assert "data.sha256" in str(refused.value) and str(tmp_path / "faces") in str(refused.value)


def png_bytes(shape=(4, 4), dtype=np.uint8) -> bytes:
    """A PNG file of zeros: 8-bit grey, or 16-bit for dtype=np.uint16."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros(shape, dtype=dtype)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("files", "options", "words"),
    [
        ({"notes.txt": b"text"}, {}, ["holds no images", ".png, .jpg, .jpeg", "data.path"]),
        ({"a.png": png_bytes(), "bad.png": b"not a png"}, {}, ["bad.png", "not a readable image"]),
        ({"a.png": png_bytes(), "cut.png": png_bytes()[:40]}, {}, ["cut.png", "readable"]),
        ({"a.jpg": b"\xff\xd8\xff\xe0 truncated"}, {}, ["a.jpg", "not a readable image"]),
        ({"a.png": png_bytes(dtype=np.uint16)}, {}, ["a.png", "8 bits per channel"]),
        (
            {"a.png": png_bytes((4, 4)), "b.png": png_bytes((5, 4))},
            {},
            ["differ in size", "a.png is 4 x 4", "b.png is 5 x 4", "data.image_size=[4,4]"],
        ),
    ],
    ids=["no-images", "not-an-image", "truncated", "bad-jpeg", "16-bit", "mixed-sizes"],
)
def test_a_bad_image_folder_is_refused_naming_the_file_and_the_fix(files, options, words, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    dm = ImageFolderDataModule(path=folder, **options)
    with pytest.raises(DataError) as refused:
        dm.prepare_data()
    for word in words:
        assert word in str(refused.value)
    with pytest.raises(DataError, match="is not a folder of images"):
        ImageFolderDataModule(path=tmp_path / "nowhere").prepare_data()


def test_a_tensor_file_takes_both_shapes_and_both_ranges(tmp_path):
    colour = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    torch.save(colour, tmp_path / "colour.pt")
    dm = loaded(TensorFileDataModule(path=tmp_path / "colour.pt", val_size=1, test_size=1))
    assert dm.image_shape == (3, 4, 4)
    assert torch.equal(
        torch.cat(list(dm.splits.values())).sort(0).values, colour.float().sort(0).values
    )
    grey = np.arange(5 * 16, dtype=np.uint8).reshape(5, 4, 4)
    np.save(tmp_path / "grey.npy", grey)
    dm = loaded(TensorFileDataModule(path=tmp_path / "grey.npy", val_size=0, test_size=0))
    assert torch.equal(dm.splits["train"].sort(0).values[:, 0], torch.from_numpy(grey) / 255)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("big.npy", np.full((2, 3, 3), 2.0), ["big.npy", "from 2 to 2", "[0, 1]", "x / 255"]),
        ("nan.pt", torch.full((2, 3, 3), float("nan")), ["nan.pt", "[0, 1]"]),
        ("last.npy", np.zeros((2, 5, 5, 3), np.uint8), ["channels last", "transpose(0, 3, 1, 2)"]),
        ("flat.npy", np.zeros((4, 784), np.uint8), ["[4x784]", "N x C x H x W"]),
        ("int.npy", np.zeros((2, 3, 3), np.int64), ["int64", "uint8"]),
        ("dict.pt", {"images": torch.zeros(2, 3, 3)}, ["holds a dict", "torch.save(images"]),
        ("bad.pt", b"not a zip", ["bad.pt cannot be read as a .pt file"]),
        ("bad.npy", b"not numpy", ["bad.npy cannot be read as a .npy file"]),
        ("images.csv", b"0,1", ["neither a .npy nor a .pt file"]),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)
def test_a_bad_tensor_file_is_refused_naming_the_file(name, content, words, tmp_path):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        torch.save(content, path)
    with pytest.raises(DataError) as refused:
        TensorFileDataModule(path=path).prepare_data()
    for word in words:
        assert word in str(refused.value)


@pytest.mark.parametrize(
    ("module", "source", "folder"),
    [(FashionMNISTDataModule, FashionMNIST, "FashionMNIST"), (KMNISTDataModule, KMNIST, "KMNIST")],
)
def test_mnist_format_data_sets_in_torchvisions_layout(module, source, folder, tmp_path):
    raw = tmp_path / "data" / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        images, labels = fake_digits(n, rng)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    checksums = {role: md5(raw / name) for role, name in MNIST_FILES.items()}
    dm = module(tmp_path / "data", tmp_path / "cache", val_size=10, checksums=checksums)
    loaded(dm)
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 30, "val": 10, "test": 10}
    assert dm.split_sizes() == {"train": 30, "val": 10, "test": 10}
    assert (tmp_path / "cache" / folder / "raw" / "train-images-idx3-ubyte").is_file()
    # The real files' md5 sums are torchvision's, in the config as in the module.
    assert module().checksums == md5_by_role(source) == dict(config(dm.name).data.checksums)
    assert module().mirrors == source.mirrors
    # Offline: one message names every missing file, where to get it and where to put it.
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    (raw / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as missing:
        module(
            tmp_path / "data", tmp_path / "cache", checksums=checksums, download=False
        ).prepare_data()
    message = str(missing.value)
    for word in (
        "train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz",
        source.mirrors[0],
        str(raw),
    ):
        assert word in message


def config(data: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=[f"data={data}"])


def upright_characters(n: int, rng: np.random.Generator) -> np.ndarray:
    """Grey images, (n, 28, 28), with ink in the top-left corner only: not symmetric."""
    images = rng.uniform(0, 1, (n, 28, 28)) * 0.2
    images[:, :5, :10] = 1.0
    return images


def write_chardata(path: Path, train: np.ndarray, test: np.ndarray, alphabets: int = 3) -> None:
    """chardata.mat as in the IWAE repository: one image a column, column-major pixels."""
    columns = lambda x: x.transpose(0, 2, 1).reshape(len(x), 784).T  # noqa: E731
    one_hot = lambda n: np.eye(alphabets)[np.arange(n) % alphabets].T  # noqa: E731
    scipy.io.savemat(
        path,
        {
            "data": columns(train),
            "testdata": columns(test),
            "target": one_hot(len(train)),
            "testtarget": one_hot(len(test)),
        },
    )


def test_omniglot_reads_burdas_chardata_upright(tmp_path):
    rng = np.random.default_rng(0)
    train, test = upright_characters(30, rng), upright_characters(12, rng)
    write_chardata(tmp_path / "chardata.mat", train, test)
    dm = OmniglotDataModule(
        tmp_path, tmp_path / "cache", val_size=5, binarize="none", download=False
    )
    assert dm.split_sizes() == {"train": 25, "val": 5, "test": 12}
    loaded(dm)
    assert {k: len(v) for k, v in dm.splits.items()} == dm.split_sizes()
    expected = torch.from_numpy(test).float()
    assert torch.equal(dm.splits["test"][:, 0], expected)
    assert dm.splits["test"][:, 0, :5, :10].min() == 1  # the ink is top left: upright
    assert dm.labels["test"].tolist() == [i % 3 for i in range(12)]
    held = torch.cat([dm.splits["train"], dm.splits["val"]])[:, 0]
    assert torch.equal(held.sort(0).values, torch.from_numpy(train).float().sort(0).values)


def test_omniglot_offline_and_bad_files_name_the_file_and_the_fix(tmp_path):
    dm = OmniglotDataModule(tmp_path / "empty", tmp_path / "cache", download=False)
    with pytest.raises(DataError) as missing:
        dm.prepare_data()
    message = str(missing.value)
    for word in ("chardata.mat", "yburda/iwae", str(tmp_path / "empty" / "chardata.mat")):
        assert word in message
    write_chardata(tmp_path / "chardata.mat", np.full((2, 28, 28), 3.0), np.zeros((2, 28, 28)))
    with pytest.raises(DataError, match="'data' has values outside"):
        OmniglotDataModule(tmp_path, tmp_path / "cache", download=False).setup()
    scipy.io.savemat(tmp_path / "chardata.mat", {"data": np.zeros((100, 3))})
    with pytest.raises(DataError, match="'data' is of shape"):
        OmniglotDataModule(tmp_path, tmp_path / "cache", download=False).setup()


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["data=image_folder"], ["data.path is required", "data=image_folder"]),
        (["data=tensor_file"], ["data.path is required"]),
        (["data=image_folder", "data.path=x", "data.image_size=[28]"], ["data.image_size"]),
        (["data=image_folder", "data.path=x", "data.channels=2"], ["data.channels", "1 (grey)"]),
        (["data=tensor_file", "data.path=x", "data.sha256=abc"], ["data.sha256", "64 hex"]),
        (["data=tensor_file", "data.path=x", "data.test_size=-1"], ["data.test_size", ">= 0"]),
    ],
)
def test_own_data_settings_are_checked_before_anything_is_read(
    overrides, words, compose_train, tmp_path
):
    with pytest.raises(ConfigError) as refused:
        train(compose_train([*overrides, "trainer=cpu"]))
    for word in words:
        assert word in str(refused.value)
    assert not (tmp_path / "run").exists()


def test_a_corrupt_image_stops_the_train_command_before_it_writes_anything(tmp_path):
    folder = tmp_path / "images"
    write_images(folder, np.zeros((3, 4, 4), np.uint8))
    (folder / "frame_00001.png").write_bytes(b"corrupt")
    run = tmp_path / "run"
    result = run_forked(
        "vae_lightning.train",
        ["data=image_folder", f"data.path={folder}", f"hydra.run.dir={run}", "trainer=cpu"],
        tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "frame_00001.png is not a readable image" in output and "Traceback" not in output
    assert not run.exists()


def test_training_on_a_folder_of_frey_frames_gives_frey_faces_elbo(
    tiny_data, compose_train, tmp_path
):
    """The same frames, seed and split through the generic module and the dedicated one."""
    write_images(tmp_path / "faces", frey_frames(tiny_data))
    frey_args = tiny_overrides(tiny_data, tmp_path, "frey_face")
    dedicated = train(compose_train(frey_args))
    generic_args = [
        *(a for a in frey_args if not a.startswith(("data=", "data.checksums", "data.download"))),
        "data=image_folder",
        f"data.path={tmp_path / 'faces'}",
        f"hydra.run.dir={tmp_path / 'folder_run'}",
    ]
    result = run_cli(
        "vae_lightning.train", generic_args, tmp_path, OMP_NUM_THREADS=str(torch.get_num_threads())
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "folder_run" / "summary.json").read_text())
    assert summary["data"] == "image_folder"
    assert f"data.sha256={summary['data_sha256']}" in result.stdout + result.stderr
    for key in ("val/elbo", "test/elbo", "train/elbo"):
        assert summary["metrics"][key] == dedicated[key], key
