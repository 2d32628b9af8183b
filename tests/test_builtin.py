import json

from babysweep.data import builtin


def test_same_seed_same_bytes_and_size():
    a, b = builtin.generate_text(5000, 3), builtin.generate_text(5000, 3)
    assert a == b and a != builtin.generate_text(5000, 4)
    assert 5000 <= len(a.split()) < 5200


def test_every_generated_line_is_grammatical():
    lines = builtin.generate_text(20_000, 0).splitlines()
    assert all(builtin.is_grammatical(line) for line in lines)
    firsts = {line.split()[0] for line in lines}
    assert {"Who", "What", "Is", "Are", "Does", "Look"} <= firsts  # questions and imperatives occur
    assert any(" that " in line for line in lines) and any("themselves" in line for line in lines)


def test_recogniser_rejects_agreement_errors():
    assert builtin.is_grammatical("The dogs that see the cat are happy.")
    for bad in ("The dogs that see the cat is happy.", "These dog is happy.", "The girls saw herself.",
                "The boy eated the apple.", "Is the dogs happy?", "What did the boy find the ball?", "The the dog runs."):
        assert not builtin.is_grammatical(bad), bad


def test_pairs_are_valid_minimal_pairs():
    pairs = builtin.generate_pairs(30, 0)
    assert len(pairs) >= 8 and pairs == builtin.generate_pairs(30, 0)
    train = set(builtin.generate_text(20_000, 0).splitlines())
    for uid, rows in pairs.items():
        assert len(rows) == 30
        assert len({(r["sentence_good"], r["sentence_bad"]) for r in rows}) == 30  # no duplicates
        for row in rows:
            assert set(row) == {"sentence_good", "sentence_bad", "field", "linguistics_term", "UID", "pairID"}
            assert row["UID"] == uid and row["sentence_good"] != row["sentence_bad"]
            assert builtin.is_grammatical(row["sentence_good"]), row
            assert not builtin.is_grammatical(row["sentence_bad"]), row
            assert row["sentence_bad"] not in train


def test_build_layout_is_idempotent(tmp_path):
    folder = builtin.build(tmp_path, words=2000, seed=1, pairs_per_paradigm=5)
    assert (folder / "train" / "builtin.train").is_file() and (folder / "dev" / "builtin.dev").is_file()
    assert "SYNTHETIC" in (folder / "README.txt").read_text()
    rows = [json.loads(line) for line in (folder / "blimp" / "wh_question_gap.jsonl").read_text().splitlines()]
    assert len(rows) == 5
    stamp = (folder / "train" / "builtin.train").stat().st_mtime_ns
    assert builtin.build(tmp_path, words=2000, seed=1, pairs_per_paradigm=5) == folder
    assert (folder / "train" / "builtin.train").stat().st_mtime_ns == stamp
