"""Hypothesis strategies for every input a user controls, one per surface; each draws a Case.

    @given(case=SURFACES["spec"]())
    def test(case):
        with Project() as project:
            outcome = project.invoke(*case.build(project))
            assert check(outcome, case.names, case.must_fail) == []

A Case is data (files to write, arguments, what its refusal must name); build() writes its files into
a project folder (the working directory of the command), so relative paths in args point there.
Fixtures a surface needs (a tiny model folder, the token cache) come from Fixtures, built once.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SPECS = sorted(p for p in (ROOT / "search_spaces").rglob("*.yaml") if "sweeps:" not in p.read_text())
SHIPPED_STUDIES = sorted(p for p in (ROOT / "search_spaces").rglob("*.yaml") if "sweeps:" in p.read_text())


@dataclass
class Case:
    surface: str
    mutation: str  # the kind of mistake, for counts
    args: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # one of them must appear in a refusal
    must_fail: bool = False  # False: the mutation may have produced a valid input (exit 0 allowed)
    prepare: Callable[[Path], None] | None = None  # more set-up in the project folder

    def build(self, project) -> list[str]:
        for name, content in self.files.items():
            project.write(name, content)
        if self.prepare is not None:
            self.prepare(project.root)
        return self.args

    def __repr__(self) -> str:  # what hypothesis prints for a failing case
        files = {k: (v[:400] + (b"..." if len(v) > 400 else b"")) for k, v in self.files.items()}
        return f"Case({self.surface}/{self.mutation}: babysweep {' '.join(self.args)}; files={files})"


class Fixtures:
    """What some surfaces need, made once per process: a token cache and a tiny model folder."""

    cache: Path | None = None
    model: Path | None = None
    other_arch: Path | None = None
    other_tokenizer: Path | None = None
    pairs: Path | None = None
    store: Path | None = None  # an MLflow sqlite store with experiment 'fake' (one finished run)

    @classmethod
    def setup(cls, base: Path) -> None:
        if cls.model is not None:
            return
        from babysweep.core.config import RunConfig
        from babysweep.data import prepare
        from babysweep.data.tokenizer import train_tokenizer
        from babysweep.lm.models import build_model, save_model

        cls.cache = base / "cache"
        cfg = RunConfig.of({"data": TINY_DATA | {"cache_dir": str(cls.cache)}, "model": TINY_MODEL})
        tok = prepare(cfg.data).tokenizer
        cls.model = save_model(build_model(cfg.model, len(tok), 32), tok, base / "model")
        cls.other_arch = save_model(build_model(cfg.model.model_copy(update={"arch": "gpt2"}), len(tok), 32), tok, base / "gpt2")
        other = train_tokenizer(["the cat sat on the mat", "a dog ran far away"] * 50, vocab_size=300, min_frequency=1)
        cls.other_tokenizer = save_model(build_model(cfg.model, len(other), 32), other, base / "other-tok")
        import mlflow

        cls.store = base / "mlruns" / "mlflow.db"
        cls.store.parent.mkdir()
        client = mlflow.MlflowClient(f"sqlite:///{cls.store}")
        run = client.create_run(client.create_experiment("fake"), tags={"kind": "sweep", "sweep": "fake"})
        client.log_metric(run.info.run_id, "eval/loss", 3.0)
        client.set_terminated(run.info.run_id)
        cls.pairs = base / "pairs.jsonl"
        cls.pairs.write_text("".join(json.dumps({"sentence_good": "the cat sat .", "sentence_bad": "cat the sat .",
                                                 "UID": "order", "field": "syntax"}) + "\n" for _ in range(3)))


TINY_DATA = {"seq_len": 32, "builtin_words": 20000, "tokenizer": {"vocab_size": 500}}
TINY_MODEL = {"layers": 1, "hidden": 32, "heads": 2}


def tiny_spec(name: str = "tiny", cache: Path | None = None, extra: str = "") -> bytes:
    cache_line = f", cache_dir: {cache}" if cache else ""
    return (f"name: {name}\n"
            f"data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}{cache_line}}}\n"
            "model: {layers: 1, hidden: 32, heads: 2}\n"
            "train: {epochs: 1, batch_size: 32, lr: {loguniform: [1.0e-3, 1.0e-2]}, warmup_steps: 5, threads: 1}\n"
            "eval: {dev_batches: 2}\n"
            "search: {samples: 2, concurrent: 1, scheduler: none}\n" + extra).encode()


def fixed_spec(name: str = "tiny", cache: Path | None = None, extra: str = "") -> bytes:
    return tiny_spec(name, cache, extra).replace(b"{loguniform: [1.0e-3, 1.0e-2]}", b"3.0e-3")


# ----------------------------------------------------------------------------------------- values
JUNK_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), JUNK_TEXT,
                    st.sampled_from(["", "1e400", "-0", "inf", "nan", "yes", "~", "0x10", "1_000", "12abc"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(JUNK_TEXT, inner, max_size=3)), max_leaves=8)
DIST_KINDS = ["uniform", "loguniform", "lognormal", "normal", "randint", "quniform", "choice", "grid", "value",
              "log_uniform", "Uniform", "unifrom", "range"]
ESCAPING_NAMES = ["../escape", "../../etc/passwd", "/tmp/abs", "a/b", "..", ".", "", " ", "-x", "x" * 300, "tab\tname",
                  "nul\x00", "semi;rm -rf", "~/home", "é", ".hidden", "a\\b", "CON"]


def _leaves(node: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        out = [prefix] if prefix else []
        for key, value in node.items():
            out += _leaves(value, prefix + (key,))
        return out
    return [prefix]


def _set(node: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _get(node: dict, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def _dump(raw: Any) -> bytes:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode()


@st.composite
def mutated_mapping(draw, raw: dict, leaf_keys: list[str]) -> tuple[str, dict]:
    """A structural mistake in a parsed spec or study: (kind, new mapping)."""
    raw = copy.deepcopy(raw)
    paths = _leaves(raw)
    kind = draw(st.sampled_from(["wrong_type", "unknown_key", "misspelt_key", "bad_distribution", "bad_condition",
                                 "bad_bounds", "escaping_name", "drop_key", "section_type"]))
    path = draw(st.sampled_from(paths)) if paths else ("name",)
    if kind == "wrong_type":
        _set(raw, path, draw(VALUES))
    elif kind == "unknown_key":
        parent = path[:-1]
        target = _get(raw, parent) if parent else raw
        target[draw(st.one_of(JUNK_TEXT, st.sampled_from(["lr", "epoch", "Name", "model.arch", "sweeps", "<<"])))] = draw(VALUES)
    elif kind == "misspelt_key":
        parent, key = path[:-1], str(path[-1])
        target = _get(raw, parent) if parent else raw
        i = draw(st.integers(0, max(len(key) - 1, 0)))
        wrong = draw(st.sampled_from([key[:i] + key[i + 1:], key[:i] + key[i:i + 2][::-1] + key[i + 2:], key.upper(),
                                      key + "s", key.replace("_", "-"), key + " "]))
        if wrong != key:
            target[wrong] = target.pop(path[-1])
    elif kind in ("bad_distribution", "bad_bounds"):
        dist = draw(st.sampled_from(DIST_KINDS))
        if kind == "bad_bounds":
            low, high = draw(st.sampled_from([(1.0, 0.1), (0, 0), (-1.0, 1.0), (0.0, 1.0), (1e-300, 1e300), (5, 2),
                                              (float("nan"), 1.0), ("a", "b"), (1, float("inf"))]))
            args = draw(st.sampled_from([[low, high], [low], [low, high, 3], [high, low], []]))
        else:
            args = draw(VALUES)
        _set(raw, path, {dist: args} if draw(st.booleans()) else {dist: args, draw(JUNK_TEXT): draw(VALUES)})
    elif kind == "bad_condition":
        when = draw(st.one_of(VALUES, st.dictionaries(st.sampled_from(leaf_keys + ["model.archh", "", "x.y"]), VALUES,
                                                      max_size=2)))
        _set(raw, path, {draw(st.sampled_from(["value", "choice", "uniform"])): draw(VALUES), "when": when})
    elif kind == "escaping_name":
        target = draw(st.sampled_from([("name",), ("report", "name"), ("sweeps",), ("data", "cache_dir"),
                                       ("data", "train")]))
        name = draw(st.sampled_from(ESCAPING_NAMES))
        node = raw
        for key in target[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else node
        node[target[-1]] = [name] if target == ("sweeps",) else name
    elif kind == "drop_key":
        parent = path[:-1]
        target = _get(raw, parent) if parent else raw
        target.pop(path[-1], None)
    else:  # section_type: a whole section of the wrong type
        section = draw(st.sampled_from(list(raw) or ["name"]))
        raw[section] = draw(SCALARS)
    return kind, raw


@st.composite
def mutated_text(draw, text: bytes) -> tuple[str, bytes]:
    """A mistake in the bytes of a file: broken YAML, other encodings, empty, huge, deep."""
    kind = draw(st.sampled_from(["broken_yaml", "truncated", "encoding", "bad_bytes", "empty", "huge", "deep",
                                 "tabs", "yaml_tags", "duplicate_key"]))
    if kind == "broken_yaml":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([b":", b"[", b"{", b"]", b"- ", b"  ", b"\n  x", b"'", b'"', b"&a", b"*a", b"!", b"%",
                                     b"@", b"`", b"|", b">", b"? ", b"\n---\n", b"\t", b"\x00"]))
        return kind, text[:at] + junk * draw(st.integers(1, 3)) + text[at:]
    if kind == "truncated":
        return kind, text[:draw(st.integers(0, max(len(text) - 1, 0)))]
    if kind == "encoding":
        unicode = text.decode() + draw(st.sampled_from(["# café\n", "# 日本語\n", "# naïve ü\n", "# ±µ\n"]))
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig", "shift_jis"]))
        return kind, unicode.encode(codec, errors="replace")
    if kind == "bad_bytes":
        at = draw(st.integers(0, len(text)))
        return kind, text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at:]
    if kind == "empty":
        return kind, draw(st.sampled_from([b"", b"\n", b"   \n\t\n", b"# only a comment\n", b"---\n", b"...\n", b"null\n",
                                           b"~\n", b"[]\n", b"{}\n", b"42\n", b"- a\n- b\n", b'"text"\n']))
    if kind == "huge":
        size = draw(st.sampled_from([10**5, 2 * 10**6]))  # above 1 MB: refused unread
        filler = draw(st.sampled_from([b"# " + b"x" * 78 + b"\n", b"k%d: 1\n", b"x" * 100]))
        if filler == b"k%d: 1\n":
            return kind, text + b"".join(b"k%d: 1\n" % i for i in range(size // 8))
        return kind, text + filler * (size // len(filler)) + b"\n"
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1000, 10000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b"{a: ", b"}"), (b"- ", b"")]))
        if opener == b"- ":
            return kind, text + b"train:\n  lr:\n" + b"".join(b"  " * (i + 2) + b"- \n" for i in range(min(depth, 2000)))
        return kind, text + b"model:\n  layers: " + opener * depth + b"1" + closer * depth + b"\n"
    if kind == "tabs":
        return kind, text.replace(b"  ", b"\t")
    if kind == "yaml_tags":
        tag = draw(st.sampled_from([b"!!python/object/apply:os.system ['true']", b"!!binary aGVsbG8=", b"!!set {a, b}",
                                    b"!!timestamp 2001-12-14", b"!custom 1", b"&anchor 3", b"*unknown", b"<<: *x",
                                    b"!!float 1e999", b"!!int 0b102"]))
        return kind, text + b"extra: " + tag + b"\n"
    first = text.split(b"\n", 1)[0]
    return kind, text + first + b"\n" + first + b"\n"


def _spec_texts() -> list[tuple[str, bytes]]:
    return [(str(p.relative_to(ROOT)), p.read_bytes()) for p in SHIPPED_SPECS]


LEAF_KEYS = ["model.arch", "model.hidden", "train.lr", "train.epochs", "distill.alpha", "antlm.schedule", "data.seq_len"]


@st.composite
def spec_cases(draw) -> Case:
    """A shipped spec with one mistake, given to validate, run (stopped before Ray) or study."""
    label, text = draw(st.sampled_from(_spec_texts()))
    raw = yaml.safe_load(text)
    if draw(st.booleans()):
        kind, raw = draw(mutated_mapping(raw, LEAF_KEYS))
        content = _dump(raw)
    else:
        kind, content = draw(mutated_text(text))
    command = draw(st.sampled_from(["validate", "run", "study"]))
    files = {"spec.yaml": content}
    args = [command, "spec.yaml"]
    if command == "study":  # the mutated spec as a study's only sweep
        files["study.yaml"] = b"name: fuzz\nsweeps: [spec.yaml]\n"
        args = [command, "study.yaml"]
    return Case("spec", kind, args, files, names=["spec.yaml", "study.yaml"], must_fail=kind in ("empty", "deep"))


STUDY_RAW = {"name": "fuzz", "sweeps": ["a.yaml", "b.yaml"], "finalists": {"seeds": 2}, "report": {"name": "fuzz"}}


@st.composite
def study_cases(draw) -> Case:
    """A study file with one mistake (the shipped ones and a small one), given to validate or study."""
    base = draw(st.sampled_from([None, *SHIPPED_STUDIES]))
    raw = yaml.safe_load(base.read_text()) if base else copy.deepcopy(STUDY_RAW)
    raw["sweeps"] = ["a.yaml", "b.yaml"][:len(raw["sweeps"])] if base is None else ["a.yaml", "b.yaml", "c.yaml"][:len(raw["sweeps"])]
    if draw(st.booleans()):
        kind, raw = draw(mutated_mapping(raw, ["sweeps", "finalists.seeds", "report.name", "name"]))
        content = _dump(raw)
    else:
        kind, content = draw(mutated_text(_dump(raw)))
    files = {"study.yaml": content, **{n: tiny_spec(n.split(".")[0]) for n in ("a.yaml", "b.yaml", "c.yaml")}}
    command = draw(st.sampled_from(["validate", "study"]))
    extra = draw(st.sampled_from([[], ["--seeds", "0"], ["--seeds", "x"], ["--set", "report.name=../x"],
                                  ["--set", "finalists.seeds=-1"], ["--set", "name=other"]]))
    return Case("study", kind, [command, "study.yaml", *extra], files, names=["study.yaml", "--seeds", "--set", "a.yaml"])


# -------------------------------------------------------------------------------- --set and options
SET_KEYS = st.one_of(st.sampled_from(["train.epochs", "train.lr", "model.arch", "model.hidden", "name", "search.samples",
                                      "search.points", "distill.teachers", "data.train", "data.cache_dir", "eval.blimp",
                                      "train", "model", "search", "antlm.schedule", "resources.cpu", "train.epochs.x",
                                      "trian.epochs", "train.epoch", "", ".", "a..b", "train.", ".train", "finalists.seeds",
                                      "report.name", "sweeps", "data.tokenizer.vocab_size", "model.arch.choice"]), JUNK_TEXT)
SET_VALUES = st.one_of(st.sampled_from(["", "1", "-1", "0", "1e400", "nan", "[1,", "{a", "{uniform: [1, 0]}", "!!python/name:os",
                                        "&a *a", "[]", "{}", "null", "yes", "llama", "gpt3", "'", '"', ":", "- a", "{choice: []}",
                                        "../x", "/nonexistent", "x" * 5000, "{loguniform: [0, 1]}", "*", "[[[[[[", "\x00"]),
                       JUNK_TEXT)


@st.composite
def set_cases(draw) -> Case:
    """--set KEY=VALUE items (and items without '=') on validate, run (stopped before Ray), study and train."""
    items = draw(st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", SET_KEYS, SET_VALUES), JUNK_TEXT), min_size=1, max_size=3))
    command = draw(st.sampled_from(["validate", "run", "study", "train"]))
    files = {"spec.yaml": fixed_spec(cache=Fixtures.cache) if command == "train" else tiny_spec(cache=Fixtures.cache),
             "study.yaml": b"name: fuzz\nsweeps: [spec.yaml]\n"}
    target = "study.yaml" if command == "study" else "spec.yaml"
    args = [command, target, *(["--out", "out"] if command == "train" else [])]
    for item in items:
        args += ["--set", item]
    keys = [item.split("=", 1)[0] for item in items]
    return Case("set", "override", args, files, names=[target, "--set", *[k for k in keys if k]])


OPTION_VALUES = st.one_of(st.sampled_from(["", "-1", "0", "x", "99999999999999999999", "nan", "1.5", "--help", "-", "..",
                                           "/nonexistent/x", "s3://", "sqlite://", "file:///nonexistent", "http://[::1",
                                           "mlruns", "../escape", "a/b", "\x00", "é"]), JUNK_TEXT)


@st.composite
def option_cases(draw) -> Case:
    """Every command with a random value for one of its arguments or options, or an unknown option."""
    value = draw(OPTION_VALUES)
    command = draw(st.sampled_from([
        ["eval", "MODEL", "--batch-size", value], ["eval", "MODEL", "--rule", value], ["eval", "MODEL", "--scorer", value],
        ["eval", value], ["eval", "MODEL", "--blimp", value], ["data", value], ["data", "builtin", "--vocab-size", value],
        ["finalists", value], ["finalists", "nosuch", "--seeds", value], ["report", value], ["report", "a", "--name", value],
        ["ablate", value], ["ablate", "spec.yaml", "--seeds", value], ["ablate", "spec.yaml", "--name", value],
        ["study", "study.yaml", "--seeds", value], ["run", "spec.yaml", "--name", value], ["run", "spec.yaml", "--storage", value],
        ["run", "spec.yaml", "--tracking-uri", value], ["resume", value], ["status", value], ["status", "--storage", value],
        ["ui", value], ["ui", "--port", value], ["ui", "--host", value], ["ui", "--tracking-uri", value],
        ["cache", "show", "--cache-dir", value], ["cache", value], ["validate", value], ["train", value, "--out", "o"],
        ["train", "spec.yaml", "--out", value], ["train", "spec.yaml", "--out", "o", "--teacher", value],
        ["run", "spec.yaml", f"--{value}"], [value]]))
    command = ["MODEL_DIR" if a == "MODEL" else a for a in command]

    def prepare(root: Path) -> None:
        if Fixtures.model is not None:
            shutil.copytree(Fixtures.model, root / "MODEL_DIR")

    files = {"spec.yaml": fixed_spec(cache=Fixtures.cache), "study.yaml": b"name: fuzz\nsweeps: [spec.yaml]\n"}
    names = [n for n in (value, value.removeprefix("file://"), command[0], *(a for a in command if a.startswith("--")),
                         "an empty argument") if n and n.strip()]
    return Case("option", command[0], command, files, names=names, prepare=prepare)


# ------------------------------------------------------------------------------------------ corpora
@st.composite
def corpus_cases(draw) -> Case:
    """Bad corpora, given to `data` and to `train` (which stops after reading its data)."""
    kind = draw(st.sampled_from(["empty", "blank", "binary", "mixed_encoding", "huge_line", "no_dev", "glob_none",
                                 "empty_folder", "nested_folder", "bom", "nul_bytes", "crlf", "directory_as_file"]))
    files: dict[str, bytes] = {}
    source = "corpus/train.train"
    good = b"the cat sat on the mat .\nthe dog ran .\n" * 200
    if kind == "empty":
        files[source] = b""
    elif kind == "blank":
        files[source] = draw(st.sampled_from([b"\n\n\n", b"   \t \n", b"\r\n" * 50, b"\x0c\x0b\n", "\u2028\u3000\n".encode()]))
    elif kind == "binary":
        files[source] = draw(st.binary(min_size=1, max_size=2000))
    elif kind == "mixed_encoding":
        files[source] = good + "café naïve\n".encode("latin-1") + "日本\n".encode("utf-16")
    elif kind == "huge_line":
        files[source] = b"word " * draw(st.sampled_from([10**5, 3 * 10**5]))
    elif kind == "no_dev":
        files["corpus/train_10M/a.train"] = good
        source = "corpus"
    elif kind == "glob_none":
        source = draw(st.sampled_from(["corpus/*.nothing", "nowhere/**/*.train", "corpus/[", "*.train"]))
    elif kind == "empty_folder":
        files["corpus/.hidden/notes.txt"] = b"no text here\n"
        source = "corpus"
    elif kind == "nested_folder":
        files["corpus/train_10M/a.train"] = good
        files["corpus/train_100M/a.train"] = good
        source = "corpus"
    elif kind == "bom":
        files[source] = "\ufeff".encode() + good
    elif kind == "nul_bytes":
        files[source] = good.replace(b" ", b"\x00")
    elif kind == "crlf":
        files[source] = good.replace(b"\n", b"\r")
    else:
        files["corpus/train.train/x.train"] = b""
        source = "corpus/train.train"
    command = draw(st.sampled_from(["data", "train"]))
    if command == "data":
        args = ["data", source, "--vocab-size", "300", "--cache-dir", "cache"]
    else:
        files["spec.yaml"] = fixed_spec(cache=None, extra="")
        dev = "builtin" if kind != "no_dev" else "corpus/dev"
        args = ["train", "spec.yaml", "--out", "out", "--set", f"data.train={source}", "--set", f"data.dev={dev}",
                "--set", "data.cache_dir=cache", "--set", "data.tokenizer.vocab_size=300", "--set", "eval.blimp=none"]
    must_fail = kind in ("empty", "blank", "glob_none", "empty_folder", "nested_folder", "directory_as_file")
    return Case("corpus", kind, args, files, names=["corpus", source, "spec.yaml", "data.train", "data.dev"],
                must_fail=must_fail)


# ---------------------------------------------------------------------------------- evaluation data
@st.composite
def blimp_cases(draw) -> Case:
    """Malformed BLiMP jsonl (and folders of it) for `eval --blimp`."""
    good = {"sentence_good": "the cat sat .", "sentence_bad": "cat the sat .", "UID": "order", "field": "syntax",
            "pairID": "1", "linguistics_term": "order"}
    kind = draw(st.sampled_from(["not_json", "not_object", "missing_key", "wrong_type", "empty_value", "empty_file",
                                 "blank_lines", "non_utf8", "empty_folder", "huge_line", "extra_keys", "random"]))
    rows = [json.dumps(good)] * 2
    if kind == "not_json":
        rows.append(draw(st.sampled_from(["{", "{'a': 1}", "sentence_good", "[1,", "NaN", "{\"a\": }"])))
    elif kind == "not_object":
        rows.append(json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=5), st.none()))))
    elif kind == "missing_key":
        row = dict(good)
        row.pop(draw(st.sampled_from(["sentence_good", "sentence_bad"])))
        rows.append(json.dumps(row))
    elif kind == "wrong_type":
        row = dict(good)
        row[draw(st.sampled_from(list(good)))] = draw(st.one_of(st.integers(), st.lists(st.text(max_size=3), max_size=2),
                                                                st.none(), st.booleans(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)))
        rows.append(json.dumps(row))
    elif kind == "empty_value":
        rows.append(json.dumps({**good, draw(st.sampled_from(["sentence_good", "sentence_bad"])): draw(st.sampled_from(["", " ", "\n"]))}))
    elif kind in ("empty_file", "blank_lines"):
        rows = [] if kind == "empty_file" else ["", "  ", "\t"]
    elif kind == "huge_line":
        rows.append(json.dumps({**good, "sentence_good": "the cat " * 20000}))
    elif kind == "extra_keys":
        rows.append(json.dumps({**good, draw(JUNK_TEXT): draw(st.text(max_size=5))}))
    elif kind == "random":
        rows.append(draw(st.text(max_size=50)))
    content = "\n".join(rows).encode()
    if kind == "non_utf8":
        content = content + b"\n\xff\xfe\n"
    files = {"blimp/pairs.jsonl": content} if kind != "empty_folder" else {"blimp/readme.txt": b"x"}
    source = draw(st.sampled_from(["blimp", "blimp/pairs.jsonl"])) if kind != "empty_folder" else "blimp"

    def prepare(root: Path) -> None:
        shutil.copytree(Fixtures.model, root / "model")

    must_fail = kind in ("not_json", "not_object", "missing_key", "empty_value", "empty_file", "blank_lines", "non_utf8",
                         "empty_folder")
    return Case("blimp", kind, ["eval", "model", "--blimp", source], files, names=["blimp"], must_fail=must_fail,
                prepare=prepare)


# ------------------------------------------------------------------------------------- model folders
MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]


def _model_mutation(kind: str, target: str, cut: float, junk: bytes, field_value: Any) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        source = {"other_arch_weights": Fixtures.other_arch, "other_tokenizer": Fixtures.other_tokenizer}.get(kind, Fixtures.model)
        folder = root / "model"
        shutil.copytree(source, folder)
        path = folder / target
        if kind == "missing" and path.exists():
            path.unlink()
        elif kind == "truncated" and path.exists():
            data = path.read_bytes()
            path.write_bytes(data[:int(len(data) * cut)])
        elif kind == "garbage" and path.exists():
            path.write_bytes(junk)
        elif kind == "config_field":
            config = json.loads((folder / "config.json").read_text())
            key = field_value[0]
            config[key] = field_value[1]
            (folder / "config.json").write_text(json.dumps(config))
        elif kind == "other_arch_weights":  # gpt2 weights under the llama model's config
            shutil.copy(Fixtures.model / "config.json", folder / "config.json")
        elif kind == "other_tokenizer":  # the model's weights with another vocabulary's tokenizer
            shutil.rmtree(folder)
            shutil.copytree(Fixtures.model, folder)
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                if (Fixtures.other_tokenizer / name).exists():
                    shutil.copy(Fixtures.other_tokenizer / name, folder / name)
        elif kind == "not_a_folder":
            shutil.rmtree(folder)
            folder.write_bytes(junk)
    return prepare


@st.composite
def model_cases(draw) -> Case:
    """A model folder with a missing, truncated or foreign part, given to `eval` and to `train --teacher`."""
    kind = draw(st.sampled_from(["missing", "truncated", "garbage", "config_field", "other_arch_weights", "other_tokenizer",
                                 "not_a_folder"]))
    target = draw(st.sampled_from(MODEL_FILES))
    field_value = draw(st.tuples(st.sampled_from(["model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                                                  "architectures", "num_attention_heads", "torch_dtype", "tie_word_embeddings"]),
                                 st.one_of(st.sampled_from(["bert", "gpt2", "nosuch", "llama", "t5"]), st.integers(-5, 10**6),
                                           st.none(), st.lists(st.text(max_size=5), max_size=2))))
    prepare = _model_mutation(kind, target, draw(st.floats(0, 0.99)), draw(st.binary(max_size=64)), field_value)
    if draw(st.booleans()):
        args = ["eval", "model", "--blimp", str(Fixtures.pairs)]
    else:
        args = ["train", "spec.yaml", "--out", "out", "--teacher", "model", "--set", "distill.alpha=0.5",
                "--set", "distill.cache=none", "--set", "eval.blimp=none"]
    must_fail = kind in ("missing", "garbage", "other_arch_weights", "not_a_folder") and target in ("config.json", "model.safetensors") \
        or kind in ("truncated",) and target in ("model.safetensors", "config.json") \
        or kind == "other_tokenizer" and args[0] == "train" or kind == "not_a_folder"
    return Case("model", f"{kind}:{target if kind in ('missing', 'truncated', 'garbage') else field_value[0] if kind == 'config_field' else ''}",
                args, {"spec.yaml": fixed_spec(cache=Fixtures.cache)}, names=["model"], must_fail=must_fail, prepare=prepare)


SURFACES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "spec": spec_cases, "study": study_cases, "set": set_cases, "option": option_cases, "corpus": corpus_cases,
    "blimp": blimp_cases, "model": model_cases,
}


# ------------------------------------------------------------------------------------ project state
STATE_SPEC = """name: fake
model: {layers: 1, hidden: 32, heads: 2}
train: {epochs: 3, lr: {loguniform: [1.0e-3, 1.0e-2]}, max_steps: 50}
search: {algorithm: random, samples: 3, scheduler: none}
"""


def _trial(trial_id: str, status: str, lr: float, result: dict | None = None) -> list[str]:
    info = {"trial_id": trial_id, "status": status, "config": {"train.lr": lr}, "relative_logdir": f"trial_{trial_id}"}
    return [json.dumps(info), json.dumps({"last_result": result or {}})]


def state_files() -> dict[str, bytes]:
    """A project that ran sweep 'fake' (3 trials) in study 'fuzz', with a teacher-cache entry."""
    trials = [_trial("done", "TERMINATED", 0.002, {"epoch": 3, "step": 30, "eval/loss": 3.0}),
              _trial("broken", "ERROR", 0.005),
              _trial("midway", "PENDING", 0.006, {"epoch": 1, "step": 10, "eval/loss": 3.4})]
    layout = {"logits": {"dtype": "float16", "dtype_bytes": 2, "shape": [1, 4, 8, 16]}}
    entry = "sweeps/.cache/teachers/0123456789abcdef01234567"
    return {
        "fake.yaml": STATE_SPEC.encode(), "study.yaml": b"name: fuzz\nsweeps: [fake.yaml]\n",
        "sweeps/fake/spec.yaml": STATE_SPEC.encode(),
        "sweeps/fake/experiment_state-2026.json": json.dumps({"trial_data": trials}).encode(),
        "sweeps/fake/tuner.pkl": b"\x80\x04N.",
        "sweeps/fake/trial_broken/error.txt": b"Traceback ...\nValueError: hidden must be even\n",
        "sweeps/fake/models/done/metrics.jsonl": b'{"epoch": 1, "step": 10}\n{"epoch": 3, "step": 30}\n',
        "sweeps/fake/models/midway/metrics.jsonl": b'{"epoch": 1, "step": 10}\n',
        "sweeps/fake/models/done/run.json": json.dumps({"config": {"data": {"chunk_bos": True}}}).encode(),
        "sweeps/fake/data_layout.json": json.dumps({"chunk_bos": True}).encode(),
        "sweeps/fake/mlflow_runs.json": json.dumps({"done": "abc"}).encode(),
        "sweeps/fake/driver.json": json.dumps({"pid": 1, "host": "elsewhere"}).encode(),
        "sweeps/fuzz.study.json": json.dumps({"done": {}, "settings": {}}).encode(),
        f"{entry}/meta.json": json.dumps({"arrays": layout, "key": {"format": 1}, "epoch": 1}).encode(),
        f"{entry}/logits.bin": bytes(2 * 4 * 8 * 16),
    }


STATE_COMMANDS = {  # which command reads which file
    "sweeps/fake/spec.yaml": [["status", "fake"], ["status"], ["run", "fake.yaml"]],
    "sweeps/fake/experiment_state-2026.json": [["status", "fake"], ["run", "fake.yaml"]],
    "sweeps/fake/tuner.pkl": [["run", "fake.yaml"]],
    "sweeps/fake/trial_broken/error.txt": [["status", "fake"]],
    "sweeps/fake/models/done/metrics.jsonl": [["status", "fake"]],
    "sweeps/fake/mlflow_runs.json": [["run", "fake.yaml"]],
    "sweeps/fake/models/done/run.json": [["status", "fake"], ["run", "fake.yaml"]],
    "sweeps/fake/data_layout.json": [["status", "fake"], ["run", "fake.yaml"]],
    "sweeps/fake/driver.json": [["status", "fake"]],
    "sweeps/fuzz.study.json": [["study", "study.yaml"], ["study", "study.yaml", "--set", "train.epochs=1"]],
    "sweeps/.cache/teachers/0123456789abcdef01234567/meta.json": [["cache", "show"], ["status"]],
    "sweeps/.cache/teachers/0123456789abcdef01234567/logits.bin": [["cache", "show"]],
    "mlruns/mlflow.db": [["report", "fake"], ["ui", "fake"], ["finalists", "fake"], ["ablate", "fake"]],
}


@st.composite
def state_cases(draw) -> Case:
    """A project's own state, truncated or corrupted, read by the commands that use it."""
    target = draw(st.sampled_from(sorted(STATE_COMMANDS)))
    files = state_files()
    original = files.get(target, b"")
    kind = draw(st.sampled_from(["truncated", "garbage", "empty", "deleted", "wrong_json", "zeros"]))
    if kind == "truncated":
        content = original[:draw(st.integers(0, max(len(original) - 1, 0)))] if original else b"SQLite format 3\x00"
    elif kind == "garbage":
        content = draw(st.binary(min_size=1, max_size=200))
    elif kind == "empty":
        content = b""
    elif kind == "zeros":
        content = bytes(len(original) or 4096)
    elif kind == "wrong_json":
        content = json.dumps(draw(st.one_of(VALUES, st.fixed_dictionaries({
            "trial_data": st.one_of(VALUES, st.lists(st.lists(st.one_of(JUNK_TEXT, st.just("{}"), st.just("[]"),
                                                                         st.just('{"trial_id": 5}')), max_size=3), max_size=2)),
            "done": VALUES, "settings": VALUES, "arrays": VALUES, "pid": VALUES, "host": VALUES})))).encode()
    else:
        content = None
    if content is not None:
        files[target] = content
    elif target in files:
        del files[target]

    def prepare(root: Path) -> None:
        if target == "mlruns/mlflow.db" and content is None:
            return
        if target == "mlruns/mlflow.db" and Fixtures.store is not None:
            db = root / "mlruns" / "mlflow.db"
            if kind == "truncated":
                data = Fixtures.store.read_bytes()
                db.write_bytes(data[:draw_cut[0] * len(data) // 100])
            elif kind == "wrong_json":
                shutil.copy(Fixtures.store, db)
                with open(db, "r+b") as handle:  # a damaged page of a valid database (the schema's, or later)
                    handle.seek(100 + draw_cut[0] * (db.stat().st_size - 700) // 100)
                    handle.write(b"\xff" * 512)

    draw_cut = [draw(st.integers(1, 99))]
    command = draw(st.sampled_from(STATE_COMMANDS[target]))
    names = [target, Path(target).name, Path(target).parent.name, "fake", "fuzz"]
    return Case("state", f"{kind}:{Path(target).name}", command, files, names=names, prepare=prepare)


SURFACES["state"] = state_cases
