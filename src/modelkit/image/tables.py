"""Picture data the core has no format for: a folder tree of files (one sub-folder per category,
plus ``clean/``; videos are read this way too) and IDX files (``*-images-idx3-ubyte.gz`` beside
``*-labels-idx1-ubyte.gz``, as MNIST and Fashion-MNIST ship). Registered as readers of
:func:`modelkit.data.records.load_table`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.records import DataError, TableReader

CLEAN_FOLDER = "clean"
IDX_IMAGES, IDX_LABELS = "-images-idx3-ubyte", "-labels-idx1-ubyte"


def read_folder_tree(root: Path, file_field: str | None):
    """One row per file of ``root/<category>/``; ``clean/`` holds files with no category."""
    import datasets

    if file_field is None:
        raise DataError(f"{root}: a folder is read as one sub-folder per category of files, which needs a model "
                        "that reads files (images, videos); for text give a jsonl, csv or parquet file")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    ids, files, labels = [], [], []
    for folder in folders:
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            ids.append(file.relative_to(root).as_posix())
            files.append(str(file))
            labels.append([] if folder.name == CLEAN_FOLDER else [folder.name])
    if not files:
        raise DataError(f"{root}: no files in category sub-folders (expected {root}/<category>/<file> and "
                        f"{root}/{CLEAN_FOLDER}/<file>)")
    return datasets.Dataset.from_dict({"id": ids, file_field: files, "labels": labels})


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the MNIST format: big-endian header, then the values), gzipped or not."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in dtypes:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    rank = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    dtype = np.dtype(dtypes[data[2]])
    body = data[4 + 4 * rank :]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise DataError(f"{path}: {len(body)} bytes of values for shape {shape}; the file is truncated")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def read_idx_pair(images_path: Path):
    """Images of an IDX file as PNG-encoded rows (``image``), with ``label`` from its label file."""
    import io

    import datasets
    from PIL import Image

    labels_path = images_path.with_name(images_path.name.replace(IDX_IMAGES, IDX_LABELS))
    if not labels_path.is_file():
        raise DataError(f"{images_path}: no label file {labels_path.name} beside it")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"{images_path}: {images.shape} images do not match {labels.shape} labels in {labels_path.name}")
    encoded = []
    for pixels in images:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"id": datasets.Value("int64"), "image": datasets.Image(decode=False),
                                  "label": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"id": list(range(len(labels))), "image": encoded,
                                       "label": labels.astype(np.int64).tolist()}, features=features)


FOLDER_TREE = TableReader(lambda path: path.is_dir(), read_folder_tree)
IDX_FILES = TableReader(lambda path: IDX_IMAGES in path.name, lambda path, file_field: read_idx_pair(path))
