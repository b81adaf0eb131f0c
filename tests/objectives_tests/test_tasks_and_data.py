import json
from pathlib import Path

import pytest

from objectives.data import (
    find_data_files,
    load_task_data,
    split_pool,
)
from objectives.metrics import score
from objectives.tasks import BUILTIN_TASKS, get_task, load_task_file, task_names

PAPER_TASKS = ("wlp", "stanceosaurus", "fever", "multipit_id", "multipit_gen", "nq")


def test_registry_holds_the_paper_tasks_sst2_and_the_demo() -> None:
    assert set(task_names()) == {*PAPER_TASKS, "sst2", "bbc_news"}
    assert get_task("fever").labels == ("SUPPORTS", "REFUTES")
    assert get_task("multipit_gen").kind == "generation"
    assert get_task("fever").prefix == "fever: "


def test_unknown_task_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="Unknown task='fevr'; valid tasks: bbc_news, fever"):
        get_task("fevr")


@pytest.mark.parametrize("name", [*PAPER_TASKS, "sst2"])
def test_every_shared_task_loads_and_scores_its_gold_as_perfect(
    shared_data: Path, name: str
) -> None:
    spec = get_task(name)
    data = load_task_data(spec, shared_data)
    assert len(data.train) >= 3000 and len(data.dev) >= 600
    result = score(spec, [e.target for e in data.dev], data.dev)
    if spec.metric == "bert_ibleu":
        # Offline there is no BERTScore model: the named substitute scores instead, and a
        # gold paraphrase matches its own reference exactly.
        assert result.name == "ibleu"
        assert result.details["bleu"] == pytest.approx(1.0)
    elif spec.metric == "squad_f1":
        # SQuAD v1.1 gives no F1 to an answer that normalises to nothing (e.g. "The"), even
        # against itself; exact match is still 1.
        from objectives.metrics import normalize_answer

        scorable = [bool(normalize_answer(e.target)) for e in data.dev]
        assert result.value == pytest.approx(sum(scorable) / len(scorable))
        assert result.details["exact_match"] == pytest.approx(1.0)
    else:
        assert result.name == spec.metric
        assert result.value == pytest.approx(1.0)


def test_demo_task_loads_from_its_package() -> None:
    spec = BUILTIN_TASKS["bbc_news"]
    data = load_task_data(spec)
    assert (len(data.train), len(data.dev), len(data.test)) == (1625, 300, 300)
    assert {e.target for e in data.train} == set(spec.labels)
    assert load_task_data(spec).dev == data.dev  # the split is deterministic


def _write_task(tmp_path: Path, rows: list[str], extra: str = "") -> Path:
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.jsonl").write_text('{"text": "fine", "y": "pos"}\n')
    task = tmp_path / "task.toml"
    task.write_text(
        'name = "reviews"\nmetric = "accuracy"\nusd_per_label = 0.08\n'
        'input_columns = ["text"]\ntarget_column = "y"\nlabels = ["neg", "pos"]\n'
        f'{extra}[files]\ntrain = "train.jsonl"\ndev = "dev.jsonl"\n'
    )
    return task


def test_bring_your_own_task_from_toml_and_yaml(tmp_path: Path) -> None:
    spec = load_task_file(_write_task(tmp_path, ['{"text": "bad", "y": "neg"}']))
    assert spec.kind == "classification" and spec.usd_per_label == 0.08
    data = load_task_data(spec)
    assert data.train[0].source == "bad" and data.train[0].target == "neg"
    yaml_file = tmp_path / "task.yaml"
    yaml_file.write_text(
        "name: pairs\nmetric: squad_f1\nusd_per_label: 0.5\n"
        "input_columns: [q, ctx]\ntarget_column: a\n"
        "files: {train: pairs.csv, dev: pairs.csv}\n"
    )
    (tmp_path / "pairs.csv").write_text("q,ctx,a\nwho,Ann met Bo,Ann\n")
    pairs = load_task_data(load_task_file(yaml_file))
    assert pairs.train[0].source == "q: who ctx: Ann met Bo"
    assert get_task("pairs", {"pairs": load_task_file(yaml_file)}).kind == "generation"


def test_parquet_files_load(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"source": ["a", "b"], "target": ["SUPPORTS", "REFUTES"]}),
        tmp_path / "train.parquet",
    )
    pq.write_table(pa.table({"source": ["c"], "target": ["SUPPORTS"]}), tmp_path / "dev.parquet")
    (tmp_path / "fever").mkdir()
    for split in ("train", "dev"):
        (tmp_path / f"{split}.parquet").rename(tmp_path / "fever" / f"{split}.parquet")
    data = load_task_data(get_task("fever"), tmp_path)
    assert [e.target for e in data.train] == ["SUPPORTS", "REFUTES"] and data.test == ()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (['{"text": "a", "y": "neg"}', "{not json"], r"train.jsonl:2: malformed JSON"),
        (['{"txt": "a", "y": "neg"}'], r"train.jsonl:1: missing field 'text'; the row has fields"),
        (['{"text": "a", "y": "meh"}'], r"train.jsonl:1: field 'y' has label 'meh'.*neg, pos"),
        (['{"text": "a", "y": "neg"}', "[1, 2]"], r"train.jsonl:2: expected a JSON object"),
        ([""], r"train.jsonl: the file holds no rows"),
    ],
)
def test_bad_data_names_file_line_and_field(tmp_path: Path, rows: list[str], message: str) -> None:
    spec = load_task_file(_write_task(tmp_path, rows))
    with pytest.raises(ValueError, match=message):
        load_task_data(spec)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "x"\n', "missing required field 'metric'"),
        (
            'name="x"\nmetric="bleu"\nusd_per_label=1\ninput_columns=["a"]\ntarget_column="b"\n'
            '[files]\ntrain="t"\ndev="d"\n',
            "unknown metric='bleu'; valid metrics: accuracy",
        ),
        ('name = "x"\nprice = 1\n', "unknown field 'price'"),
        ("name = [", "not valid TOML"),
        # A built-in task's name would pool its trials with the built-in task's.
        (
            'name="fever"\nmetric="accuracy"\nusd_per_label=1\ninput_columns=["a"]\n'
            'target_column="b"\nlabels=["x", "y"]\n[files]\ntrain="t"\ndev="d"\n',
            "name='fever' is a built-in task's; give your task a name of its own",
        ),
        # Two labels of one name would be two classes the data cannot tell apart.
        (
            'name="x"\nmetric="accuracy"\nusd_per_label=1\ninput_columns=["a"]\n'
            'target_column="b"\nlabels=["pos", "neg", "pos"]\n[files]\ntrain="t"\ndev="d"\n',
            "labels must be distinct, but 'pos' is listed 2 times",
        ),
    ],
)
def test_bad_task_files_are_explained(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_task_file(path)


def test_missing_data_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no data under"):
        find_data_files(get_task("fever"), tmp_path)
    (tmp_path / "fever").mkdir()
    (tmp_path / "fever" / "train.jsonl").write_text(json.dumps({"source": "a"}) + "\n")
    with pytest.raises(ValueError, match="has no dev file"):
        find_data_files(get_task("fever"), tmp_path)
    with pytest.raises(ValueError, match="is not a directory"):
        find_data_files(get_task("fever"), tmp_path / "nope")


def test_labelled_sets_are_nested_and_disjoint_from_the_pool() -> None:
    small, large = split_pool(100, 10, seed=3), split_pool(100, 40, seed=3)
    assert small.labelled == large.labelled[:10]
    assert not set(large.labelled) & set(large.unlabelled)
    assert len(large.labelled) + len(large.unlabelled) == 100
    assert split_pool(100, 40, seed=3, n_unlabelled=5).unlabelled == large.unlabelled[:5]
    with pytest.raises(ValueError, match="n_labels=101 for a train pool of 100 rows"):
        split_pool(100, 101, seed=0)


def test_hub_datasets_are_mapped_to_the_task_columns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import datasets

    features = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    hub = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"sentence": ["bad", "good"], "label": [0, 1]}, features=features
            ),
            "validation": datasets.Dataset.from_dict(
                {"sentence": ["fine"], "label": [1]}, features=features
            ),
            # Hub test splits often hide their labels as -1: such rows are skipped.
            "test": datasets.Dataset.from_dict(
                {"sentence": ["hidden"], "label": [-1]}, features=features
            ),
        }
    )
    calls: list[tuple[str, object]] = []

    def fake_load(name: str, config: object = None) -> datasets.DatasetDict:
        calls.append((name, config))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("DOA_DATA_DIR", str(tmp_path))  # no local copy there
    monkeypatch.chdir(tmp_path)
    spec = get_task("sst2")
    data = load_task_data(spec)
    assert calls == [("stanfordnlp/sst2", None)]
    assert [(e.source, e.target) for e in data.train] == [("bad", "negative"), ("good", "positive")]
    assert data.dev[0].target == "positive" and data.test == ()
    assert data.origin == "hf:stanfordnlp/sst2"


def _hub_online_with(monkeypatch: pytest.MonkeyPatch, load_dataset: object) -> None:
    """No offline flag and no local data: the hub path runs, through `load_dataset`."""
    import datasets

    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "DOA_DATA_DIR"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


def test_an_unreachable_hub_is_one_line_naming_the_task_and_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from objectives.data import load_task_data
    from objectives.tasks import get_task

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'google-research-datasets/nq_open' on the Hub")

    _hub_online_with(monkeypatch, unreachable)
    with pytest.raises(ValueError) as caught:
        load_task_data(get_task("nq"), data_dir=None)
    message = str(caught.value)
    assert "'nq'" in message and "unreachable" in message and "--data-dir" in message
    assert "\n" not in message


def test_listing_the_tasks_never_downloads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep.cli.main import main

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("sweep tasks must not download a data set")

    _hub_online_with(monkeypatch, forbidden)
    assert main(["tasks"]) == 0
    assert (
        "hf:google-research-datasets/nq_open (downloaded by the first trial)"
        in capsys.readouterr().out
    )


def test_a_task_recipe_replaces_the_presets_values_but_never_the_users() -> None:
    from objectives.trial_config import trial_config

    base = {"budget_usd": 1.0, "n_seed_labels": 0, "compute_fraction": 0.0}
    for task in ("fever", "multipit_id", "stanceosaurus"):
        assert trial_config({**base, "task": task}, "cpu-small").teacher_lr == 1e-4
        assert trial_config({**base, "task": task}, "paper").teacher_lr == 3e-5
    assert trial_config({**base, "task": "bbc_news"}, "cpu-small").teacher_lr == 6e-4
    given = trial_config({**base, "task": "fever", "teacher_lr": 2e-3}, "cpu-small")
    assert given.teacher_lr == 2e-3
