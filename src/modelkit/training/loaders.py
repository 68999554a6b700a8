"""DataLoaders for training and evaluation, built from a processor and nothing modality-specific.

Rows are decoded by the processor in the dataset (so in DataLoader workers when
``train.num_workers > 0``) and batched by its ``collate``. Training rows are decoded in train
mode, with a random generator seeded by (seed, epoch, row) so augmentation is reproducible
whatever the number of workers; with ``train.consistency`` each row comes twice, as decoded in
eval mode and as augmented.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.records import Records
from ..processing import InputError, Processor, get_modality


class Examples(Dataset):
    """Rows as (item, labels); ``paired``: ((eval item, train item), labels). With ``annotations``
    (the processor's :meth:`~modelkit.processing.Processor.part_annotations` of each row) and
    ``categories``: (item, labels, part labels), the labels of each part the processor cut the
    item into (a video's frames, :meth:`~modelkit.processing.Processor.part_targets`)."""

    def __init__(self, records: Records, processor: Processor, train: bool, paired: bool = False, seed: int = 0,
                 annotations: list[Any] | None = None, categories: Sequence[str] = ()) -> None:
        if records.labels is None:
            raise ValueError(f"{records.source}: labels are needed for training and evaluation")
        self.inputs = records.inputs
        self.labels = torch.from_numpy(records.labels)
        self.annotations, self.categories = annotations, list(categories)
        # Train and eval views of one processor (shallow copies share tokenizers and tables).
        self.eval_processor = processor.in_mode(False)
        self.train_processor = processor.in_mode(True) if train else None
        self.paired = paired
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        raw, labels = self.inputs[index], self.labels[index]
        if self.train_processor is None:
            return self.eval_processor.decode(raw), labels
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 100_000_007 + index)
        augmented = self.train_processor.decode(raw, labels.numpy(), rng)
        if self.paired:
            return (self.eval_processor.decode(raw), augmented), labels
        if self.annotations is not None:
            return augmented, labels, torch.from_numpy(self.train_processor.part_targets(
                augmented, labels.numpy(), self.annotations[index], self.categories))
        return augmented, labels


class Collate:
    """Decoded items -> the processor's batch, plus ``labels``; pairs: originals, then copies."""

    def __init__(self, processor: Processor, paired: bool = False) -> None:
        self.processor = processor
        self.paired = paired

    def __call__(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, torch.Tensor]:
        items, labels, *parts = zip(*rows)
        labels = torch.stack(labels)
        if self.paired:
            originals, copies = zip(*items)
            items, labels = originals + copies, torch.cat([labels, labels])
        batch = self.processor.collate(list(items))
        batch["labels"] = labels
        if parts:
            batch["part_labels"] = torch.cat(parts[0])
        return batch


class LengthGroupedBatches(Sampler[list[int]]):
    """Batches of similar input sizes, so padded models waste little compute.

    For training, rows are shuffled, cut into windows of ``window`` batches, sorted by size
    inside each window and batched; the batch order is shuffled again. A fresh order every
    epoch, seeded. For evaluation (``shuffle=False``) the rows are simply sorted by size.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window: int = 50,
                 shuffle: bool = True) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.window = window * batch_size
        self.rng = np.random.default_rng(seed)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            for start in range(0, len(order), self.batch_size):
                yield order[start : start + self.batch_size].tolist()
            return
        order = self.rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.window):
            chunk = order[start : start + self.window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for index in self.rng.permutation(len(batches)):
            yield batches[index]


class _DecodeCheck(Dataset):
    def __init__(self, inputs: list[Any], processor: Processor) -> None:
        self.inputs, self.processor = inputs, processor.in_mode(False)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> str | None:
        try:
            self.processor.decode(self.inputs[index])
        except (InputError, TypeError) as err:
            return str(err)
        return None


def undecodable_rows(records: Records, processor: Processor, num_workers: int = 0) -> list[tuple[int, str]]:
    """(row, why) for every row whose inputs are files the processor cannot decode.

    Only for modalities that read files: decoding a text cannot fail, decoding a file can.
    """
    if not any(get_modality(modality).files for modality in records.columns):
        return []
    loader = DataLoader(_DecodeCheck(records.inputs, processor), batch_size=16, num_workers=num_workers,
                        collate_fn=list)
    problems: list[str | None] = []
    for batch in tqdm(loader, desc=f"checking {len(records)} inputs", unit="batch", leave=False):
        problems += batch
    return [(row, problem) for row, problem in enumerate(problems) if problem is not None]


def build_loader(records: Records, processor: Processor, *, train: bool, batch_size: int, seed: int,
                 num_workers: int = 0, paired: bool = False, group_by_length: bool = False,
                 annotations: list[Any] | None = None, categories: Sequence[str] = ()) -> DataLoader:
    """The DataLoader of one split: shuffled and augmented for training, in order for evaluation;
    with part ``annotations``, batches carry ``part_labels`` too (see :class:`Examples`)."""
    examples = Examples(records, processor, train=train, paired=paired, seed=seed, annotations=annotations,
                        categories=categories)
    batch_size = processor.batch_size(batch_size)
    collate = Collate(processor, paired)
    if group_by_length:
        lengths = [processor.length(x) for x in examples.inputs]
        if any(length is None for length in lengths):
            raise ConfigError(f"train.group_by_length: processor {processor.name} has no notion of input size")
        batches = LengthGroupedBatches(lengths, batch_size, seed, shuffle=train)
        return DataLoader(examples, batch_sampler=batches, collate_fn=collate, num_workers=num_workers)
    generator = torch.Generator().manual_seed(seed) if train else None
    return DataLoader(examples, batch_size=batch_size, shuffle=train, collate_fn=collate, num_workers=num_workers,
                      generator=generator)
