"""Every task reads its real files and builds the documented prompt for a known row."""

import json

import pytest

from adamezo.tasks import get_task

# Examples per original split, as listed in ../shared/data/README.md (MultiRC: answer options).
REAL_SIZES = {
    "sst2": {"train": 5000, "validation": 872},
    "rte": {"train": 2490, "validation": 277},
    "cb": {"train": 250, "validation": 56},
    "boolq": {"validation": 3270},
    "wsc": {"train": 554, "validation": 104},
    "wic": {"train": 5428, "validation": 638},
    "multirc": {"train": 27243, "validation": 4848},
    "copa": {"train": 400, "validation": 100},
    "squad": {"train": 11877, "validation": 10570},
    "sst5": {"train": 5000, "validation": 2210},
    "snli": {"train": 1536, "validation": 1000},
    "mnli": {"train": 1536, "validation": 1000},
    "trec": {"train": 5452, "validation": 500},
}
VERBALIZERS = {
    "sst2": (" terrible", " great"),
    "sst5": (" terrible", " bad", " okay", " good", " great"),
    "trec": tuple(
        f" {w}" for w in ("Description", "Entity", "Expression", "Human", "Location", "Number")
    ),
    "rte": ("Yes", "No"),
    "boolq": ("Yes", "No"),
    "cb": ("Yes", "No", "Maybe"),
    "snli": ("Yes", "No", "Maybe"),
    "mnli": ("Yes", "No", "Maybe"),
    "wsc": ("No", "Yes"),
    "wic": ("No", "Yes"),
    "multirc": ("No", "Yes"),
}
CASES = [(task, split) for task, sizes in REAL_SIZES.items() for split in sizes]


def first_json_line(path):
    with path.open(encoding="utf-8") as handle:
        return json.loads(handle.readline())


@pytest.mark.parametrize(("name", "split"), CASES)
def test_real_split_reads_every_row_into_well_formed_examples(data_dir, name, split):
    task = get_task(name)
    examples = task.read_split(split, data_dir)
    assert len(examples) == REAL_SIZES[name][split]
    for example in examples:
        assert example.prompt.strip()
        if task.kind == "generation":
            assert example.candidates == () and example.label is None
            assert example.answers and example.target == f" {example.answers[0]}\n"
        elif task.kind == "classification":
            assert example.candidates == VERBALIZERS[name]
            assert example.correct == (example.label,)
        else:
            assert len(example.candidates) >= 2 and example.candidates[example.label].strip()


def test_sst2_prompt_is_sentence_then_it_was(data_dir):
    example = get_task("sst2").read_split("validation", data_dir)[0]
    assert example.prompt == "it 's a charming and often affecting journey . It was"
    assert example.candidates == (" terrible", " great")
    assert example.label == 1


def test_rte_prompt_asks_whether_hypothesis_is_true(data_dir):
    row = first_json_line(data_dir / "rte" / "validation.jsonl")
    example = get_task("rte").read_split("validation", data_dir)[0]
    assert example.prompt == (
        f"{row['premise']}\n"
        'Does this mean that "Christopher Reeve had an accident." is true? Yes or No?\n'
    )
    assert example.label == 1  # not_entailment → "No"


def test_cb_prompt_supposes_premise_and_asks_yes_no_maybe(data_dir):
    row = first_json_line(data_dir / "cb" / "validation.jsonl")
    example = get_task("cb").read_split("validation", data_dir)[0]
    assert example.prompt == (
        f'Suppose {row["premise"]} Can we infer that "Valence was helping"? Yes, No, or Maybe?\n'
    )
    assert example.label == 1  # contradiction → "No"


def test_boolq_prompt_capitalises_question_and_adds_question_mark(data_dir):
    row = first_json_line(data_dir / "boolq" / "validation.jsonl")
    example = get_task("boolq").read_split("validation", data_dir)[0]
    assert example.prompt == (
        f"{row['passage']} Does ethanol take more energy make that produces?\n"
    )
    assert example.label == 1  # false → "No"


def test_copa_prompt_drops_period_and_lowercases_choice(data_dir):
    example = get_task("copa").read_split("validation", data_dir)[0]
    assert example.prompt == "The man turned on the faucet so"
    assert example.candidates == (" the toilet filled with water.", " water flowed from the spout.")
    assert example.label == 1


def test_copa_keeps_capital_i(data_dir):
    example = get_task("copa").read_split("validation", data_dir)[3]
    assert example.prompt == "I wanted to conserve energy so"
    assert example.candidates[0] == " I swept the floor in the unoccupied room."


def test_wsc_prompt_asks_about_lowercased_pronoun(data_dir):
    row = first_json_line(data_dir / "wsc" / "validation.jsonl")
    example = get_task("wsc").read_split("validation", data_dir)[0]
    assert example.prompt == (
        f"{row['text']}\n"
        'In the previous sentence, does the pronoun "him" refer to anyone? Yes or No?\n'
    )
    assert example.candidates == ("No", "Yes")
    assert example.label == 0


def test_wsc_span_not_in_text_is_fixed_like_wsc_fixed(data_dir):
    # Validation line 6 has span1 "The table" for "...through the table because it...".
    example = get_task("wsc").read_split("validation", data_dir)[5]
    assert 'does the pronoun "it" refer to the table? Yes or No?\n' in example.prompt
    assert example.label == 1


def test_wic_prompt_lists_word_and_both_sentences(data_dir):
    example = get_task("wic").read_split("validation", data_dir)[0]
    assert example.prompt == (
        'Does the word "class" have the same meaning in these two sentences? Yes, No?\n'
        "An emerging professional class.\n"
        "Apologizing for losing your temper, even though you were badly provoked, showed real "
        "class.\n"
    )
    assert example.label == 0


def test_multirc_flattens_to_one_example_per_answer_option(data_dir):
    row = first_json_line(data_dir / "multirc" / "validation.jsonl")
    question = row["passage"]["questions"][0]
    examples = get_task("multirc").read_split("validation", data_dir)
    for example, answer in zip(examples, question["answers"], strict=False):
        assert example.prompt == (
            f"{row['passage']['text']}\nQuestion: {question['question']}\n"
            f'I found this answer "{answer["text"]}". Is that correct? Yes or No?\n'
        )
        assert example.label == answer["label"]


def test_sst5_prompt_has_five_sentiment_words(data_dir):
    example = get_task("sst5").read_split("validation", data_dir)[0]
    assert example.prompt == "no movement , no yuks , not much of anything . It was"
    assert example.label == 1


def test_trec_prompt_asks_for_answer_type(data_dir):
    example = get_task("trec").read_split("validation", data_dir)[0]
    assert example.prompt == "How far is it from Denver to Aspen ?\nAnswer type:"
    assert example.candidates[example.label] == " Number"


def test_mnli_gold_label_is_last_column(data_dir):
    example = get_task("mnli").read_split("validation", data_dir)[0]
    assert example.prompt.startswith("Suppose yeah well losing is i mean")
    assert example.prompt.endswith(
        ' Can we infer that "The St. Louis Cardinals have always won."? Yes, No, or Maybe?\n'
    )
    assert example.label == 1  # contradiction → "No"


def test_snli_prompt_uses_sentence_columns(data_dir):
    example = get_task("snli").read_split("validation", data_dir)[0]
    assert example.prompt == (
        "Suppose A balding man with a checkered shirt and khaki pants naps on his recliner with "
        'his keys on his lap. Can we infer that "A man run in playground."? Yes, No, or Maybe?\n'
    )
    assert example.label == 1


def test_squad_prompt_and_target(data_dir):
    document = json.loads((data_dir / "squad" / "validation.json").read_text(encoding="utf-8"))
    context = document["data"][0]["paragraphs"][0]["context"]
    example = get_task("squad").read_split("validation", data_dir)[0]
    assert example.prompt == (
        f"Title: Super_Bowl_50\nContext: {context}\n"
        "Question: Which NFL team represented the AFC at Super Bowl 50?\nAnswer:"
    )
    assert example.target == " Denver Broncos\n"
    assert example.answers == ("Denver Broncos",) * 3
