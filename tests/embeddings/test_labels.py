"""Labels by three annotators who change their minds: effective labels, consensus, review queue, agreement, files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import pytest

from aesthetic_platform.embeddings import Item, Store
from aesthetic_platform.embeddings.labels import (
    LabelFileError,
    LabelRecord,
    add_labels,
    agreement,
    consensus,
    effective_labels,
    export_labels,
    import_label_file,
    label_history,
    review_queue,
)

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
ITEMS = {name: hashlib.sha256(name.encode()).hexdigest() for name in "ABCDEF"}


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


#: (item, annotator, label, minute). Changes of mind: alice on B, carol twice on C.
HISTORY = [
    ("A", "alice", "yes", 1), ("A", "bob", "yes", 2), ("A", "carol", "yes", 3),
    ("B", "alice", "yes", 4), ("B", "bob", "no", 5), ("B", "carol", "no", 6), ("B", "alice", "no", 30),
    ("C", "alice", "yes", 7), ("C", "bob", "no", 8), ("C", "carol", "yes", 9), ("C", "carol", "no", 31), ("C", "carol", "yes", 40),
    ("D", "alice", "no", 10), ("D", "bob", "yes", 11),
    ("E", "carol", "no", 12),
]


def labelled(store: Store) -> Store:
    store.put_items([Item(sha, "text", text=f"item {name}") for name, sha in ITEMS.items()])
    records = [LabelRecord(item=ITEMS[i], task="usable", annotator=a, label=lab, created_at=at(m)) for i, a, lab, m in HISTORY]
    records.append(LabelRecord(item=ITEMS["A"], task="style", annotator="bob", label="flat", created_at=at(1)))
    assert add_labels(store, records) == len(HISTORY) + 1
    return store


def test_effective_labels_are_the_latest_per_annotator(store: Store) -> None:
    labelled(store)
    effective = {(ITEMS_BY_SHA[r.item], r.annotator): r.label for r in effective_labels(store, "usable")}
    assert effective == {
        ("A", "alice"): "yes", ("A", "bob"): "yes", ("A", "carol"): "yes",
        ("B", "alice"): "no", ("B", "bob"): "no", ("B", "carol"): "no",
        ("C", "alice"): "yes", ("C", "bob"): "no", ("C", "carol"): "yes",
        ("D", "alice"): "no", ("D", "bob"): "yes",
        ("E", "carol"): "no",
    }
    assert len(label_history(store, "usable")) == len(HISTORY)  # append-only: nothing overwritten
    assert {r.task for r in effective_labels(store)} == {"usable", "style"}


ITEMS_BY_SHA = {sha: name for name, sha in ITEMS.items()}


def test_consensus_and_review_queue(store: Store) -> None:
    labelled(store)
    verdicts = {ITEMS_BY_SHA[c.item]: c for c in consensus(store, "usable")}
    assert {k: (v.label, v.status) for k, v in verdicts.items()} == {
        "A": ("yes", "unanimous"), "B": ("no", "unanimous"), "C": ("yes", "majority"), "D": (None, "tie"), "E": ("no", "single"),
    }
    assert verdicts["C"].votes == {"no": 1, "yes": 2} and math.isclose(verdicts["C"].agreement, 2 / 3)
    queue = [ITEMS_BY_SHA[c.item] for c in review_queue(store, "usable")]
    assert queue == ["D", "C"]  # the tie first


def test_same_timestamp_goes_to_the_row_written_last(store: Store) -> None:
    store.put_items([Item(ITEMS["F"], "text", text="f")])
    add_labels(store, [LabelRecord(item=ITEMS["F"], task="t", annotator="dan", label="x", created_at=at(0))])
    add_labels(store, [LabelRecord(item=ITEMS["F"], task="t", annotator="dan", label="y", created_at=at(0))])
    assert [r.label for r in effective_labels(store, "t")] == ["y"]


def test_agreement_statistics(store: Store) -> None:
    labelled(store)
    stats = agreement(store, "usable")
    assert stats.items == 5 and stats.annotators == 3 and stats.disputed == 2
    assert stats.alpha is not None and -1.0 <= stats.alpha < 1.0
    # alice vs the majority of the others: A yes=yes, B no=no, C others tie (skipped), D others=yes vs no
    assert stats.per_annotator["alice"] == {"labels": 4, "compared": 3, "agreement": pytest.approx(2 / 3)}
    assert stats.per_annotator["carol"]["compared"] == 2 and stats.per_annotator["carol"]["agreement"] == 1.0
    unanimous = agreement(store, "style")
    assert unanimous.alpha is None  # one annotator: undefined, not a number made up


def test_alpha_matches_a_hand_computed_value(store: Store) -> None:
    # two annotators, four items, nominal: pairs (a,a) (a,b) (b,b) (b,b) -> observed disagreement 2/8, expected 2*3*5/(8*7)
    store.put_items([Item(ITEMS[n], "text", text=n) for n in "ABCD"])
    rows = [("A", "a", "a"), ("B", "a", "b"), ("C", "b", "b"), ("D", "b", "b")]
    add_labels(store, [LabelRecord(item=ITEMS[i], task="k", annotator=who, label=lab, created_at=at(0))
                       for i, x, y in rows for who, lab in (("u1", x), ("u2", y))])
    expected = 1 - (2 / 8) / (2 * 3 * 5 / (8 * 7))
    assert agreement(store, "k").alpha == pytest.approx(expected)


def test_bad_label_files_name_file_line_and_field_and_store_nothing(store: Store, tmp_path: Path) -> None:
    labelled(store)
    before = len(label_history(store))
    good = ITEMS["A"]
    cases = {
        "bad_annotator.csv": (f"item,task,annotator,label\n{good},usable,alice,yes\n{good},usable,,no\n", "line 3, field 'annotator'"),
        "bad_item.csv": (f"item,task,annotator,label\n{good},usable,alice,yes\nxyz,usable,bob,no\n", "line 3, field 'item'"),
        "unknown_item.csv": (f"item,task,annotator,label\n{good},usable,alice,yes\n{'0' * 64},usable,bob,no\n", "line 3, field 'item'"),
        "bad_column.csv": ("item,task,who,label\n", "line 1, field 'who'"),
        "bad_date.csv": (f"item,task,annotator,label,created_at\n{good},usable,alice,yes,yesterday\n", "line 2, field 'created_at'"),
        "bad_record.json": (json.dumps({"labels": [{"item": good, "task": "usable", "annotator": "a", "label": "y"},
                                                   {"item": good, "task": "usable", "annotator": "a"}]}), "record 2, field 'label'"),
        "broken.json": ('[{"item": ', "line 1"),
    }
    for name, (text, where) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(LabelFileError) as err:
            import_label_file(store, path)
        assert str(err.value).startswith(f"{path}: {where}"), str(err.value)
    assert len(label_history(store)) == before


def test_export_import_round_trip(store: Store, tmp_path: Path, db_url: str) -> None:
    labelled(store)
    for suffix in (".csv", ".json"):
        path = tmp_path / f"labels{suffix}"
        assert export_labels(store, path, task="usable") == len(HISTORY)
        fresh_url = f"sqlite:///{tmp_path}/fresh{suffix[1:]}.db"
        from aesthetic_platform.embeddings import EmbeddingStoreConfig

        with Store.open(EmbeddingStoreConfig(db_url=fresh_url)) as other:
            other.put_items([Item(sha, "text", text=name) for name, sha in ITEMS.items()])
            assert import_label_file(other, path) == len(HISTORY)
            assert effective_labels(other, "usable") == effective_labels(store, "usable")
    effective_path = tmp_path / "effective.csv"
    assert export_labels(store, effective_path, task="usable", effective=True) == 12
